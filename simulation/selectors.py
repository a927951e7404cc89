"""Reads the simulation needs from the market: an interval's fills and totals, members' money."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Sum

from accounts.models import Membership
from config.sql import table_name
from grid.models import GridCheckResult
from marketplace.ledger.models import EntryKind, LedgerEntry, Settlement
from marketplace.models import (
    Community,
    Interval,
    MarketRules,
    NetworkChargeRule,
    Trade,
    TradeSource,
)
from units import CENT, quantize

PEER_SOURCES = (TradeSource.BILATERAL, TradeSource.POOL)


@dataclass
class Fill:
    """What one meter point got in an interval's confirmed trades."""

    bought_kwh: dict[str, float] = field(default_factory=dict)  # by trade source
    sold_kwh: dict[str, float] = field(default_factory=dict)
    bought_value: float = 0.0  # peer trades only: kWh x price
    sold_value: float = 0.0
    curtailed_buy_kwh: float = 0.0
    curtailed_sell_kwh: float = 0.0

    def peer_kwh(self, side: str) -> float:
        kwh = self.bought_kwh if side == "buy" else self.sold_kwh
        return sum(v for source, v in kwh.items() if source in PEER_SOURCES)

    def peer_price(self, side: str) -> float | None:
        kwh = self.peer_kwh(side)
        if kwh <= 0:
            return None
        return (self.bought_value if side == "buy" else self.sold_value) / kwh


