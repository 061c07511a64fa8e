from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from core.services import demo_users_seed


class Command(BaseCommand):
    help = "Create the demo users (and demo objects) that are missing. Safe to run again."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--password", help="use this password for new users (default: random)")

    def handle(self, *args: Any, password: str | None = None, **options: Any) -> None:
        created = demo_users_seed(password=password)
        logins_path = settings.VAR_DIR / "demo-logins.txt"
        if created:
            lines = [
                f"  {login.username:<12} {login.password:<16} ({login.role})" for login in created
            ]
            if not logins_path.exists():
                lines.insert(0, "Demo logins (username, password, role):")
            logins_path.parent.mkdir(parents=True, exist_ok=True)
            with logins_path.open("a") as handle:
                handle.write("\n".join(lines) + "\n")
            logins_path.chmod(0o600)
            if options["verbosity"] > 0:
                self.stdout.write("\n".join(lines))
        elif options["verbosity"] > 0:
            self.stdout.write("Demo users already exist; nothing created.")
