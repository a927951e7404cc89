"""Meter readings in: bulk from the API, a community's CSV file, and simulated for the demo.

Every row is checked on its own and reported; good rows are kept even when others are refused.
A reading that differs from the meter point's current one is stored as a new version that
supersedes it; an identical one is reported as unchanged, so a retried upload adds nothing.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from operator import attrgetter
from typing import IO, Any, NamedTuple

from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import permissions
from accounts.models import Membership, MeterPoint, MeterPointStatus, User
from accounts.services.audit import audit_record
from config.errors import ApplicationError, ErrorCode
from config.sql import insert_rows, table_name
from config.transactions import action_transaction
from marketplace.ledger.lock_objects import lock_ledger_chain
from marketplace.ledger.models import (
    LedgerTransaction,
    MeterReading,
    ReadingSource,
    ReadingStatus,
)
from marketplace.ledger.plausibility import (
    HISTORY_READINGS,
    JUMP_FACTOR,
    Outcome,
    ReadingHistory,
    history_matters,
    jump_floor_kwh,
    reading_check,
)
from marketplace.ledger.services.ledger import ZERO
from marketplace.ledger.services.settlement import (
    confirmed_trades,
    expected_meter_points,
    settlement_adjust,
    settlement_key,
)
from marketplace.models import Community, Interval
from units import KWH, KWH_DIGITS, UnitError, parse_decimal, places

CSV_COLUMNS = ("meter_point", "interval_start", "imported_kwh", "exported_kwh")
# What the readings' energy columns can store (KWH_DIGITS digits, KWH's places of them decimals).
MAX_KWH = Decimal(10) ** (KWH_DIGITS - places(KWH))
_KWH_EXPONENT = -places(KWH)
NO_HISTORY = ReadingHistory(count=0, highest_imported_kwh=ZERO, highest_exported_kwh=ZERO)
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
    # Stored but not counted: the plausibility checks flagged it (``code``/``reason`` say why);
    # it settles once a manager accepts it.
    flagged: bool = False


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

    @property
    def flagged(self) -> list[ReadingRow]:
        return [row for row in self.rows if row.flagged]


class _RefusedError(Exception):
    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _energy(value: object, name: str) -> Decimal:
    if (
        type(value) is Decimal
        and value.is_finite()
        and value.as_tuple().exponent >= _KWH_EXPONENT  # type: ignore[operator]
        and ZERO <= value < MAX_KWH
    ):
        # What the engine and most API clients send: a Decimal with no more places than a Wh,
        # within the limits, which the full parse below would accept as it is. Anything else
        # takes that parse and its own refusal.
        return value.quantize(KWH)
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
        raise _RefusedError(ErrorCode.NEGATIVE_READING, f"{name} must not be negative ({number}).")
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


def _meter_point_id(data: Mapping[str, Any]) -> int | None:
    """The row's meter point id, or None if it is not one (reported row by row)."""
    value = data.get("meter_point", "")
    if type(value) is int:
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


class _MeterFacts(NamedTuple):
    """What checking and storing a reading needs of its meter point."""

    pk: int
    membership_id: int
    community_id: int
    status: str
    import_capacity_kw: Decimal
    export_capacity_kw: Decimal


class _IntervalFacts(NamedTuple):
    """What checking and storing a reading needs of its interval."""

    pk: int
    community_id: int
    start: datetime
    end: datetime
    hours: Decimal


class _StoredReading(NamedTuple):
    """A meter point's latest stored reading of an interval, as ``_store`` and the report use
    it: plain values, as a thousand model instances cost more than the rest of the batch."""

    pk: int
    imported_kwh: Decimal
    exported_kwh: Decimal
    version: int
    status: str
    flag_reason: str


# SQLite allows 32,766 parameters in one statement; PostgreSQL takes the ids as one array.
_SQLITE_IN_CHUNK = 30_000


