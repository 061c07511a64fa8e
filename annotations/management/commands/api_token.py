from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from annotations.services import api_token_create


class Command(BaseCommand):
    help = "Create an API bearer token for a user and print it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--name", help="what the token is for (default: “cli” and the time); unique per user"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {options['username']!r}.")
        name = options["name"] or f"cli {timezone.now():%Y-%m-%d %H:%M:%S.%f}"
        try:
            self.stdout.write(api_token_create(user=user, name=name))
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
