"""Reads behind the regulators' dashboards: every figure aggregated in the database.

Each chart's data is a ``Table`` (column names and rows), so the page's chart, its table and its
CSV export are the same numbers. Sums, averages, minima and maxima run in SQL grouped by time
bucket, community or member; Python only combines at most one row per member (the fair-access
figures need each member's total to rank them: Gini, HHI, groups).

Anonymised by construction: no selector here reads a user, an email address or a pseudonym; the
finest grain any of them returns is a group of members.

Definitions (the README repeats them):

* delivered energy of a trade = ``confirmed_kwh`` once confirmed, else ``quantity_kwh -
  curtailed_kwh``; peer-to-peer (P2P) trades are ``bilateral`` and ``pool`` trades.
* energy from the grid = the community's ``grid`` trades buying + positive settlement imbalances
  (metered more than scheduled); energy to the grid = ``grid`` trades selling + negative ones.
* self-sufficiency = P2P energy / (P2P energy + energy from the grid): the share of the members'
  consumption bought from each other. self-consumption = P2P energy / (P2P energy + energy to the
  grid): the share of the members' generation used inside the community.
* a member's savings against the grid tariff = sum of bought kWh * (retail tariff - price paid)
  + sum of sold kWh * (price received - feed-in tariff), with the tariffs of the interval's rules.
* Gini of savings over every approved member (a loss counts as zero saving); seller HHI =
  sum of (seller's share of the community's P2P energy sold, in %)², 0 to 10,000.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Count,
    DateField,
    DecimalField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate

from accounts.models import Membership, MembershipStatus, MeterPoint
from grid.models import GridCheckResult
from marketplace.ledger.models import LedgerVerification, Settlement
from marketplace.ledger.selectors import ledger_last_verification
from marketplace.models import (
    Bid,
    Community,
    Interval,
    IntervalState,
    Posting,
    Side,
    Trade,
    TradeSource,
)

# Up to this range the charts show every interval; beyond it, one point per local day (a year of
# quarter-hours is 35,040 points, more than any chart can show or a page should carry).
PER_INTERVAL_MAX = timedelta(days=14)
DEFAULT_DAYS = 7
P2P_SOURCES = (TradeSource.BILATERAL, TradeSource.POOL)
ENERGY = DecimalField(max_digits=18, decimal_places=3)
MONEY = DecimalField(max_digits=20, decimal_places=7)
ZERO = Value(Decimal(0), output_field=ENERGY)
# Member groups by installed PV (kWp over all their meter points): (label, lower bound).
PV_GROUPS: tuple[tuple[str, Decimal], ...] = (
    ("no PV", Decimal(0)),
    ("PV up to 5 kWp", Decimal("0.001")),
    ("PV 5-10 kWp", Decimal(5)),
    ("PV over 10 kWp", Decimal(10)),
)
# A group is flagged when a figure is this far worse than the whole population's.
DISADVANTAGE_RATIO = 0.8
PRICE_GAP = 0.10


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


# --- Building blocks --------------------------------------------------------------------------
def _intervals(scope: Scope, prefix: str = "") -> Q:
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


def _bucket(scope: Scope, start_path: str) -> Any:
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


def _delivered(prefix: str = "") -> Any:
    """A trade's delivered energy: confirmed, or agreed minus curtailed before confirmation."""
    return Coalesce(
        F(f"{prefix}confirmed_kwh"),
        ExpressionWrapper(
            F(f"{prefix}quantity_kwh") - F(f"{prefix}curtailed_kwh"), output_field=ENERGY
        ),
        output_field=ENERGY,
    )


def _sum_if(condition: Q, value: Any, output: DecimalField = ENERGY) -> Sum:
    return Sum(Case(When(condition, then=value), default=ZERO, output_field=output))


def _rows(queryset: Any) -> list[dict[str, Any]]:
    """A ``values()`` queryset's rows as plain dicts (its precise row types differ per query)."""
    return list(queryset)


def _dec(value: Any, places: int = 3) -> Decimal:
    return Decimal(value or 0).quantize(Decimal(1).scaleb(-places))


def _ratio(part: Any, whole: Any) -> float | None:
    whole_f = float(whole or 0)
    return None if whole_f <= 0 else round(float(part or 0) / whole_f, 4)