def _select_in(
    sql: str,
    column: str,
    ids: Iterable[int],
    before: Sequence[Any] = (),
    after: Sequence[Any] = (),
) -> list[Any]:
    """The rows of ``sql`` whose ``{ids}`` is formatted as ``column`` among ``ids`` (its
    parameters between those ``before`` and ``after`` it). On PostgreSQL the ids are one array
    parameter (``= ANY``): an ``IN`` list of a thousand placeholders cost the ORM and the
    server more than the rows themselves."""
    ids = [int(pk) for pk in ids]
    if not ids:
        return []
    rows: list[Any] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The array as its text form: the driver's dumper of a list goes value by value.
            literal = "{" + ",".join(map(str, ids)) + "}"
            cursor.execute(
                sql.format(ids=f"{column} = ANY(%s::bigint[])"), [*before, literal, *after]
            )
            return list(cursor.fetchall())
        for start in range(0, len(ids), _SQLITE_IN_CHUNK):
            chunk = ids[start : start + _SQLITE_IN_CHUNK]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(sql.format(ids=f"{column} IN ({marks})"), [*before, *chunk, *after])
            rows += cursor.fetchall()
    return rows


def _meter_facts(meter_point_ids: Iterable[int]) -> dict[int, _MeterFacts]:
    """The batch's meter points by id, as plain rows: a thousand model instances (and their
    memberships) cost more than the rest of a batch's checks."""
    rows = _select_in(
        # Table names only are formatted in; every value is a parameter.
        "SELECT mp.id, mp.membership_id, m.community_id, mp.status,"  # noqa: S608
        " mp.import_capacity_kw, mp.export_capacity_kw"
        f" FROM {table_name(MeterPoint)} mp JOIN {table_name(Membership)} m"
        " ON m.id = mp.membership_id WHERE {ids}",
        "mp.id",
        meter_point_ids,
    )
    if connection.vendor != "postgresql":
        # SQLite hands decimals back as floats; kW have kWh's step.
        rows = [(*row[:4], _column_kwh(row[4]), _column_kwh(row[5])) for row in rows]
    return {row[0]: _MeterFacts._make(row) for row in rows}


def _latest_readings(interval_id: int, meter_point_ids: Iterable[int]) -> dict[int, _StoredReading]:
    """Each of these meter points' latest stored reading of the interval (any status)."""
    rows = _select_in(
        "SELECT id, meter_point_id, imported_kwh, exported_kwh, version, status,"  # noqa: S608
        f" flag_reason FROM {table_name(MeterReading)}"
        " WHERE interval_id = %s AND {ids} ORDER BY version",
        "meter_point_id",
        meter_point_ids,
        [interval_id],
    )
    latest: dict[int, _StoredReading] = {}
    for pk, meter_point_id, imported, exported, version, status, flag_reason in rows:
        # Ordered by version: the last one of each meter point stays.
        latest[meter_point_id] = _StoredReading(
            pk, _column_kwh(imported), _column_kwh(exported), version, status, flag_reason
        )
    return latest


def _history(meter_point_id: int) -> list[tuple[Decimal, Decimal]]:
    """The meter's most recent accepted readings (imported, exported), newest first."""
    return list(
        MeterReading.objects.filter(
            meter_point_id=meter_point_id,
            status=ReadingStatus.ACCEPTED,
            superseded_by__isnull=True,
        )
        .order_by("-interval__start")
        .values_list("imported_kwh", "exported_kwh")[:HISTORY_READINGS]
    )


def _history_summaries(
    meter_point_ids: list[int],
    *,
    since: datetime | None = None,
    community_ids: Iterable[int] = (),
) -> dict[int, ReadingHistory]:
    """``_history`` of many meters, summarised (``ReadingHistory``), in one statement or a few.

    The same readings as ``_history`` (accepted, not superseded, the newest HISTORY_READINGS by
    interval start) are counted and their highest values taken in the database, so a batch of
    a thousand meters' readings costs one round trip instead of a thousand, and no history rows
    travel. A meter without readings is absent.

    Each step first totals all the readings it looks at (a plain aggregate) and ranks them by
    interval start only for the meters with more than HISTORY_READINGS of them: ranking every
    meter's week of readings cost the database several times the totals.

    ``since`` bounds the work, not the answer: the readings of intervals starting at or after it
    (of ``community_ids``, the meters' communities) are summarised first, and a meter with at
    least HISTORY_READINGS of them is done (every older reading is older than those, so its
    newest HISTORY_READINGS are all among them). Only the others are summarised again over
    their whole history. Without the bound, a month of readings made every batch read every
    meter's whole history.
    """
    communities = sorted(set(community_ids))
    summaries: dict[int, ReadingHistory] = {}
    rest = list(meter_point_ids)
    if since is not None and communities:
        first = (
            Interval.objects.filter(community_id__in=communities, start__gte=since)
            .order_by()
            .aggregate(first=Min("id"))["first"]
        )
        if first is not None:  # else no interval, so no reading, lies in the window
            summaries = _newest(rest, (since, communities, first), enough=HISTORY_READINGS)
            rest = [mp for mp in rest if mp not in summaries]
    if rest:
        summaries.update(_newest(rest, None, enough=0))
    return summaries


