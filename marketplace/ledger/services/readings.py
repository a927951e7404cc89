"""Meter readings in: bulk from the API, a community's CSV file, and simulated for the demo.

Every row is checked on its own and reported; good rows are kept even when others are refused.
A reading that differs from the meter point's current one is stored as a new version that
supersedes it; an identical one is reported as unchanged, so a retried upload adds nothing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Membership, MembershipRole, MembershipStatus, MeterPoint, User
from config.errors import ApplicationError, ErrorCode
from marketplace.ledger.lock_objects import lock_ledger_chain
from marketplace.ledger.models import LedgerTransaction, MeterReading, ReadingSource
from marketplace.ledger.services.ledger import ZERO
from marketplace.ledger.services.settlement import (
    confirmed_trades,
    expected_meter_points,
    latest_readings,
    settlement_adjust,
    settlement_key,
)
from marketplace.models import Community, Interval
from units import KWH, KWH_DIGITS, UnitError, parse_decimal, places

CSV_COLUMNS = ("meter_point", "interval_start", "imported_kwh", "exported_kwh")
# What the readings' energy columns can store (KWH_DIGITS digits, KWH's places of them decimals).
MAX_KWH = Decimal(10) ** (KWH_DIGITS - places(KWH))
MAX_ROWS = 50_000  # one month of 15-minute readings for about 17 meter points


@dataclass(frozen=True)
class ReadingRow:
    """The outcome of one submitted row; ``row`` is the list index + 1 or the CSV line."""

    row: int
    accepted: bool
    code: str = ""
    reason: str = ""
    reading_id: int | None = None
    version: int | None = None
    unchanged: bool = False


@dataclass(frozen=True)
class ReadingReport:
    rows: tuple[ReadingRow, ...]
    # Adjustment transactions booked because a reading arrived after its interval was settled.
    adjustment_ids: tuple[int, ...] = field(default=())

    @property
    def accepted(self) -> list[ReadingRow]:
        return [row for row in self.rows if row.accepted]

    @property
    def refused(self) -> list[ReadingRow]:
        return [row for row in self.rows if not row.accepted]


class _RefusedError(Exception):
    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _energy(value: object, name: str) -> Decimal:
    if value is None:
        raise _RefusedError(ErrorCode.REQUIRED, f"{name} is missing.")
    try:
        number = parse_decimal(value, step=KWH)
    except UnitError as exc:
        reason = (
            f"{name} is not a number: {value!r}."
            if exc.code == ErrorCode.NOT_A_NUMBER
            else f"{name}: {exc.message} (got {value!r})"
        )
        raise _RefusedError(ErrorCode(exc.code), reason) from None
    if number < 0:
        raise _RefusedError(ErrorCode.OUT_OF_RANGE, f"{name} must not be negative ({number}).")
    if number >= MAX_KWH:  # also beyond what quantize can hold (1e30, 200 digits)
        raise _RefusedError(
            ErrorCode.MAX_DIGITS, f"{name} is too large: at most {KWH_DIGITS} digits in all."
        )
    return number.quantize(KWH)


def _start(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value or "").strip()
        parsed = parse_datetime(text) if text else None
        if parsed is None:
            raise _RefusedError(
                ErrorCode.BAD_DATETIME, f"interval_start is not a date and time: {text!r}."
            )
        moment = parsed
    if timezone.is_naive(moment):
        # A local wall-clock time is ambiguous on daylight-saving days; readings are UTC.
        raise _RefusedError(
            ErrorCode.BAD_DATETIME, "interval_start needs a time zone, e.g. 2026-06-01T10:00:00Z."
        )
    return moment.astimezone(UTC)


def _may_submit(user: User, meter_point: MeterPoint, managed: set[int]) -> bool:
    membership = meter_point.membership
    if user.is_superuser or membership.community_id in managed:
        return True
    return membership.user_id == user.pk and membership.status == MembershipStatus.APPROVED


def _managed_communities(user: User) -> set[int]:
    return set(
        Membership.objects.filter(
            user=user, role=MembershipRole.MANAGER, status=MembershipStatus.APPROVED
        ).values_list("community_id", flat=True)
    )


def _record(
    *,
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    submitted_by: User | None,
    source: ReadingSource,
    community: Community | None,
    now: datetime,
) -> ReadingReport:
    """Check and store rows; the caller holds the transaction."""
    rows = list(rows)
    if len(rows) > MAX_ROWS:
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE, f"At most {MAX_ROWS} readings at a time.", field="readings"
        )
    managed = _managed_communities(submitted_by) if submitted_by else set()
    mp_ids = set()
    for _, data in rows:
        with contextlib.suppress(ValueError):  # a bad id is reported row by row below
            mp_ids.add(int(str(data.get("meter_point", "")).strip()))
    meter_points = MeterPoint.objects.select_related("membership").in_bulk(mp_ids)
    interval_cache: dict[tuple[int, object], Interval | None] = {}

    def find_interval(community_id: int, data: Mapping[str, Any]) -> Interval:
        if data.get("interval") not in (None, ""):
            lookup: tuple[int, object] = (community_id, f"id:{data['interval']}")
            if lookup not in interval_cache:
                try:
                    interval_pk = int(str(data["interval"]))
                except ValueError as exc:
                    raise _RefusedError(ErrorCode.NOT_AN_INTEGER, "interval is not an id.") from exc
                interval_cache[lookup] = (
                    Interval.objects.select_related("rules")
                    .filter(pk=interval_pk, community_id=community_id)
                    .first()
                )
        else:
            start = _start(data.get("interval_start"))
            lookup = (community_id, start)
            if lookup not in interval_cache:
                interval_cache[lookup] = (
                    Interval.objects.select_related("rules")
                    .filter(community_id=community_id, start=start)
                    .first()
                )
        interval = interval_cache[lookup]
        if interval is None:
            raise _RefusedError(
                ErrorCode.NOT_FOUND, "The community has no such interval (check the start time)."
            )
        return interval

    report: list[ReadingRow] = []
    touched: set[tuple[int, int]] = set()
    latest: dict[int, dict[int, MeterReading]] = {}
    for number, data in rows:
        try:
            try:
                meter_point = meter_points.get(int(str(data.get("meter_point", "")).strip()))
            except ValueError:
                meter_point = None
            if meter_point is None or (
                community is not None and meter_point.membership.community_id != community.pk
            ):
                raise _RefusedError(ErrorCode.NOT_FOUND, "Unknown meter point.")
            if submitted_by is not None and not _may_submit(submitted_by, meter_point, managed):
                raise _RefusedError(
                    ErrorCode.PERMISSION_DENIED,
                    "Only the meter point's member or the community manager may send readings.",
                )
            interval = find_interval(meter_point.membership.community_id, data)
            imported = _energy(data.get("imported_kwh"), "imported_kwh")
            exported = _energy(data.get("exported_kwh"), "exported_kwh")
            if interval.end > now:
                raise _RefusedError(ErrorCode.INVALID_STATE, "The interval has not ended yet.")
            hours = interval.hours
            for name, value, capacity_kw in (
                ("imported_kwh", imported, meter_point.import_capacity_kw),
                ("exported_kwh", exported, meter_point.export_capacity_kw),
            ):
                if value > capacity_kw * hours:
                    raise _RefusedError(
                        ErrorCode.OVER_CAPACITY,
                        f"{name} {value} is beyond the meter point's capacity "
                        f"({capacity_kw} kW x {hours.normalize()} h = "
                        f"{(capacity_kw * hours).quantize(KWH)} kWh).",
                    )
        except _RefusedError as refused:
            report.append(ReadingRow(number, False, str(refused.code), refused.reason))
            continue
        if interval.pk not in latest:
            # Every batch meter point's latest reading of this interval in one query, not one
            # query per row.
            latest[interval.pk] = {}
            for existing in MeterReading.objects.filter(
                interval=interval, meter_point_id__in=mp_ids
            ).order_by("version"):
                latest[interval.pk][existing.meter_point_id] = existing
        reading, created = _store(
            current=latest[interval.pk].get(meter_point.pk),
            meter_point=meter_point,
            interval=interval,
            imported=imported,
            exported=exported,
            source=source,
            submitted_by=submitted_by,
            now=now,
        )
        if created:
            touched.add((interval.pk, meter_point.membership_id))
            latest[interval.pk][meter_point.pk] = reading
        report.append(
            ReadingRow(
                number, True, reading_id=reading.pk, version=reading.version, unchanged=not created
            )
        )
    adjustments = []
    if touched:
        # Only a settled interval needs an adjustment; an unsettled one's settlement reads these
        # readings itself. One query for the batch instead of one settlement_adjust per row
        # (most batches are readings of intervals not settled yet). Under the chain lock, as
        # settlement_adjust checks it, so a settlement that commits meanwhile is seen.
        lock_ledger_chain()
        keys = {settlement_key(Interval(pk=interval_pk)) for interval_pk, _ in touched}
        settled = set(LedgerTransaction.objects.filter(key__in=keys).values_list("key", flat=True))
        for interval_pk, membership_id in sorted(touched):
            if settlement_key(Interval(pk=interval_pk)) not in settled:
                continue
            adjustment = settlement_adjust(
                interval=Interval(pk=interval_pk),
                membership=Membership.objects.get(pk=membership_id),
                now=now,
            )
            if adjustment is not None:
                adjustments.append(adjustment.pk)
    return ReadingReport(tuple(report), tuple(adjustments))


def _store(
    *,
    current: MeterReading | None,
    meter_point: MeterPoint,
    interval: Interval,
    imported: Decimal,
    exported: Decimal,
    source: ReadingSource,
    submitted_by: User | None,
    now: datetime,
) -> tuple[MeterReading, bool]:
    """Store the reading as a new version of ``current`` (its latest one), unless it is equal."""
    if current is not None and (current.imported_kwh, current.exported_kwh) == (
        imported,
        exported,
    ):
        return current, False
    reading = MeterReading.objects.create(
        meter_point=meter_point,
        interval=interval,
        imported_kwh=imported,
        exported_kwh=exported,
        source=source,
        received_at=now,
        submitted_by=submitted_by,
        version=current.version + 1 if current else 1,
        supersedes=current,
    )
    return reading, True


def meter_readings_submit(
    *,
    submitted_by: User,
    readings: Iterable[Mapping[str, Any]],
    source: ReadingSource = ReadingSource.API,
    now: datetime | None = None,
) -> ReadingReport:
    """Store a batch of readings and report each row.

    Each reading is a mapping with ``meter_point`` (id), either ``interval`` (id) or
    ``interval_start`` (aware datetime or ISO 8601 text with a zone), ``imported_kwh`` and
    ``exported_kwh`` (kWh, >= 0, at most 3 places; text or Decimal). The submitter must be the
    meter point's approved member or an approved manager of its community (the API checks the
    token's ``meter`` scope before calling). Rows that arrive after their interval was settled
    book adjustment transactions, listed in the report.
    """
    with transaction.atomic(durable=True):
        return _record(
            rows=enumerate(readings, start=1),
            submitted_by=submitted_by,
            source=source,
            community=None,
            now=now or timezone.now(),
        )


def csv_rows(file: IO[bytes] | IO[str]) -> list[tuple[int, dict[str, Any]]]:
    """A readings CSV file as (line number, row) pairs; a file that is not UTF-8 or lacks the
    ``CSV_COLUMNS`` header raises ``ApplicationError`` on ``file``. Cells are checked later,
    row by row, so one bad cell refuses only its row."""
    raw = file.read()
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ApplicationError(
            ErrorCode.NOT_UTF8, "The file is not UTF-8 text.", field="file"
        ) from exc
    if "\x00" in text:  # no CSV writer puts one there, and PostgreSQL text cannot hold it
        raise ApplicationError(
            ErrorCode.FORBIDDEN_CHARACTER,
            "The file is not CSV: it has a NUL character.",
            field="file",
        )
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [name.strip() for name in reader.fieldnames or []]
        if not set(CSV_COLUMNS) <= set(header):
            raise ApplicationError(
                ErrorCode.BAD_CSV_HEADER,
                f"The first line must name the columns {', '.join(CSV_COLUMNS)}.",
                field="file",
            )
        reader.fieldnames = header
        return [(reader.line_num, dict(row)) for row in reader]
    except csv.Error as exc:  # e.g. a NUL byte or a cell beyond the field size limit
        raise ApplicationError(
            ErrorCode.NOT_CSV, f"The file is not CSV: {exc}.", field="file"
        ) from None


def check_may_import(*, community: Community, submitted_by: User) -> None:
    """Only the community's approved managers (and superusers) may import its readings."""
    if not submitted_by.is_superuser and community.pk not in _managed_communities(submitted_by):
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED, "Only the community's managers may import readings."
        )