def _p2p_trades(scope: Scope) -> QuerySet[Trade]:
    return Trade.objects.filter(_intervals(scope, "interval__"), source__in=P2P_SOURCES)


# --- Prices -----------------------------------------------------------------------------------
def prices(scope: Scope) -> Table:
    """P2P price (volume-weighted, with min and max) per bucket against the grid tariffs."""
    delivered = _delivered()
    trade_rows = (
        _p2p_trades(scope)
        .annotate(bucket=_bucket(scope, "interval__start"))
        .values("bucket")
        .annotate(
            kwh=Sum(delivered),
            paid=Sum(ExpressionWrapper(F("quantity_kwh") * F("price_per_kwh"), output_field=MONEY)),
            agreed=Sum("quantity_kwh"),
            low=Min("price_per_kwh"),
            high=Max("price_per_kwh"),
        )
        .order_by()
    )
    by_bucket = {row["bucket"]: row for row in _rows(trade_rows)}
    tariff_rows = (
        Interval.objects.filter(_intervals(scope))
        .annotate(bucket=_bucket(scope, "start"))
        .values("bucket")
        .annotate(retail=Max("rules__retail_tariff"), feed_in=Min("rules__feed_in_tariff"))
        .order_by("bucket")
    )
    rows = []
    for tariff in tariff_rows:
        trade = by_bucket.get(tariff["bucket"], {})
        agreed = trade.get("agreed")
        average = (Decimal(trade["paid"]) / Decimal(agreed)) if agreed else None
        rows.append(
            (
                tariff["bucket"],
                None if average is None else _dec(average, 4),
                _dec(trade["low"], 4) if trade.get("low") is not None else None,
                _dec(trade["high"], 4) if trade.get("high") is not None else None,
                _dec(tariff["retail"], 4),
                _dec(tariff["feed_in"], 4),
                _dec(trade.get("kwh")),
            )
        )
    columns = (
        scope.bucket_label,
        "p2p_price_per_kwh",
        "min_price_per_kwh",
        "max_price_per_kwh",
        "retail_tariff",
        "feed_in_tariff",
        "p2p_kwh",
    )
    return Table(columns, rows)


# --- Volumes ----------------------------------------------------------------------------------
def _trade_volumes(scope: Scope, group: str) -> dict[Any, dict[str, Any]]:
    delivered = _delivered()
    rows = (
        Trade.objects.filter(_intervals(scope, "interval__"))
        .annotate(group=_bucket(scope, "interval__start") if group == "bucket" else F(group))
        .values("group")
        .annotate(
            p2p=_sum_if(Q(source__in=P2P_SOURCES), delivered),
            grid_in=_sum_if(Q(source=TradeSource.GRID, buyer__isnull=False), delivered),
            grid_out=_sum_if(Q(source=TradeSource.GRID, seller__isnull=False), delivered),
        )
        .order_by()
    )
    return {row["group"]: row for row in _rows(rows)}


def _imbalances(scope: Scope, group: str) -> dict[Any, dict[str, Any]]:
    imbalance = F("imbalance_kwh")
    rows = (
        Settlement.objects.filter(_intervals(scope, "interval__"))
        .annotate(group=_bucket(scope, "interval__start") if group == "bucket" else F(group))
        .values("group")
        .annotate(
            extra_in=_sum_if(Q(imbalance_kwh__gt=0), imbalance),
            extra_out=_sum_if(
                Q(imbalance_kwh__lt=0), ExpressionWrapper(-imbalance, output_field=ENERGY)
            ),
        )
        .order_by()
    )
    return {row["group"]: row for row in _rows(rows)}


def _volume_row(trades: dict[str, Any], imbalances: dict[str, Any]) -> tuple[Decimal, ...]:
    p2p = _dec(trades.get("p2p"))
    grid_in = _dec(trades.get("grid_in")) + _dec(imbalances.get("extra_in"))
    grid_out = _dec(trades.get("grid_out")) + _dec(imbalances.get("extra_out"))
    return p2p, grid_in, grid_out