def _trade_rows(interval: Interval, buyer: str, seller: str) -> list[tuple[Any, ...]]:
    """The interval's trades as (source, buyer, seller, quantity, delivered, price, seller
    price), the numbers as floats, in the trades' order (the sums are of floats, added in the
    same order every time). The database converts the decimals: a few thousand Decimal values
    through the ORM cost more than the sums."""
    as_float = "CAST({} AS DOUBLE PRECISION)".format
    columns = ", ".join(
        [
            "source",
            buyer,
            seller,
            as_float("quantity_kwh"),
            as_float("COALESCE(confirmed_kwh, quantity_kwh)"),
            as_float("price_per_kwh"),
            as_float("seller_price_per_kwh"),
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            # Column and table names only are formatted in; the interval is a parameter.
            f"SELECT {columns} FROM {table_name(Trade)}"  # noqa: S608
            " WHERE interval_id = %s ORDER BY source, sequence",
            [interval.pk],
        )
        return list(cursor.fetchall())


def interval_fills(*, interval: Interval) -> dict[int, Fill]:
    """Per meter point: confirmed kWh by source, peer value and curtailed kWh, in one query."""
    fills: dict[int, Fill] = {}
    rows = _trade_rows(interval, "buyer_meter_point_id", "seller_meter_point_id")
    for source, buyer, seller, quantity, delivered, price, seller_price in rows:
        curtailed = quantity - delivered
        peer = source in PEER_SOURCES
        if buyer is not None:
            fill = fills.get(buyer)
            if fill is None:
                fill = fills[buyer] = Fill()
            fill.bought_kwh[source] = fill.bought_kwh.get(source, 0.0) + delivered
            fill.curtailed_buy_kwh += curtailed
            if peer:
                fill.bought_value += delivered * price
        if seller is not None:
            fill = fills.get(seller)
            if fill is None:
                fill = fills[seller] = Fill()
            fill.sold_kwh[source] = fill.sold_kwh.get(source, 0.0) + delivered
            fill.curtailed_sell_kwh += curtailed
            if peer:
                fill.sold_value += delivered * seller_price
    return fills


@dataclass(frozen=True, slots=True)
class IntervalSummary:
    p2p_kwh: float
    grid_bought_kwh: float
    grid_sold_kwh: float
    curtailed_kwh: float
    losses_kw: float | None
    mean_price: float | None  # what buyers paid peers per kWh
    mean_seller_price: float | None = None  # what sellers got from peers (trade reduction: less)


def interval_summary(*, interval: Interval) -> IntervalSummary:
    """The interval's peer and grid volumes, curtailment, losses and mean peer prices."""
    p2p = value = seller_value = bought = sold = curtailed = 0.0
    rows = _trade_rows(interval, "buyer_id", "seller_id")
    for source, buyer, seller, quantity, delivered, price, seller_price in rows:
        curtailed += quantity - delivered
        if source in PEER_SOURCES:
            p2p += delivered
            value += delivered * price
            seller_value += delivered * seller_price
        elif seller is None:
            bought += delivered
        elif buyer is None:
            sold += delivered
    check = (
        GridCheckResult.objects.filter(interval=interval)
        .values_list("losses_kw", flat=True)
        .first()
    )
    return IntervalSummary(
        p2p,
        bought,
        sold,
        curtailed,
        check,
        value / p2p if p2p > 0 else None,
        seller_value / p2p if p2p > 0 else None,
    )


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a member would have paid with no trade at all (money; < 0: what it would get)."""

    energy: Decimal  # its metered energy settled with the grid at the tariffs
    losses: Decimal  # its share of the network losses, which it pays whether it trades or not

    @property
    def total(self) -> Decimal:
        return self.energy + self.losses


def member_baselines(*, community: Community) -> dict[int, Baseline]:
    """Each member's bill without trading, by membership id, booked as the ledger books it.

    A member with no trade in an interval is settled on its metered net import alone: a
    shortfall at the interval's retail tariff, a surplus at its feed-in tariff, each line
    rounded to the cent half to even (``ledger_post``), and its share of the losses on top. So
    the baseline is that, per interval, over the member's settlements; a member who never trades
    has a bill equal to it to the cent, and the difference for one who does is what trading
    changed.
    """
    energy: dict[int, Decimal] = defaultdict(Decimal)
    rows = Settlement.objects.filter(interval__community=community).values_list(
        "membership_id",
        "metered_import_kwh",
        "metered_export_kwh",
        "interval__rules__retail_tariff",
        "interval__rules__feed_in_tariff",
    )
    for member, imported, exported, retail, feed_in in rows.iterator(chunk_size=5000):
        net = imported - exported
        if net > 0:
            energy[member] -= quantize(-retail * net, CENT)  # as ledger_post rounds
        elif net < 0:
            energy[member] -= quantize(feed_in * -net, CENT)
    losses = dict(
        LedgerEntry.objects.filter(
            account__community=community,
            account__membership__isnull=False,
            kind=EntryKind.LOSSES,
        )
        .values("account__membership_id")
        .annotate(total=Sum("amount"))
        .values_list("account__membership_id", "total")
    )
    return {
        pk: Baseline(energy.get(pk, Decimal("0")), -(losses.get(pk) or Decimal("0")))
        for pk in Membership.objects.filter(community=community).values_list("pk", flat=True)
    }


def member_balances(*, community: Community) -> dict[int, Decimal]:
    """Each member's ledger balance (what the community owes it; < 0: what it owes), by id."""
    rows = (
        LedgerEntry.objects.filter(account__community=community, account__membership__isnull=False)
        .values("account__membership_id")
        .annotate(total=Sum("amount"))
    )
    balances = {row["account__membership_id"]: row["total"] for row in rows}
    return {
        pk: (balances.get(pk) or Decimal("0")).quantize(Decimal("0.01"))
        for pk in Membership.objects.filter(community=community).values_list("pk", flat=True)
    }


def peer_fee_per_kwh(rules: MarketRules) -> float:
    """What each side of a peer trade pays per kWh that the grid's energy does not.

    The flat rule's community fee; by use, the grid's energy pays the network tariff too (the
    member's use from the feeder head), so no charge stands between a peer and the grid alone.
    """
    if rules.network_charge_rule == NetworkChargeRule.BY_USE:
        return 0.0
    return float(rules.fee_per_kwh)