class _JumpTest(NamedTuple):
    """A reading above its jump floor: its meter, community and interval start, and the values
    to test against the history (None: that column is at or below its floor)."""

    meter_point_id: int
    community_id: int
    start: datetime
    imported_kwh: Decimal | None
    exported_kwh: Decimal | None


def _not_jumps(tests: list[_JumpTest]) -> set[int]:
    """The meters whose reading ``reading_check`` cannot flag as a jump, whatever their week of
    history holds, found from their last day alone.

    A value is a jump when it is above JUMP_FACTOR times the highest of the meter's newest
    HISTORY_READINGS readings. With no reading of the meter at or after the tested interval's
    start, the readings of the day before it are among those newest ones (a day holds at most 96
    intervals, the shortest being 15 minutes); so one of them at or above value / JUMP_FACTOR, in
    each column above its floor, settles it: the highest cannot be lower. A meter this does not
    settle gets its exact history. On PostgreSQL only (one statement for the batch); elsewhere
    every such meter reads its history.
    """
    if not tests or connection.vendor != "postgresql":
        return set()
    earliest = min(t.start for t in tests) - timedelta(days=1)
    first = (
        Interval.objects.filter(
            community_id__in={t.community_id for t in tests}, start__gte=earliest
        )
        .order_by()
        .aggregate(first=Min("id"))["first"]
    )
    if first is None:
        return set()
    reading, interval = table_name(MeterReading), table_name(Interval)
    # ``first`` bounds the index range of each meter's readings (every interval looked at has
    # an id at least that); the interval's start and community are the tests themselves.
    day = (
        f"SELECT 1 FROM {reading} r JOIN {interval} i ON i.id = r.interval_id"  # noqa: S608
        " WHERE r.meter_point_id = m.id AND r.interval_id >= %(first)s"
        " AND i.community_id = m.community AND i.start >= m.at - INTERVAL '1 day'"
        " AND i.start < m.at AND r.status = %(accepted)s AND r.{column} * %(factor)s >= m.{value}"
        f" AND NOT EXISTS (SELECT 1 FROM {reading} s WHERE s.supersedes_id = r.id"
        " AND s.supersedes_id IS NOT NULL)"
    )
    imported = day.format(column="imported_kwh", value="imported")
    exported = day.format(column="exported_kwh", value="exported")
    sql = (
        "SELECT m.id FROM unnest(%(ids)s::bigint[], %(communities)s::bigint[],"  # noqa: S608
        " %(starts)s::timestamptz[], %(imports)s::numeric[], %(exports)s::numeric[])"
        " AS m(id, community, at, imported, exported)"
        f" WHERE NOT EXISTS (SELECT 1 FROM {reading} r JOIN {interval} i"
        " ON i.id = r.interval_id WHERE r.meter_point_id = m.id AND r.interval_id >= %(first)s"
        " AND i.start >= m.at)"
        f" AND (m.imported IS NULL OR EXISTS ({imported}))"
        f" AND (m.exported IS NULL OR EXISTS ({exported}))"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "ids": [t.meter_point_id for t in tests],
                "communities": [t.community_id for t in tests],
                "starts": [t.start for t in tests],
                "imports": [t.imported_kwh for t in tests],
                "exports": [t.exported_kwh for t in tests],
                "first": first,
                "accepted": ReadingStatus.ACCEPTED.value,
                "factor": JUMP_FACTOR,
            },
        )
        return {int(row[0]) for row in cursor.fetchall()}


def _newest(
    meter_point_ids: list[int], window: tuple[datetime, list[int], int] | None, *, enough: int
) -> dict[int, ReadingHistory]:
    """The summaries of the meters with at least ``enough`` readings in ``window``: of all of
    them where they are at most HISTORY_READINGS (then they are the newest), else ranked."""
    totals = _summaries(meter_point_ids, window, ranked=False)
    found = {mp: t for mp, t in totals.items() if enough <= t.count <= HISTORY_READINGS}
    over = [mp for mp, t in totals.items() if t.count > HISTORY_READINGS]
    found.update(_summaries(over, window, ranked=True))
    return found