def volumes(scope: Scope) -> Table:
    """P2P energy against energy from and to the grid, per bucket."""
    trades = _trade_volumes(scope, "bucket")
    imbalances = _imbalances(scope, "bucket")
    rows = []
    for bucket in sorted(set(trades) | set(imbalances)):
        p2p, grid_in, grid_out = _volume_row(trades.get(bucket, {}), imbalances.get(bucket, {}))
        rows.append(
            (
                bucket,
                p2p,
                grid_in,
                grid_out,
                _ratio(p2p, p2p + grid_in),
                _ratio(p2p, p2p + grid_out),
            )
        )
    columns = (
        scope.bucket_label,
        "p2p_kwh",
        "from_grid_kwh",
        "to_grid_kwh",
        "self_sufficiency",
        "self_consumption",
    )
    return Table(columns, rows)


def community_sufficiency(scope: Scope) -> Table:
    """Self-sufficiency and self-consumption of each community over the whole range."""
    trades = _trade_volumes(scope, "interval__community")
    imbalances = _imbalances(scope, "interval__community")
    communities = Community.objects.order_by("name")
    if scope.community is not None:
        communities = communities.filter(pk=scope.community.pk)
    rows = []
    for community_id, name in communities.values_list("pk", "name"):
        p2p, grid_in, grid_out = _volume_row(
            trades.get(community_id, {}), imbalances.get(community_id, {})
        )
        rows.append(
            (name, p2p, grid_in, grid_out, _ratio(p2p, p2p + grid_in), _ratio(p2p, p2p + grid_out))
        )
    columns = (
        "community",
        "p2p_kwh",
        "from_grid_kwh",
        "to_grid_kwh",
        "self_sufficiency",
        "self_consumption",
    )
    return Table(columns, rows)


# --- Network ----------------------------------------------------------------------------------
def network(scope: Scope) -> Table:
    """Per bucket: checks, infeasible ones, curtailed energy, losses, voltage and loading peaks."""
    hours = ExpressionWrapper(
        F("interval__rules__interval_minutes") / 60.0, output_field=FloatField()
    )
    rows = (
        GridCheckResult.objects.filter(_intervals(scope, "interval__"))
        .annotate(bucket=_bucket(scope, "interval__start"))
        .values("bucket")
        .annotate(
            checks=Count("pk"),
            infeasible=Count("pk", filter=Q(feasible=False)),
            with_violations=Count("pk", filter=~Q(violations=[])),
            curtailed=Sum("curtailed_kwh"),
            losses=Sum(ExpressionWrapper(F("losses_kw") * hours, output_field=FloatField())),
            vmin=Min("min_vm_pu"),
            vmax=Max("max_vm_pu"),
            line=Max("max_line_loading_percent"),
            trafo=Max("max_trafo_loading_percent"),
        )
        .order_by("bucket")
    )

    def rounded(value: float | None, places: int) -> float | None:
        return None if value is None else round(float(value), places)

    return Table(
        (
            scope.bucket_label,
            "grid_checks",
            "checks_with_violations",
            "infeasible_checks",
            "curtailed_kwh",
            "losses_kwh",
            "min_voltage_pu",
            "max_voltage_pu",
            "max_line_loading_percent",
            "max_trafo_loading_percent",
        ),
        [
            (
                row["bucket"],
                row["checks"],
                row["with_violations"],
                row["infeasible"],
                _dec(row["curtailed"]),
                rounded(row["losses"], 3),
                rounded(row["vmin"], 4),
                rounded(row["vmax"], 4),
                rounded(row["line"], 1),
                rounded(row["trafo"], 1),
            )
            for row in rows
        ],
    )


def violations_by_kind(scope: Scope) -> Table:
    """Violations found, by kind and by whether the trades caused them (unnested in SQL)."""
    result = GridCheckResult._meta.db_table
    interval = Interval._meta.db_table
    where = ['i."start" >= %s', 'i."start" < %s']
    params: list[Any] = [scope.start, scope.end]
    if scope.community is not None:
        where.append('i."community_id" = %s')
        params.append(scope.community.pk)
    # JSON arrays are unnested by the database: each backend spells it its own way.
    if connection.vendor == "postgresql":
        elements = "CROSS JOIN LATERAL jsonb_array_elements(g.violations) AS v(value)"
        kind = "v.value->>'kind'"
        caused = "COALESCE((v.value->>'caused_by_trades')::boolean, false)"
    else:
        elements = ", json_each(g.violations) AS v"
        kind = "json_extract(v.value, '$.kind')"
        caused = "COALESCE(json_extract(v.value, '$.caused_by_trades'), 0)"
    sql = (
        f"SELECT {kind} AS kind, {caused} AS caused, COUNT(*) "  # noqa: S608 - fixed fragments
        f'FROM "{result}" g JOIN "{interval}" i ON i.id = g.interval_id {elements} '
        f"WHERE {' AND '.join(where)} GROUP BY 1, 2 ORDER BY 3 DESC, 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    return Table(
        ("violation_kind", "caused_by_trades", "count"),
        [(k, bool(c), int(n)) for k, c, n in fetched],
    )


