"""Reads behind the integrity dashboard: the ledger's verification and the pipeline's steps."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, IntegerField, Q, Sum, Value
from django.db.models.functions import Coalesce

from marketplace.ledger.models import LedgerVerification
from marketplace.ledger.selectors import ledger_last_verification
from marketplace.models import Interval, IntervalState
from marketplace.oversight.selectors.common import Scope, Table, in_scope, rows_of


@dataclass(frozen=True, slots=True)
class Integrity:
    verification: LedgerVerification | None
    steps: Table  # per state: intervals, currently failing, recovered after retries, attempts


def integrity(scope: Scope) -> Integrity:
    """The ledger's last verification and the pipeline's failed and retried steps."""
    from marketplace.services.pipeline import NEXT_STATE

    rows = (
        Interval.objects.filter(in_scope(scope))
        .values("state")
        .annotate(
            intervals=Count("pk"),
            failing=Count("pk", filter=~Q(last_error="")),
            recovered=Count("pk", filter=Q(timings__has_key="failures", last_error="")),
            attempts=Coalesce(Sum("failed_attempts"), Value(0), output_field=IntegerField()),
        )
        .order_by()
    )
    empty = {"intervals": 0, "failing": 0, "recovered": 0, "attempts": 0}
    found = {row["state"]: row for row in rows_of(rows)}
    table = [
        (
            state.label,
            NEXT_STATE.get(state.value, "-"),
            *(found.get(state.value, empty)[key] for key in empty),
        )
        for state in IntervalState
    ]
    return Integrity(
        verification=ledger_last_verification(community=scope.community),
        steps=Table(
            (
                "state",
                "next_step",
                "intervals",
                "failing_now",
                "recovered_after_retry",
                "failed_attempts_now",
            ),
            table,
        ),
    )