def _summaries(
    meter_point_ids: list[int], window: tuple[datetime, list[int], int] | None, *, ranked: bool
) -> dict[int, ReadingHistory]:
    """The summary of each meter's accepted, not superseded readings (with ``window``: of the
    intervals of those communities starting at or after that time, the lowest of their ids
    last); ``ranked``: of its newest
    HISTORY_READINGS of them by interval start, else of all of them."""
    summaries: dict[int, ReadingHistory] = {}
    if not meter_point_ids:
        return summaries
    reading, interval = table_name(MeterReading), table_name(Interval)
    bound = ""
    extra: list[Any] = []
    if window is not None:
        since, communities, first = window
        # Every interval of the window has an id of at least ``first``, so the bound on the
        # reading's interval id changes no answer; it lets the database read each meter's
        # readings from its unique index (meter point, interval, version) from that id on,
        # instead of every reading the meter ever had (a month of them by a month's end).
        bound = (
            f" AND r.interval_id >= %s AND i.community_id IN"
            f" ({', '.join(['%s'] * len(communities))}) AND i.start >= %s"
        )
        extra = [first, *communities, connection.ops.adapt_datetimefield_value(since)]
    # ``supersedes_id IS NOT NULL`` adds nothing to the answer, but lets the database look up
    # only the corrections (an index range) instead of hashing every reading's column.
    # Table names and placeholders only are formatted in; every value is a parameter.
    readings = (
        f" FROM {reading} r JOIN {interval} i ON i.id = r.interval_id"  # noqa: S608
        f" WHERE {{ids}} AND r.status = %s{bound} AND NOT EXISTS (SELECT 1"
        f" FROM {reading} s WHERE s.supersedes_id = r.id AND s.supersedes_id IS NOT NULL)"
    )
    # The ids' parameters go in before these (``{ids}`` comes first in the statement).
    params: list[Any] = [ReadingStatus.ACCEPTED.value, *extra]
    if ranked:
        sql = (
            "SELECT h.meter_point_id, COUNT(*), MAX(h.imported_kwh), MAX(h.exported_kwh)"  # noqa: S608
            " FROM (SELECT r.meter_point_id, r.imported_kwh, r.exported_kwh, ROW_NUMBER()"
            f"  OVER (PARTITION BY r.meter_point_id ORDER BY i.start DESC) AS n{readings}) h"
            " WHERE h.n <= %s GROUP BY h.meter_point_id"
        )
        params.append(HISTORY_READINGS)
    else:
        sql = (
            "SELECT r.meter_point_id, COUNT(*), MAX(r.imported_kwh), MAX(r.exported_kwh)"
            f"{readings} GROUP BY r.meter_point_id"
        )
    for start in range(0, len(meter_point_ids), _SUMMARY_CHUNK):
        chunk = meter_point_ids[start : start + _SUMMARY_CHUNK]
        rows = _select_in(sql, "r.meter_point_id", chunk, (), params)
        for meter_point_id, count, imported, exported in rows:
            summaries[int(meter_point_id)] = ReadingHistory(
                count=int(count),
                highest_imported_kwh=_column_kwh(imported),
                highest_exported_kwh=_column_kwh(exported),
            )
    return summaries


_SUMMARY_CHUNK = 5_000
_SQLITE_DECIMALS = Context(prec=15)


