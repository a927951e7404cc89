"""The region's market: communities trade their residuals with each other before the outside grid.

After a community's interval is cleared and confirmed, what its members still buy from or sell
to the outside grid is its *residual*. The community's manager is the agent for its net
position at the community's connection point:

    n_c = I_c - E_c   (I_c, E_c: confirmed kWh its members buy from / sell to the grid)

A deficit (n_c > 0) is requested, a surplus (n_c < 0) offered, never both: the flow at the
connection point is the net one. The limit prices lie between the community's own tariffs by
the rule the region sets, with f_c its feed-in and r_c its retail tariff:

    ask_c = f_c + k_offer   (r_c - f_c)    rounded up to the 0.0001 tick
    bid_c = f_c + k_request (r_c - f_c)    rounded down to the tick,    k_offer, k_request in [0, 1]

Rounded inwards, so ask_c >= f_c and bid_c <= r_c always hold. k_offer = 0 and k_request = 1
(the defaults) report each community's true reservation prices: a seller community receives
f_c from the grid for what the region does not take, a buyer community pays r_c.

The orders are cleared by one of the pooled mechanisms of this package (``REGION_MECHANISMS``).
Only budget-balanced ones are offered: every kWh a buyer community pays for is paid to a seller
community at the same price, so the money between communities sums to zero with no one to keep
a surplus (McAfee's trade reductions keep one, so the region does not offer them). Individual
rationality of the mechanisms then gives f_c <= price <= r_c for every community that trades:
trading in the region is never worse than the grid. What a community does not trade in the
region goes to the outside grid as before.

A community whose feed-in tariff exceeds its retail tariff has no price between them and takes no
part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from marketplace.clearing.discriminatory import discriminatory
from marketplace.clearing.pay_as_bid import pay_as_bid
from marketplace.clearing.types import ClearingError, ClearingResult, Match, Order, Side
from marketplace.clearing.uniform import check_k, uniform_price
from units import KWH, PRICE

ZERO = Decimal(0)
ONE = Decimal(1)

# Budget-balanced mechanisms only (module docstring).
REGION_MECHANISMS = ("uniform", "pay-as-bid", "discriminatory")


@dataclass(frozen=True, slots=True)
class Residual:
    """One community's confirmed energy with the outside grid in one interval."""

    community: str  # the order id the community trades under, e.g. "c12"
    import_kwh: Decimal  # members buy this from the grid
    export_kwh: Decimal  # members sell this to the grid
    retail: Decimal  # the community's retail tariff per kWh
    feed_in: Decimal  # its feed-in tariff per kWh
    submitted_at: datetime  # time priority among equal prices (when its interval was confirmed)

    @property
    def net_kwh(self) -> Decimal:
        """> 0 a deficit the community requests, < 0 a surplus it offers."""
        return self.import_kwh - self.export_kwh


@dataclass(frozen=True, slots=True)
class RegionResult:
    """The region's orders, the clearing of them and what each community traded."""

    mechanism: str
    orders: tuple[Order, ...]
    clearing: ClearingResult
    traded_kwh: dict[str, Decimal]  # community -> kWh it bought or sold in the region

    @property
    def trades(self) -> tuple[Match, ...]:
        return self.clearing.trades

    def order_of(self, community: str) -> Order | None:
        return next((o for o in self.orders if o.id == community), None)

    def outside_kwh(self, community: str) -> Decimal:
        """What of the community's order the region left to the outside grid."""
        order = self.order_of(community)
        return ZERO if order is None else order.quantity - self.traded_kwh.get(community, ZERO)


def tariff_position(feed_in: Decimal, retail: Decimal, k: Decimal, *, up: bool) -> Decimal:
    """``feed_in + k (retail - feed_in)`` on the price tick, rounded up (asks) or down (bids)."""
    rounding = ROUND_CEILING if up else ROUND_FLOOR
    return (feed_in + k * (retail - feed_in)).quantize(PRICE, rounding=rounding)


def residual_order(residual: Residual, *, offer_k: Decimal, request_k: Decimal) -> Order | None:
    """The community manager's order for the residual (module docstring); None if none."""
    net = residual.net_kwh.quantize(KWH)
    if net == ZERO or residual.feed_in > residual.retail:
        return None
    if net > 0:
        price = tariff_position(residual.feed_in, residual.retail, request_k, up=False)
        return Order(residual.community, Side.BUY, net, price, residual.submitted_at)
    price = tariff_position(residual.feed_in, residual.retail, offer_k, up=True)
    return Order(residual.community, Side.SELL, -net, price, residual.submitted_at)


def region_clear(
    residuals: Sequence[Residual],
    *,
    mechanism: str = "uniform",
    k: Decimal | None = None,
    offer_k: Decimal = ZERO,
    request_k: Decimal = ONE,
) -> RegionResult:
    """Clear the communities' residuals with one of ``REGION_MECHANISMS``.

    ``k`` prices ``uniform`` (the k-double auction) and ``discriminatory``; ``offer_k`` and
    ``request_k`` place the asks and bids between each community's tariffs. Raises
    ``ClearingError`` for an unknown mechanism, a bad k or two residuals of one community.
    """
    if mechanism not in REGION_MECHANISMS:
        known = ", ".join(REGION_MECHANISMS)
        raise ClearingError(f"the region clears with one of {known}, not {mechanism!r}")
    offer_k, request_k = check_k(offer_k), check_k(request_k)
    names = [r.community for r in residuals]
    if len(set(names)) != len(names):
        raise ClearingError("each community has one residual per interval")
    orders = tuple(
        order
        for order in (residual_order(r, offer_k=offer_k, request_k=request_k) for r in residuals)
        if order is not None
    )
    if mechanism == "pay-as-bid":
        if k is not None:
            raise ClearingError("'pay-as-bid' takes no k")
        result = pay_as_bid(orders)
    elif mechanism == "discriminatory":
        result = discriminatory(orders) if k is None else discriminatory(orders, k=k)
    else:
        result = uniform_price(orders) if k is None else uniform_price(orders, k=k)
    traded: dict[str, Decimal] = {}
    for match in result.trades:
        traded[match.buyer] = traded.get(match.buyer, ZERO) + match.quantity
        traded[match.seller] = traded.get(match.seller, ZERO) + match.quantity
    return RegionResult(mechanism, orders, result, traded)
