from importlib import import_module
from importlib.util import find_spec
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand

from core.services import demo_users_seed


class Command(BaseCommand):
    help = (
        "Create the demo users, then each app's demo objects (its `demo.seed()`), where "
        "missing. Safe to run again."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--password", help="use this password for new users (default: random)")

    def handle(self, *args: Any, password: str | None = None, **options: Any) -> None:
        created = demo_users_seed(password=password)
        logins_path = settings.VAR_DIR / "demo-logins.txt"
        lines = [f"  {user.username:<12} {user.password:<16} ({user.role})" for user in created]
        if lines:
            if not logins_path.exists():
                lines.insert(0, "Demo logins (username, password, role):")
            logins_path.parent.mkdir(parents=True, exist_ok=True)
            with logins_path.open("a") as handle:
                handle.write("\n".join(lines) + "\n")
            logins_path.chmod(0o600)
        # Apps offer demo objects through a `demo` module, so core imports none of them.
        for app in apps.get_app_configs():
            if find_spec(f"{app.name}.demo") is not None:
                lines += import_module(f"{app.name}.demo").seed()
        if options["verbosity"] > 0:
            self.stdout.write("\n".join(lines) or "Demo already seeded; nothing created.")
