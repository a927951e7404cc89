"""What every dashboard's selectors share: the scope, the table, and the SQL building blocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    DateField,
    DecimalField,
    ExpressionWrapper,
    F,
    Func,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate

from marketplace.models import Community, Trade, TradeSource

# Up to this range the charts show every interval; beyond it, one point per local day (a year of
# quarter-hours is 35,040 points, more than any chart can show or a page should carry).
PER_INTERVAL_MAX = timedelta(days=14)
DEFAULT_DAYS = 7
P2P_SOURCES = (TradeSource.BILATERAL, TradeSource.POOL, TradeSource.COMMUNITY)
ENERGY = DecimalField(max_digits=18, decimal_places=3)
MONEY = DecimalField(max_digits=20, decimal_places=7)
ZERO = Value(Decimal(0), output_field=ENERGY)


@dataclass(frozen=True, slots=True)
class Table:
    """One chart's data: what the chart draws, the table lists and the CSV holds."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


@dataclass(frozen=True, slots=True)
class Scope:
    """Which communities and which time range a dashboard covers."""

    community: Community | None
    first_day: date
    last_day: date  # inclusive
    tz: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(0), tzinfo=self.tz)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last_day + timedelta(days=1), time(0), tzinfo=self.tz)

    @property
    def per_interval(self) -> bool:
        return self.end - self.start <= PER_INTERVAL_MAX

    @property
    def bucket_label(self) -> str:
        return "interval start (UTC)" if self.per_interval else f"day ({self.tz.key})"


def scope_timezone(community: Community | None) -> ZoneInfo:
    """The community's zone; for all communities their common zone, or UTC if they differ."""
    if community is not None:
        return ZoneInfo(community.timezone)
    zones = list(Community.objects.order_by().values_list("timezone", flat=True).distinct()[:2])
    return ZoneInfo(zones[0]) if len(zones) == 1 else ZoneInfo("UTC")


def default_scope(
    community: Community | None, *, today: date | None = None, tz: ZoneInfo | None = None
) -> Scope:
    """The last seven local days up to and including today."""
    tz = tz or scope_timezone(community)
    today = today or datetime.now(tz).date()
    return Scope(community, today - timedelta(days=DEFAULT_DAYS - 1), today, tz)


def in_scope(scope: Scope, prefix: str = "") -> Q:
    """The rows whose interval starts inside the scope (``prefix`` is the path to Interval)."""
    q = Q(**{f"{prefix}start__gte": scope.start, f"{prefix}start__lt": scope.end})
    if scope.community is not None:
        q &= Q(**{f"{prefix}community": scope.community})
    else:
        # Every community, spelled out: lets the database range-scan the (community, start)
        # index instead of reading every interval (there is no index on start alone).
        q &= Q(**{f"{prefix}community__in": Community.objects.values("pk")})
    return q


def _utc_offsets(scope: Scope) -> list[tuple[datetime, int]]:
    """(from this UTC instant on, the zone's UTC offset in seconds) across the scope."""
    segments: list[tuple[datetime, int]] = []
    at, step = scope.start.astimezone(UTC), timedelta(minutes=15)
    while at < scope.end:
        offset = int(at.astimezone(scope.tz).utcoffset().total_seconds())  # type: ignore[union-attr]
        if not segments or segments[-1][1] != offset:
            segments.append((at, offset))
        at += step
    return segments


def bucket_of(scope: Scope, start_path: str) -> Any:
    if scope.per_interval:
        return F(start_path)
    if connection.vendor != "sqlite":
        return TruncDate(start_path, tzinfo=scope.tz)
    # SQLite's TruncDate with a zone calls back into Python for every row (seconds over a
    # year of trades). SQLite's own date(start, '+N seconds') is C; the offset changes only at
    # the zone's transitions inside the range, so a short CASE picks it.
    segments = _utc_offsets(scope)
    whens = [
        When(**{f"{start_path}__lt": until}, then=Value(f"{offset:+d} seconds"))
        for (_, offset), (until, _) in pairwise(segments)
    ]
    last = Value(f"{segments[-1][1]:+d} seconds") if segments else Value("+0 seconds")
    modifier = Case(*whens, default=last, output_field=CharField()) if whens else last
    return Func(F(start_path), modifier, function="date", output_field=DateField())


def delivered_kwh(prefix: str = "") -> Any:
    """A trade's delivered energy: confirmed, or agreed minus curtailed before confirmation."""
    return Coalesce(
        F(f"{prefix}confirmed_kwh"),
        ExpressionWrapper(
            F(f"{prefix}quantity_kwh") - F(f"{prefix}curtailed_kwh"), output_field=ENERGY
        ),
        output_field=ENERGY,
    )


def sum_if(condition: Q, value: Any, output: DecimalField = ENERGY) -> Sum:
    return Sum(Case(When(condition, then=value), default=ZERO, output_field=output))


def rows_of(queryset: Any) -> list[dict[str, Any]]:
    """A ``values()`` queryset's rows as plain dicts (its precise row types differ per query)."""
    return list(queryset)


def dec(value: Any, places: int = 3) -> Decimal:
    return Decimal(value or 0).quantize(Decimal(1).scaleb(-places))


def ratio(part: Any, whole: Any) -> float | None:
    whole_f = float(whole or 0)
    return None if whole_f <= 0 else round(float(part or 0) / whole_f, 4)


def p2p_trades(scope: Scope) -> QuerySet[Trade]:
    return Trade.objects.filter(in_scope(scope, "interval__"), source__in=P2P_SOURCES)
