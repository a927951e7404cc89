"""Walk the ledger's hash chain; exit 1 and name the problem (and the first bad entry)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.ledger.services import ledger_verify
from marketplace.models import Community


class Command(BaseCommand):
    help = (
        "Recompute every ledger entry's keyed hash, check the chain links, hold the chain against "
        "the latest signed checkpoint (database and checkpoint file) and check that every "
        "transaction sums to zero. Records the result (shown on the regulator dashboard and "
        "the API)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--community", help="Slug of one community to check (default: the whole chain)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        community = None
        if options["community"]:
            community = Community.objects.filter(slug=options["community"]).first()
            if community is None:
                raise CommandError(f"No community with slug {options['community']!r}.")
        result = ledger_verify(community=community)
        if not result.ok:
            # CommandError makes manage.py exit with status 1 and prints to stderr.
            where = (
                f" at entry id={result.first_bad_entry_id} (sequence {result.first_bad_sequence})"
                if result.first_bad_entry_id is not None
                else ""
            )
            raise CommandError(
                f"Ledger chain broken{where}: {result.problem}: {result.reason}. "
                f"{result.entries_checked} entries checked."
            )
        against = (
            f", held against the checkpoint at sequence {result.checkpoint_sequence}"
            if result.checkpoint_sequence is not None
            else ", no checkpoint yet"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Ledger chain intact: {result.entries_checked} entries checked{against}."
            )
        )