def meter_readings_import_rows(
    *,
    community: Community,
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    submitted_by: User,
    now: datetime | None = None,
    within: Callable[[ReadingReport], None] | None = None,
) -> ReadingReport:
    """Store one batch of a community's CSV rows in one transaction; ``within`` runs inside it
    with the report (an import's progress commits with its readings)."""
    with transaction.atomic(durable=True):
        report = _record(
            rows=rows,
            submitted_by=submitted_by,
            source=ReadingSource.CSV,
            community=community,
            now=now or timezone.now(),
        )
        if within is not None:
            within(report)
        return report


def meter_readings_import_csv(
    *,
    community: Community,
    file: IO[bytes] | IO[str],
    submitted_by: User,
    now: datetime | None = None,
) -> ReadingReport:
    """Import a whole community's readings from CSV (columns: see ``CSV_COLUMNS``) at once.

    Only the community's approved managers (and superusers) may import; rows naming another
    community's meter point are refused as unknown. ``row`` in the report is the CSV line number.
    The admin's upload runs large files in the background instead (``reading_imports``).
    """
    check_may_import(community=community, submitted_by=submitted_by)
    rows = csv_rows(file)
    return meter_readings_import_rows(
        community=community, rows=rows, submitted_by=submitted_by, now=now
    )