def _column_kwh(value: Decimal | float | int | None) -> Decimal:
    """A kWh column's value as the ORM gives it (SQLite hands back a float or an int)."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return _SQLITE_DECIMALS.create_decimal_from_float(float(value)).quantize(KWH)


def _record(
    *,
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    submitted_by: User | None,
    source: ReadingSource,
    community: Community | None,
    now: datetime,
    allowed: frozenset[int] | None,
) -> ReadingReport:
    """Check and store rows; the caller holds the transaction. ``allowed``: the communities
    the submitter is a metering source for (``permissions.meter_reading_community_ids``, the
    one rule for every channel), None: every one."""
    rows = list(rows)
    if len(rows) > MAX_ROWS:
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE, f"At most {MAX_ROWS} readings at a time.", field="readings"
        )
    histories: dict[int, list[tuple[Decimal, Decimal]]] = {}
    # A bad id is None here and reported row by row below.
    row_meter_ids = [_meter_point_id(data) for _, data in rows]
    rows_of = Counter(mp for mp in row_meter_ids if mp is not None)
    mp_ids = set(rows_of)
    # A meter with one row in the batch needs its history once, as it stands: summarised for all
    # of them in one statement. One with several rows sees the batch's earlier rows in its
    # history too, so its readings are fetched and kept as a list (``_history``).
    summaries: dict[int, ReadingHistory] | None = None
    meter_points = _meter_facts(mp_ids)
    interval_cache: dict[tuple[int, object], _IntervalFacts | None] = {}

    def find_interval(community_id: int, data: Mapping[str, Any]) -> _IntervalFacts:
        raw = data.get("interval")
        if raw not in (None, ""):
            lookup: tuple[int, object] = (community_id, raw if type(raw) is int else f"id:{raw}")
            if lookup not in interval_cache:
                try:
                    interval_pk = int(str(raw))
                except ValueError as exc:
                    raise _RefusedError(ErrorCode.NOT_AN_INTEGER, "interval is not an id.") from exc
                interval_cache[lookup] = _interval_facts(pk=interval_pk, community_id=community_id)
        else:
            start = _start(data.get("interval_start"))
            lookup = (community_id, start)
            if lookup not in interval_cache:
                interval_cache[lookup] = _interval_facts(community_id=community_id, start=start)
        interval = interval_cache[lookup]
        if interval is None:
            raise _RefusedError(
                ErrorCode.NOT_FOUND, "The community has no such interval (check the start time)."
            )
        return interval

    parsed: dict[int, tuple[_IntervalFacts, Decimal, Decimal] | _RefusedError] = {}

    def parse(
        index: int, data: Mapping[str, Any], meter_point: _MeterFacts
    ) -> tuple[_IntervalFacts, Decimal, Decimal]:
        """The row's interval and energies, once per row (refusals raised again each time)."""
        result = parsed.get(index)
        if result is None:
            try:
                result = (
                    find_interval(meter_point.community_id, data),
                    _energy(data.get("imported_kwh"), "imported_kwh"),
                    _energy(data.get("exported_kwh"), "exported_kwh"),
                )
            except _RefusedError as refused:
                result = refused
            parsed[index] = result
        if isinstance(result, _RefusedError):
            raise result
        return result

    # Only a value above its jump floor is compared with the meter's history
    # (``history_matters``): the meters with one row in the batch whose reading has one, and
    # the earliest interval start their week of history can reach back to.
    needs_history: set[int] = set()
    history_communities: set[int] = set()
    since: datetime | None = None
    # What the last day's readings must reach for the value not to be a jump (``_not_jumps``).
    jump_tests: dict[int, _JumpTest] = {}
    for index, (_, data) in enumerate(rows):
        mp = row_meter_ids[index]
        candidate = meter_points.get(mp) if mp is not None else None
        if candidate is None or rows_of[candidate.pk] != 1:
            continue
        if candidate.status != MeterPointStatus.APPROVED:
            continue
        try:
            at, imported, exported = parse(index, data, candidate)
        except _RefusedError:
            continue
        if history_matters(
            imported_kwh=imported,
            exported_kwh=exported,
            import_capacity_kw=candidate.import_capacity_kw,
            export_capacity_kw=candidate.export_capacity_kw,
            hours=at.hours,
        ):
            needs_history.add(candidate.pk)
            history_communities.add(at.community_id)
            reach = at.start - (at.end - at.start) * HISTORY_READINGS
            since = reach if since is None else min(since, reach)
            floor_in = jump_floor_kwh(candidate.import_capacity_kw, at.hours)
            floor_out = jump_floor_kwh(candidate.export_capacity_kw, at.hours)
            jump_tests[candidate.pk] = _JumpTest(
                candidate.pk,
                at.community_id,
                at.start,
                imported if imported > floor_in else None,
                exported if exported > floor_out else None,
            )
    # A meter whose last day holds a reading the value does not jump above gets the same answer
    # from any history of it (as a value below its floor): its week is not read.
    needs_history -= _not_jumps(list(jump_tests.values()))

    report: list[ReadingRow] = []
    # Accepted rows wait for their ids until the readings go in, in one insert per batch.
    stored: list[tuple[int, _StoredReading | _NewReading, bool, bool]] = []
    waiting: list[_NewReading] = []
    touched: set[tuple[int, int]] = set()
    latest: dict[int, dict[int, _StoredReading | _NewReading]] = {}
    submitted_by_id = submitted_by.pk if submitted_by is not None else None
    for index, (number, data) in enumerate(rows):
        try:
            mp = row_meter_ids[index]
            meter_point = meter_points.get(mp) if mp is not None else None
            if meter_point is None or (
                community is not None and meter_point.community_id != community.pk
            ):
                raise _RefusedError(ErrorCode.NOT_FOUND, "Unknown meter point.")
            if allowed is not None and meter_point.community_id not in allowed:
                raise _RefusedError(
                    ErrorCode.NOT_METERING_SOURCE,
                    "Readings for this meter point come only from its community's metering "
                    "source (the manager's import or the community's meter_data token).",
                )
            if meter_point.status != MeterPointStatus.APPROVED:
                raise _RefusedError(
                    ErrorCode.METER_POINT_NOT_APPROVED,
                    "The meter point awaits its manager's approval; its readings settle nothing.",
                )
            interval, imported, exported = parse(index, data, meter_point)
            if interval.end > now:
                raise _RefusedError(ErrorCode.INVALID_STATE, "The interval has not ended yet.")
            history: list[tuple[Decimal, Decimal]] | ReadingHistory
            if rows_of[meter_point.pk] > 1:
                if meter_point.pk not in histories:
                    histories[meter_point.pk] = _history(meter_point.pk)
                history = histories[meter_point.pk]
            elif meter_point.pk in needs_history:
                if summaries is None:
                    summaries = _history_summaries(
                        sorted(needs_history), since=since, community_ids=history_communities
                    )
                history = summaries.get(meter_point.pk, NO_HISTORY)
            else:
                history = NO_HISTORY  # the check's answer is the same with any history
            finding = reading_check(
                imported_kwh=imported,
                exported_kwh=exported,
                import_capacity_kw=meter_point.import_capacity_kw,
                export_capacity_kw=meter_point.export_capacity_kw,
                hours=interval.hours,
                history=history,
            )
            if finding is not None and finding.outcome == Outcome.REFUSED:
                raise _RefusedError(finding.code, finding.reason)
        except _RefusedError as refused:
            report.append(ReadingRow(number, False, str(refused.code), refused.reason))
            continue
        of_interval = latest.get(interval.pk)
        if of_interval is None:
            # Every batch meter point's latest reading of this interval in one query, not one
            # query per row.
            of_interval = latest[interval.pk] = dict(_latest_readings(interval.pk, mp_ids))
        current = of_interval.get(meter_point.pk)
        if current is not None and current.pk is None:
            # It supersedes a reading of this batch still waiting to go in: that one needs its id.
            _flush(waiting)
        reading, created = _store(
            current=current,
            meter_point=meter_point,
            interval=interval,
            imported=imported,
            exported=exported,
            source=source,
            submitted_by_id=submitted_by_id,
            now=now,
            flag_reason=finding.reason if finding is not None else "",
        )
        flagged = reading.status == ReadingStatus.FLAGGED
        if created:
            assert isinstance(reading, _NewReading)  # a created one is always new
            waiting.append(reading)
            # A flagged version is the latest too: the next row for it supersedes this one.
            of_interval[meter_point.pk] = reading
            if not flagged:
                touched.add((interval.pk, meter_point.membership_id))
                if meter_point.pk in histories:
                    histories[meter_point.pk].insert(0, (imported, exported))
        stored.append((number, reading, created, flagged))
    _flush(waiting)
    jump = str(ErrorCode.READING_JUMP)
    report += [
        ReadingRow(
            number,
            True,
            code=jump if flagged else "",
            reason=reading.flag_reason if flagged else "",
            reading_id=reading.pk,
            version=reading.version,
            unchanged=not created,
            flagged=flagged,
        )
        for number, reading, created, flagged in stored
    ]
    report.sort(key=lambda row: row.row)
    adjustments = []
    if touched:
        # Only a settled interval needs an adjustment; an unsettled one's settlement reads these
        # readings itself. One query for the batch instead of one settlement_adjust per row
        # (most batches are readings of intervals not settled yet). Under the chain lock, as
        # settlement_adjust checks it, so a settlement that commits meanwhile is seen.
        lock_ledger_chain()
        # One key per interval, not per row: a batch is mostly a thousand rows of one interval.
        key_of = {pk: settlement_key(Interval(pk=pk)) for pk in {pk for pk, _ in touched}}
        settled_keys = set(
            LedgerTransaction.objects.filter(key__in=key_of.values()).values_list("key", flat=True)
        )
        settled = {pk for pk, key in key_of.items() if key in settled_keys}
        for interval_pk, membership_id in sorted(touched):
            if interval_pk not in settled:
                continue
            adjustment = settlement_adjust(
                interval=Interval(pk=interval_pk),
                membership=Membership.objects.get(pk=membership_id),
                now=now,
            )
            if adjustment is not None:
                adjustments.append(adjustment.pk)
    return ReadingReport(tuple(report), tuple(adjustments))