def curtailment_reasons(scope: Scope, limit: int = 20) -> Table:
    """Energy curtailed and why (the reason each curtailed trade carries), largest first."""
    rows = (
        Trade.objects.filter(_intervals(scope, "interval__"), curtailed_kwh__gt=0)
        .values("curtailment_reason")
        .annotate(kwh=Sum("curtailed_kwh"), trades=Count("pk"))
        .order_by("-kwh", "curtailment_reason")[:limit]
    )
    return Table(
        ("reason", "curtailed_kwh", "trades"),
        [
            (r["curtailment_reason"] or "(no reason given)", _dec(r["kwh"]), r["trades"])
            for r in rows
        ],
    )


# --- Fair and equal access --------------------------------------------------------------------
def pv_group(pv_kwp: Decimal | None) -> str:
    """The member group of a total installed PV power."""
    label = PV_GROUPS[0][0]
    for name, lower in PV_GROUPS:
        if (pv_kwp or Decimal(0)) >= lower:
            label = name
    return label


def gini(values: list[float]) -> float:
    """Gini coefficient of non-negative values: 0 = everyone equal, 1 = one has everything."""
    data = sorted(max(v, 0.0) for v in values)
    n, total = len(data), sum(data)
    if n == 0 or total <= 0:
        return 0.0
    weighted = sum((i + 1) * x for i, x in enumerate(data))
    return round(2 * weighted / (n * total) - (n + 1) / n, 4)


def hhi(quantities: list[float]) -> float:
    """Herfindahl-Hirschman index of market shares in percent (0 to 10,000)."""
    total = sum(quantities)
    if total <= 0:
        return 0.0
    return round(sum((100 * q / total) ** 2 for q in quantities), 1)


@dataclass
class _MemberFigures:
    community_id: int
    group: str
    bought_kwh: Decimal = Decimal(0)
    paid: Decimal = Decimal(0)
    sold_kwh: Decimal = Decimal(0)
    received: Decimal = Decimal(0)
    savings: Decimal = Decimal(0)
    ordered: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    filled: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    @property
    def traded(self) -> bool:
        return self.bought_kwh > 0 or self.sold_kwh > 0


