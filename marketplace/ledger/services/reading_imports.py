"""A manager's CSV file of meter readings, imported by a worker in chunks with its progress.

The upload's request only checks the file's shape (UTF-8, the header, at most
``MAX_IMPORT_ROWS`` rows), stores it as a ``ReadingImport`` and queues the import; the page then
shows the rows done so far. Each chunk of ``CHUNK_ROWS`` rows is one transaction together with
the import's counters, so a worker that dies mid-file leaves ``rows_done`` exactly at the last
committed chunk and the next run goes on from there (and a chunk's rows are idempotent anyway: a
reading identical to the stored one is reported as unchanged).
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import IO

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from config.errors import ApplicationError, ErrorCode
from marketplace.ledger.models import ReadingImport, ReadingImportStatus
from marketplace.ledger.services.readings import (
    ReadingReport,
    check_may_import,
    csv_rows,
    meter_readings_import_rows,
)
from marketplace.models import Community

# A month of 15-minute readings for about 35 meter points.
MAX_IMPORT_ROWS = 100_000
CHUNK_ROWS = 1_000
# The import keeps this many refused rows with their reasons; the counters cover every row.
MAX_REPORTED_REFUSALS = 1_000


def reading_import_create(
    *, community: Community, file: IO[bytes] | IO[str], submitted_by: User, file_name: str = ""
) -> ReadingImport:
    """Check the file's shape, store it and queue its import; nothing is imported yet."""
    check_may_import(community=community, submitted_by=submitted_by)
    raw = file.read()
    # A bad encoding or header is refused now, on the form; the rows' cells later, one by one.
    rows = csv_rows(io.BytesIO(raw) if isinstance(raw, bytes) else io.StringIO(raw))
    text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    if not rows:
        raise ApplicationError(ErrorCode.REQUIRED, "The file has no readings.", field="file")
    if len(rows) > MAX_IMPORT_ROWS:
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE,
            f"The file has {len(rows):,} rows; import at most {MAX_IMPORT_ROWS:,} at a time.",
            field="file",
        )
    with transaction.atomic(durable=True):
        job = ReadingImport.objects.create(
            community=community,
            submitted_by=submitted_by,
            file_name=file_name[:255],
            content=text,
            rows_total=len(rows),
        )
        transaction.on_commit(lambda: _queue(job.pk))
    return job


def _queue(import_id: int) -> None:
    # Imported late: the task module imports this one.
    from marketplace.ledger.tasks import reading_import_run_task

    reading_import_run_task.delay(import_id)


def reading_import_run(*, import_id: int, now: datetime | None = None) -> ReadingImport:
    """Import the rows not yet done, chunk by chunk; a finished import is left as it is."""
    job = ReadingImport.objects.select_related("community", "submitted_by").get(pk=import_id)
    if job.status == ReadingImportStatus.DONE:
        return job
    if job.started_at is None:
        ReadingImport.objects.filter(pk=job.pk, started_at__isnull=True).update(
            status=ReadingImportStatus.RUNNING, started_at=timezone.now()
        )
    rows = csv_rows(io.StringIO(job.content))
    while True:
        job.refresh_from_db(fields=["rows_done", "status"])
        if job.status == ReadingImportStatus.DONE or job.rows_done >= len(rows):
            break
        start = job.rows_done
        chunk = rows[start : start + CHUNK_ROWS]

        def count(report: ReadingReport, start: int = start, size: int = len(chunk)) -> None:
            # Inside the chunk's transaction: a concurrent run of the same import that got here
            # first makes this chunk roll back instead of counting twice.
            locked = ReadingImport.objects.select_for_update().get(pk=import_id)
            if locked.rows_done != start:
                raise _ChunkTaken
            refused = [
                {"row": row.row, "code": row.code, "reason": row.reason} for row in report.refused
            ]
            # Flagged rows are stored but settle nothing until a manager accepts them: the
            # report lists them with their reason beside the refused ones.
            flagged = [
                {"row": row.row, "code": row.code, "reason": row.reason, "flagged": True}
                for row in report.flagged
            ]
            reported = sorted(refused + flagged, key=lambda item: int(str(item["row"])))
            room = MAX_REPORTED_REFUSALS - len(locked.refused_rows)
            locked.refused_rows = locked.refused_rows + reported[: max(room, 0)]
            locked.rows_done = start + size
            locked.accepted += sum(1 for row in report.accepted if not row.unchanged)
            locked.unchanged += sum(1 for row in report.accepted if row.unchanged)
            locked.refused += len(refused)
            locked.adjustments += len(report.adjustment_ids)
            locked.status = ReadingImportStatus.RUNNING
            locked.save(
                update_fields=[
                    "refused_rows", "rows_done", "accepted", "unchanged", "refused",
                    "adjustments", "status",
                ]
            )  # fmt: skip

        try:
            meter_readings_import_rows(
                community=job.community,
                rows=chunk,
                submitted_by=job.submitted_by,
                now=now,
                within=count,
            )
        except _ChunkTaken:
            continue
    ReadingImport.objects.filter(pk=job.pk).exclude(status=ReadingImportStatus.DONE).update(
        status=ReadingImportStatus.DONE, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job


class _ChunkTaken(Exception):  # noqa: N818 - a signal between two runs, not an error
    """Another run of the same import committed this chunk first."""