def _interval_facts(*, community_id: int, **lookup: Any) -> _IntervalFacts | None:
    """The community's interval by id or start, as plain values, or None."""
    found = (
        Interval.objects.filter(community_id=community_id, **lookup)
        .values_list("pk", "community_id", "start", "end")
        .first()
    )
    if found is None:
        return None
    pk, community, start, end = found
    return _IntervalFacts(
        pk, community, start, end, Decimal((end - start).total_seconds()) / Decimal(3600)
    )


@dataclass(slots=True)
class _NewReading:
    """A reading version waiting for ``_flush``: its columns, and its id once inserted. Not a
    model instance: building a thousand of them cost more than the insert itself."""

    meter_point_id: int
    interval_id: int
    imported_kwh: Decimal
    exported_kwh: Decimal
    source: str
    received_at: datetime
    submitted_by_id: int | None
    version: int
    supersedes_id: int | None
    status: str
    flag_reason: str
    pk: int | None = None


def _store(
    *,
    current: _StoredReading | _NewReading | None,
    meter_point: _MeterFacts,
    interval: _IntervalFacts,
    imported: Decimal,
    exported: Decimal,
    source: ReadingSource,
    submitted_by_id: int | None,
    now: datetime,
    flag_reason: str = "",
) -> tuple[_StoredReading | _NewReading, bool]:
    """The reading as a new version of ``current`` (its latest one, stored), unless it is
    equal; the new one is not saved yet (``_flush`` inserts the batch's new readings
    together)."""
    if current is None:
        version, supersedes_id = 1, None
    elif current.imported_kwh == imported and current.exported_kwh == exported:
        return current, False
    else:
        version, supersedes_id = current.version + 1, current.pk
    reading = _NewReading(
        meter_point_id=meter_point.pk,
        interval_id=interval.pk,
        imported_kwh=imported,
        exported_kwh=exported,
        source=source,
        received_at=now,
        submitted_by_id=submitted_by_id,
        version=version,
        supersedes_id=supersedes_id,
        status=ReadingStatus.FLAGGED if flag_reason else ReadingStatus.ACCEPTED,
        flag_reason=flag_reason[:300],
    )
    return reading, True


