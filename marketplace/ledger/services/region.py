"""A community's side of its region's trades, booked in the community's interval settlement.

The members' trades with the outside grid are settled at their prices as always. For the
``r`` kWh the community bought from other communities of the region at prices ``p_t`` (one line
per region trade ``t``, sum of ``q_t`` = ``r``), instead of from the grid at its retail tariff:

    region account   + sum_t p_t q_t      owed to the selling communities
    grid account     - retail * r         the grid no longer supplies these kWh
    members          + sum_t (retail - p_t) q_t, shared in proportion to each member's
                       confirmed kWh bought from the grid

and for the ``s`` kWh it sold to other communities instead of to the grid at its feed-in tariff:

    region account   - sum_t p_t q_t      owed by the buying communities
    grid account     + feed_in * s        the grid no longer pays for these kWh
    members          + sum_t (p_t - feed_in) q_t, in proportion to each member's confirmed kWh
                       sold to the grid

Each set sums to zero, so the community's transaction stays balanced, and its grid account ends
where it would be had the region's kWh never been traded with the grid: what the community saves
or earns against its tariffs goes to the members whose grid energy the region replaced. For a
member whose grid trades are at the tariffs (the auction markets) that is exactly the grid price
replaced by the region's. The region prices lie between each community's tariffs
(``marketplace.clearing.region``), so no member's share is negative.

The region accounts of a region's communities sum to zero: each region trade books ``p q`` on the
buyer's and ``-p q`` on the seller's, rounded to cents half to even, which is symmetric. A member's
share is rounded to cents; the last member's takes what the others' rounding left, and the
ledger books any sub-cent residue to the fee account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Protocol

from marketplace.ledger.models import AccountKind, EntryKind, LedgerAccount
from marketplace.ledger.services.ledger import (
    ZERO,
    LedgerLine,
    PostingAccount,
    ledger_account_for_community,
    to_cents,
)
from marketplace.models import (
    Interval,
    RegionPart,
    RegionResidual,
    RegionTrade,
    Side,
    TradeSource,
)
from units import KWH, PRICE


class GridTrade(Protocol):
    """What the members' shares read of the interval's confirmed trades (a ``Trade``, or the
    plain values settlement reads of one)."""

    @property
    def source(self) -> str: ...
    @property
    def buyer_id(self) -> int | None: ...
    @property
    def seller_id(self) -> int | None: ...
    @property
    def confirmed_kwh(self) -> Decimal | None: ...


def region_lines(
    *,
    interval: Interval,
    trades: Sequence[GridTrade],
    member_account: Mapping[int, PostingAccount],
    grid: LedgerAccount,
) -> list[LedgerLine]:
    """The lines of the module docstring for ``interval``; none if it traded in no region."""
    residual = (
        RegionResidual.objects.filter(interval=interval, part=RegionPart.TRADED, traded_kwh__gt=0)
        .select_related("region_interval")
        .first()
    )
    if residual is None:
        return []
    buying = residual.side == Side.BUY
    rules = interval.rules
    tariff = rules.retail_tariff if buying else rules.feed_in_tariff
    region = ledger_account_for_community(community=interval.community, kind=AccountKind.REGION)
    region_trades = RegionTrade.objects.filter(
        **({"buyer": residual} if buying else {"seller": residual})
    ).select_related("buyer__community", "seller__community")
    lines: list[LedgerLine] = []
    energy = ZERO
    passed_on = ZERO
    sign = 1 if buying else -1
    for trade in region_trades.order_by("sequence"):
        q, p = trade.quantity_kwh, trade.price_per_kwh
        other = (trade.seller if buying else trade.buyer).community
        what = "bought from" if buying else "sold to"
        memo = f"region trade {trade.sequence}: {what} {other.name}"[:300]
        lines.append(LedgerLine(region, sign * p * q, EntryKind.REGION_TRADE, q, p, memo))
        energy += q
        passed_on += (tariff - p) * q if buying else (p - tariff) * q
    memo = "bought from the region, not the grid" if buying else "sold to the region, not the grid"
    lines.append(LedgerLine(grid, -sign * tariff * energy, EntryKind.REGION_TRADE, energy,
                            tariff, memo))  # fmt: skip
    lines += _shares(trades, member_account, buying=buying, energy=energy, amount=passed_on)
    return lines


def _shares(
    trades: Sequence[GridTrade],
    member_account: Mapping[int, PostingAccount],
    *,
    buying: bool,
    energy: Decimal,
    amount: Decimal,
) -> list[LedgerLine]:
    """``amount`` shared over the members' confirmed grid kWh on the region's side."""
    weights: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for trade in trades:
        party = trade.buyer_id if buying else trade.seller_id
        if trade.source == TradeSource.GRID and party is not None:
            weights[party] += trade.confirmed_kwh or ZERO
    total = sum(weights.values(), ZERO)
    if not amount or not total:
        return []
    rate = (amount / energy).quantize(PRICE)
    memo = "region price instead of the grid tariff"
    lines = []
    left = amount
    members = sorted(weights)
    for i, membership_id in enumerate(members):
        share_kwh = (energy * weights[membership_id] / total).quantize(KWH)
        share = left if i == len(members) - 1 else to_cents(amount * weights[membership_id] / total)
        left -= share
        lines.append(
            LedgerLine(
                member_account[membership_id],
                share,
                EntryKind.REGION_SHARE,
                share_kwh,
                rate,
                memo,
            )
        )
    return lines
