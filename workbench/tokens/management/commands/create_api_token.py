from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workbench.accounts.models import User, Workspace
from workbench.lib.errors import ServiceError
from workbench.tokens.services import token_create


class Command(BaseCommand):
    help = "Create a personal API token and print it (it is shown this once only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--workspace", required=True, help="workspace slug")
        parser.add_argument("--name", default="cli", help="what the token is for")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        workspace = Workspace.objects.filter(slug=options["workspace"]).first()
        if workspace is None:
            raise CommandError(f"No workspace {options['workspace']!r}.")
        try:
            _, raw = token_create(workspace=workspace, user=user, name=options["name"])
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(raw)
