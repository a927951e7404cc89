"""Reads behind the fair-access dashboard: member groups, savings distribution, concentration."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Case, ExpressionWrapper, F, OuterRef, Subquery, Sum, Value, When

from accounts.models import Membership, MembershipStatus, MeterPoint
from marketplace.models import Bid, Community, Posting, Side
from marketplace.oversight.selectors.common import (
    ENERGY,
    MONEY,
    Scope,
    Table,
    in_scope,
    p2p_trades,
    ratio,
    rows_of,
)

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


def _per_member(
    trades: Any, party: str, price: F, tariff: F
) -> list[tuple[int, Decimal, Decimal, Decimal]]:
    """Per member on one side of the trades: kWh, money at ``price``, and (tariff - price) * kWh."""
    quantity = F("quantity_kwh")
    rows = (
        trades.filter(**{f"{party}__isnull": False})
        .values(party)
        .annotate(
            kwh=Sum(quantity),
            money=Sum(ExpressionWrapper(quantity * price, output_field=MONEY)),
            margin=Sum(ExpressionWrapper(quantity * (tariff - price), output_field=MONEY)),
        )
        .order_by()
    )
    return [
        (row[party], Decimal(row["kwh"]), Decimal(row["money"]), Decimal(row["margin"]))
        for row in rows_of(rows)
    ]


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
    trades = p2p_trades(scope)
    # A buyer saves the retail tariff less what they pay; a seller gains what they receive over
    # the feed-in tariff.
    bought = _per_member(trades, "buyer", F("price_per_kwh"), F("interval__rules__retail_tariff"))
    for member_pk, kwh, paid, saving in bought:
        member = figures.get(member_pk)
        if member is not None:
            member.bought_kwh, member.paid = kwh, paid
            member.savings += saving
    sold = _per_member(
        trades, "seller", F("seller_price_per_kwh"), F("interval__rules__feed_in_tariff")
    )
    for member_pk, kwh, received, margin in sold:
        member = figures.get(member_pk)
        if member is not None:
            member.sold_kwh, member.received = kwh, received
            member.savings -= margin
    # Orders are postings and bids alike; a bid is on the side opposite to its posting.
    postings = (
        Posting.objects.filter(in_scope(scope, "interval__"))
        .values("membership", "side")
        .annotate(ordered=Sum("quantity_kwh"), filled=Sum("allocated_kwh"))
        .order_by()
    )
    bids = (
        Bid.objects.filter(in_scope(scope, "posting__interval__"))
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
    for row in [*rows_of(postings), *rows_of(bids)]:
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
            "traded_share": ratio(self.traded, self.members),
            "buy_fill_rate": ratio(self.filled[Side.BUY], self.ordered[Side.BUY]),
            "sell_fill_rate": ratio(self.filled[Side.SELL], self.ordered[Side.SELL]),
            "avg_buy_price": ratio(self.paid, self.bought_kwh),
            "avg_sell_price": ratio(self.received, self.sold_kwh),
            "mean_savings": ratio(self.savings, self.members),
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
        top_decile_share=ratio(sum(top), total),
        members_without_savings=sum(1 for v in savings if v <= 0),
        histogram=Table(("savings_from", "savings_to", "members"), rows),
    )


def seller_concentration(scope: Scope) -> Table:
    """Seller HHI per community: from each seller's P2P energy sold (grouped in SQL)."""
    per_seller = (
        p2p_trades(scope)
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
        largest = ratio(max(sold), total) if sold else None
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