_READING_COLUMNS = (
    "meter_point_id",
    "interval_id",
    "imported_kwh",
    "exported_kwh",
    "source",
    "received_at",
    "submitted_by_id",
    "version",
    "supersedes_id",
    "status",
    "flag_reason",
)
_reading_values = attrgetter(*_READING_COLUMNS)


def _flush(waiting: list[_NewReading]) -> None:
    """Insert the waiting readings in one statement and empty the list, each with its id.

    On PostgreSQL the ids are drawn from the table's sequence first (what the insert's default
    would draw) and inserted with the rows, so nothing is read back; elsewhere each id is read
    back by its (meter point, interval, version), which is unique.
    """
    if not waiting:
        return
    table = table_name(MeterReading)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [MeterReading._meta.db_table, len(waiting)],
            )
            ids = sorted(pk for (pk,) in cursor.fetchall())
        for reading, pk in zip(waiting, ids, strict=True):
            reading.pk = pk
        insert_rows(
            MeterReading,
            ("id", *_READING_COLUMNS),
            [(reading.pk, *_reading_values(reading)) for reading in waiting],
        )
        waiting.clear()
        return
    # One writer at a time on SQLite: the rows with ids above the highest before the insert
    # are this batch's, matched by their unique (meter point, interval, version).
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608 - name only
        (highest,) = cursor.fetchone()
    insert_rows(MeterReading, _READING_COLUMNS, [_reading_values(reading) for reading in waiting])
    by_key = {(r.meter_point_id, r.interval_id, r.version): r for r in waiting}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, meter_point_id, interval_id, version FROM {table} WHERE id > %s",  # noqa: S608
            [highest],
        )
        found = cursor.fetchall()
    for pk, meter_point_id, interval_id, version in found:
        new = by_key.get((int(meter_point_id), int(interval_id), int(version)))
        if new is not None:
            new.pk = int(pk)
    waiting.clear()


