"""Ledger work for the workers: re-verify the hash chain so the dashboards show a recent
verification, true up bill sharing at the end of each month, import a manager's readings file."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from marketplace.ledger.services import ledger_verify
from marketplace.ledger.services.reading_imports import reading_import_run
from marketplace.ledger.services.true_up import bill_sharing_true_ups_due


@shared_task(name="ledger.verify")
def ledger_verify_task() -> dict[str, object]:
    """Walk the whole chain once; the result is stored and read by the regulator and the API."""
    result = ledger_verify()
    return {"ok": result.ok, "entries_checked": result.entries_checked}


@shared_task(name="ledger.bill_sharing_true_up")
def bill_sharing_true_up_task() -> int:
    """True up every finished month of bill sharing once its intervals are settled."""
    return len(bill_sharing_true_ups_due(now=timezone.now()))


# Resumable: each chunk commits with the import's progress, so a redelivered task goes on from
# the last committed chunk.
@shared_task(name="ledger.reading_import_run", acks_late=True, task_reject_on_worker_lost=True)
def reading_import_run_task(import_id: int) -> int:
    """Import one uploaded readings file; returns how many rows are done."""
    return reading_import_run(import_id=import_id).rows_done