def readings_simulate(
    *, interval: Interval, noise: Decimal = Decimal("0.05"), seed: int | None = None
) -> list[MeterReading]:
    """Demo readings: each meter point's confirmed schedule times (1 +/- up to ``noise``).

    Meter points that already have a reading are left alone, so calling it twice adds nothing.
    Values are clipped to the meter point's capacity. Runs in the caller's transaction; the seed
    defaults to the interval's id, so the same interval always gets the same readings.
    """
    rng = random.Random(interval.pk if seed is None else seed)  # noqa: S311 - demo noise
    trades = confirmed_trades(interval)
    meter_points = expected_meter_points(interval, trades)
    existing = latest_readings(interval)
    scheduled: dict[int, list[Decimal]] = {mp: [ZERO, ZERO] for mp in meter_points}
    first_of_member: dict[int, int] = {}
    for mp, membership_id in sorted(meter_points.items()):
        first_of_member.setdefault(membership_id, mp)
    for trade in trades:
        q = trade.confirmed_kwh or ZERO
        buyer_mp = trade.buyer_meter_point_id or first_of_member.get(trade.buyer_id or 0)
        seller_mp = trade.seller_meter_point_id or first_of_member.get(trade.seller_id or 0)
        if trade.buyer_id is not None and buyer_mp in scheduled:
            scheduled[buyer_mp][0] += q
        if trade.seller_id is not None and seller_mp in scheduled:
            scheduled[seller_mp][1] += q
    capacities = MeterPoint.objects.in_bulk(list(meter_points))
    hours = interval.hours
    created = []
    with transaction.atomic():
        for mp in sorted(meter_points):
            if mp in existing:
                continue
            imported, exported = (
                max(
                    ZERO, min(value * (1 + Decimal(rng.uniform(-1, 1)) * noise), capacity * hours)
                ).quantize(KWH)
                for value, capacity in zip(
                    scheduled[mp],
                    (capacities[mp].import_capacity_kw, capacities[mp].export_capacity_kw),
                    strict=True,
                )
            )
            created.append(
                MeterReading.objects.create(
                    meter_point_id=mp,
                    interval=interval,
                    imported_kwh=imported,
                    exported_kwh=exported,
                    source=ReadingSource.SIMULATED,
                    received_at=max(interval.end, timezone.now()),
                )
            )
    return created