def member_figures(scope: Scope) -> dict[int, _MemberFigures]:
    """Each approved member's P2P trading in the scope, aggregated per member in SQL."""
    pv = (
        MeterPoint.objects.filter(membership=OuterRef("pk"))
        .values("membership")
        .annotate(total=Sum("pv_kwp"))
        .values("total")
    )
    members = Membership.objects.filter(status=MembershipStatus.APPROVED)
    if scope.community is not None:
        members = members.filter(community=scope.community)
    figures = {
        pk: _MemberFigures(community_id, pv_group(pv_kwp))
        for pk, community_id, pv_kwp in members.annotate(
            pv=Subquery(pv, output_field=ENERGY)
        ).values_list("pk", "community_id", "pv")
    }
    trades = _p2p_trades(scope)
    quantity = F("quantity_kwh")
    bought = (
        trades.filter(buyer__isnull=False)
        .values("buyer")
        .annotate(
            kwh=Sum(quantity),
            paid=Sum(ExpressionWrapper(quantity * F("price_per_kwh"), output_field=MONEY)),
            saving=Sum(
                ExpressionWrapper(
                    quantity * (F("interval__rules__retail_tariff") - F("price_per_kwh")),
                    output_field=MONEY,
                )
            ),
        )
        .order_by()
    )
    for row in _rows(bought):
        member = figures.get(row["buyer"])
        if member is not None:
            member.bought_kwh, member.paid = Decimal(row["kwh"]), Decimal(row["paid"])
            member.savings += Decimal(row["saving"])
    sold = (
        trades.filter(seller__isnull=False)
        .values("seller")
        .annotate(
            kwh=Sum(quantity),
            received=Sum(
                ExpressionWrapper(quantity * F("seller_price_per_kwh"), output_field=MONEY)
            ),
            saving=Sum(
                ExpressionWrapper(
                    quantity * (F("seller_price_per_kwh") - F("interval__rules__feed_in_tariff")),
                    output_field=MONEY,
                )
            ),
        )
        .order_by()
    )
    for row in _rows(sold):
        member = figures.get(row["seller"])
        if member is not None:
            member.sold_kwh, member.received = Decimal(row["kwh"]), Decimal(row["received"])
            member.savings += Decimal(row["saving"])
    # Orders are postings and bids alike; a bid is on the side opposite to its posting.
    postings = (
        Posting.objects.filter(_intervals(scope, "interval__"))
        .values("membership", "side")
        .annotate(ordered=Sum("quantity_kwh"), filled=Sum("allocated_kwh"))
        .order_by()
    )
    bids = (
        Bid.objects.filter(_intervals(scope, "posting__interval__"))
        .annotate(
            side=Case(
                When(posting__side=Side.SELL, then=Value(Side.BUY.value)),
                default=Value(Side.SELL.value),
            )
        )
        .values("membership", "side")
        .annotate(ordered=Sum("quantity_kwh"), filled=Sum("accepted_kwh"))
        .order_by()
    )
    for row in [*_rows(postings), *_rows(bids)]:
        member = figures.get(row["membership"])
        if member is not None:
            member.ordered[row["side"]] += Decimal(row["ordered"] or 0)
            member.filled[row["side"]] += Decimal(row["filled"] or 0)
    return figures


@dataclass
class _GroupTotals:
    members: int = 0
    traded: int = 0
    bought_kwh: Decimal = Decimal(0)
    paid: Decimal = Decimal(0)
    sold_kwh: Decimal = Decimal(0)
    received: Decimal = Decimal(0)
    savings: Decimal = Decimal(0)
    ordered: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    filled: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, member: _MemberFigures) -> None:
        self.members += 1
        self.traded += member.traded
        self.bought_kwh += member.bought_kwh
        self.paid += member.paid
        self.sold_kwh += member.sold_kwh
        self.received += member.received
        self.savings += member.savings
        for side in (Side.BUY, Side.SELL):
            self.ordered[side] += member.ordered[side]
            self.filled[side] += member.filled[side]

    def figures(self) -> dict[str, float | None]:
        return {
            "traded_share": _ratio(self.traded, self.members),
            "buy_fill_rate": _ratio(self.filled[Side.BUY], self.ordered[Side.BUY]),
            "sell_fill_rate": _ratio(self.filled[Side.SELL], self.ordered[Side.SELL]),
            "avg_buy_price": _ratio(self.paid, self.bought_kwh),
            "avg_sell_price": _ratio(self.received, self.sold_kwh),
            "mean_savings": _ratio(self.savings, self.members),
        }


def _flags(group: dict[str, float | None], everyone: dict[str, float | None]) -> list[str]:
    """Where a group does clearly worse than all members together."""
    flags = []
    for key, label in (
        ("traded_share", "fewer members trade"),
        ("buy_fill_rate", "buy orders filled less"),
        ("sell_fill_rate", "sell orders filled less"),
    ):
        mine, overall = group[key], everyone[key]
        if mine is not None and overall and mine < DISADVANTAGE_RATIO * overall:
            flags.append(label)
    buy, buy_all = group["avg_buy_price"], everyone["avg_buy_price"]
    if buy is not None and buy_all and buy > (1 + PRICE_GAP) * buy_all:
        flags.append("pays more per kWh")
    sell, sell_all = group["avg_sell_price"], everyone["avg_sell_price"]
    if sell is not None and sell_all and sell < (1 - PRICE_GAP) * sell_all:
        flags.append("receives less per kWh")
    return flags


ACCESS_COLUMNS = (
    "group",
    "members",
    "members_who_traded",
    "traded_share",
    "buy_fill_rate",
    "sell_fill_rate",
    "avg_buy_price_per_kwh",
    "avg_sell_price_per_kwh",
    "mean_savings",
    "disadvantaged",
)


