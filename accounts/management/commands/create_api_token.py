"""Issue a personal access token from the shell: prints the token and nothing else."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.models import User
from accounts.services import api_token_create
from config.errors import ApplicationError
from marketplace.models import Community


class Command(BaseCommand):
    help = (
        "Create an API token for a user and print it (shown once). "
        "Example: create_api_token --user a@b.c --scopes read,trade --name 'battery manager'"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The user's email address.")
        parser.add_argument(
            "--scopes",
            required=True,
            help="Comma-separated: read, trade, meter, manage, meter_data.",
        )
        parser.add_argument(
            "--community",
            default=None,
            help="For a meter_data token: the slug of the community whose readings it sends.",
        )
        parser.add_argument("--name", default="created from the shell")
        parser.add_argument("--expires-days", type=int, default=None, dest="expires_days")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["user"].strip()
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with the email address {email!r}.")
        scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
        days = options["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days must be at least 1.")
        expires_at = timezone.now() + dt.timedelta(days=days) if days else None
        community = None
        if options["community"]:
            community = Community.objects.filter(slug=options["community"].strip()).first()
            if community is None:
                raise CommandError(f"No community with the slug {options['community']!r}.")
        try:
            _, raw = api_token_create(
                user=user,
                name=options["name"],
                scopes=scopes,
                expires_at=expires_at,
                community=community,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        # Only the token on stdout, so `TOKEN=$(manage.py create_api_token ...)` works.
        self.stdout.write(raw)