def meter_readings_submit(
    *,
    submitted_by: User,
    readings: Iterable[Mapping[str, Any]],
    source: ReadingSource = ReadingSource.API,
    now: datetime | None = None,
    token_community_id: int | None = None,
) -> ReadingReport:
    """Store a batch of readings and report each row.

    Each reading is a mapping with ``meter_point`` (id), either ``interval`` (id) or
    ``interval_start`` (aware datetime or ISO 8601 text with a zone), ``imported_kwh`` and
    ``exported_kwh`` (kWh, >= 0, at most 3 places; text or Decimal). The submitter must be a
    metering source of the meter point's community (``permissions.meter_reading_community_ids``:
    its manager, or a ``meter_data`` token bound to it, ``token_community_id``); a member cannot
    report their own meter (``not_metering_source``). Every row passes the plausibility checks
    (``marketplace.ledger.plausibility``): refused rows say why; flagged rows are stored but
    settle nothing until a manager accepts them. Rows that arrive after their interval was
    settled book adjustment transactions, listed in the report.
    """
    with action_transaction():
        allowed = permissions.meter_reading_community_ids(
            submitted_by, token_community_id=token_community_id
        )
        if allowed is not None and not allowed:
            raise ApplicationError(
                ErrorCode.NOT_METERING_SOURCE,
                "Meter readings come only from a metering source: the community manager's CSV "
                "import or a 'meter_data' token a manager issued for the community.",
                field="readings",
            )
        return _record(
            rows=enumerate(readings, start=1),
            submitted_by=submitted_by,
            source=source,
            community=None,
            now=now or timezone.now(),
            allowed=allowed,
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
    """Only the community's metering source may import its readings: its approved managers
    (and superusers), by the one rule ``permissions.meter_reading_community_ids``."""
    allowed = permissions.meter_reading_community_ids(submitted_by)
    if allowed is not None and community.pk not in allowed:
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
    with action_transaction():
        report = _record(
            rows=rows,
            submitted_by=submitted_by,
            source=ReadingSource.CSV,
            community=community,
            now=now or timezone.now(),
            allowed=permissions.meter_reading_community_ids(submitted_by),
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
    # Any reading, flagged ones too: the demo never adds a version beside a real one.
    existing = set(
        MeterReading.objects.filter(interval=interval).values_list("meter_point_id", flat=True)
    )
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


def meter_reading_accept(
    *, reading: MeterReading, accepted_by: User | None, now: datetime | None = None
) -> ReadingReport:
    """A manager of the meter point's community accepts a flagged reading: it counts from now
    on. If its interval was settled already, the difference is booked as an adjustment (in the
    report); otherwise the interval's settlement will read it.
    """
    now = now or timezone.now()
    with action_transaction():
        locked = (
            MeterReading.objects.select_for_update(of=("self",))
            .select_related("meter_point__membership__community", "interval")
            .get(pk=reading.pk)
        )
        community = locked.meter_point.membership.community
        if accepted_by is not None:
            permissions.require_manage(accepted_by, community)
        if locked.status != ReadingStatus.FLAGGED:
            raise ApplicationError(
                ErrorCode.INVALID_STATE, "Only a flagged reading can be accepted.", field="reading"
            )
        locked.status = ReadingStatus.ACCEPTED
        locked.reviewed_by = accepted_by
        locked.reviewed_at = now
        locked.save(update_fields=["status", "reviewed_by", "reviewed_at"])
        # A settlement waiting for readings looks only at newer ones: make it see this one.
        Interval.objects.filter(
            pk=locked.interval_id, settlement_seen_reading__gte=locked.pk
        ).update(settlement_seen_reading=locked.pk - 1)
        audit_record(
            kind="meter_reading.accepted",
            actor=accepted_by,
            community=community,
            reading=locked.pk,
            meter_point=locked.meter_point_id,
            interval=locked.interval_id,
            flag_reason=locked.flag_reason,
        )
        adjustment = settlement_adjust(
            interval=locked.interval, membership=locked.meter_point.membership, now=now
        )
    row = ReadingRow(1, True, reading_id=locked.pk, version=locked.version)
    return ReadingReport((row,), (adjustment.pk,) if adjustment is not None else ())
