"""Reads the simulation needs from the market: an interval's fills and totals, members' money."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Sum

from accounts.models import Membership
from grid.models import GridCheckResult
from marketplace.ledger.models import LedgerEntry
from marketplace.models import Community, Interval, Trade, TradeSource

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


def interval_fills(*, interval: Interval) -> dict[int, Fill]:
    """Per meter point: confirmed kWh by source, peer value and curtailed kWh, in one query."""
    fills: dict[int, Fill] = {}
    rows = Trade.objects.filter(interval=interval).values_list(
        "source",
        "buyer_meter_point_id",
        "seller_meter_point_id",
        "quantity_kwh",
        "confirmed_kwh",
        "price_per_kwh",
        "seller_price_per_kwh",
    )
    for source, buyer, seller, quantity, confirmed, price, seller_price in rows:
        delivered = float(confirmed if confirmed is not None else quantity)
        curtailed = float(quantity) - delivered
        for mp, side in ((buyer, "buy"), (seller, "sell")):
            if mp is None:
                continue
            fill = fills.setdefault(mp, Fill())
            if side == "buy":
                fill.bought_kwh[source] = fill.bought_kwh.get(source, 0.0) + delivered
                fill.curtailed_buy_kwh += curtailed
                if source in PEER_SOURCES:
                    fill.bought_value += delivered * float(price)
            else:
                fill.sold_kwh[source] = fill.sold_kwh.get(source, 0.0) + delivered
                fill.curtailed_sell_kwh += curtailed
                if source in PEER_SOURCES:
                    fill.sold_value += delivered * float(seller_price)
    return fills


@dataclass(frozen=True, slots=True)
class IntervalSummary:
    p2p_kwh: float
    grid_bought_kwh: float
    grid_sold_kwh: float
    curtailed_kwh: float
    losses_kw: float | None
    mean_price: float | None


def interval_summary(*, interval: Interval) -> IntervalSummary:
    """The interval's peer and grid volumes, curtailment, losses and mean peer price."""
    p2p = value = bought = sold = curtailed = 0.0
    for source, buyer, seller, quantity, confirmed, price in Trade.objects.filter(
        interval=interval
    ).values_list(
        "source", "buyer_id", "seller_id", "quantity_kwh", "confirmed_kwh", "price_per_kwh"
    ):
        delivered = float(confirmed if confirmed is not None else quantity)
        curtailed += float(quantity) - delivered
        if source in PEER_SOURCES:
            p2p += delivered
            value += delivered * float(price)
        elif seller is None:
            bought += delivered
        elif buyer is None:
            sold += delivered
    check = (
        GridCheckResult.objects.filter(interval=interval)
        .values_list("losses_kw", flat=True)
        .first()
    )
    return IntervalSummary(p2p, bought, sold, curtailed, check, value / p2p if p2p > 0 else None)


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