def access_by_group(scope: Scope, figures: dict[int, _MemberFigures] | None = None) -> Table:
    """Share of members who traded, fill rates, average prices and savings by PV size group."""
    figures = member_figures(scope) if figures is None else figures
    groups: dict[str, _GroupTotals] = {name: _GroupTotals() for name, _ in PV_GROUPS}
    everyone = _GroupTotals()
    for member in figures.values():
        groups[member.group].add(member)
        everyone.add(member)
    overall = everyone.figures()
    rows: list[tuple[Any, ...]] = []
    for name, totals in [*groups.items(), ("all members", everyone)]:
        values = totals.figures()
        flags = _flags(values, overall) if totals is not everyone and totals.members else []
        rows.append(
            (
                name,
                totals.members,
                totals.traded,
                values["traded_share"],
                values["buy_fill_rate"],
                values["sell_fill_rate"],
                values["avg_buy_price"],
                values["avg_sell_price"],
                values["mean_savings"],
                "; ".join(flags),
            )
        )
    return Table(ACCESS_COLUMNS, rows)


@dataclass(frozen=True, slots=True)
class SavingsSummary:
    members: int
    gini: float
    top_decile_share: float | None  # share of all savings that goes to the best-off 10 %
    members_without_savings: int
    histogram: Table


def savings_distribution(
    scope: Scope, figures: dict[int, _MemberFigures] | None = None, bins: int = 10
) -> SavingsSummary:
    """The distribution of members' savings against the grid tariff, with its Gini coefficient."""
    figures = member_figures(scope) if figures is None else figures
    savings = sorted(float(m.savings) for m in figures.values())
    rows: list[tuple[Any, ...]] = []
    if savings:
        low, high = savings[0], savings[-1]
        width = (high - low) / bins if high > low else 1.0
        counts = [0] * bins
        for value in savings:
            counts[min(int((value - low) / width), bins - 1)] += 1
        rows = [
            (round(low + i * width, 2), round(low + (i + 1) * width, 2), counts[i])
            for i in range(bins)
        ]
    positive = [max(v, 0.0) for v in savings]
    total = sum(positive)
    top = positive[-max(1, math.ceil(len(positive) / 10)) :] if positive else []
    return SavingsSummary(
        members=len(savings),
        gini=gini(savings),
        top_decile_share=_ratio(sum(top), total),
        members_without_savings=sum(1 for v in savings if v <= 0),
        histogram=Table(("savings_from", "savings_to", "members"), rows),
    )


def seller_concentration(scope: Scope) -> Table:
    """Seller HHI per community: from each seller's P2P energy sold (grouped in SQL)."""
    per_seller = (
        _p2p_trades(scope)
        .filter(seller__isnull=False)
        .values("interval__community", "seller")
        .annotate(kwh=Sum("quantity_kwh"))
        .order_by()
    )
    by_community: dict[int, list[float]] = defaultdict(list)
    for row in per_seller:
        by_community[row["interval__community"]].append(float(row["kwh"]))
    communities = Community.objects.order_by("name")
    if scope.community is not None:
        communities = communities.filter(pk=scope.community.pk)
    rows = []
    for community_id, name in communities.values_list("pk", "name"):
        sold = by_community.get(community_id, [])
        total = sum(sold)
        largest = _ratio(max(sold), total) if sold else None
        index = hhi(sold)
        # The usual merger-guideline thresholds (US DoJ/FTC 2010): read as "how concentrated".
        level = (
            "no sales"
            if not sold
            else "unconcentrated"
            if index < 1500
            else "moderately concentrated"
            if index <= 2500
            else "highly concentrated"
        )
        rows.append((name, len(sold), round(total, 3), largest, index, level))
    return Table(
        ("community", "sellers", "p2p_kwh_sold", "largest_seller_share", "hhi", "reading"), rows
    )


# --- Integrity --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Integrity:
    verification: LedgerVerification | None
    steps: Table  # per state: intervals, currently failing, recovered after retries, attempts


def integrity(scope: Scope) -> Integrity:
    """The ledger's last verification and the pipeline's failed and retried steps."""
    from marketplace.services.pipeline import NEXT_STATE

    rows = (
        Interval.objects.filter(_intervals(scope))
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
    found = {row["state"]: row for row in _rows(rows)}
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
