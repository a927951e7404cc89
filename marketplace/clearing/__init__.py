"""Pure clearing mechanisms for PeerGrid markets (plain Python and NumPy, no Django).

Pooled double auctions (``uniform_price``, ``pay_as_bid``, ``trade_reduction``), automatic
acceptance on the bilateral board (``bilateral_accept``), quantity-only community pricing rules
(``mid_market_rate``, ``supply_demand_ratio``, ``bill_sharing``) and the grid residual of a pooled
market (``grid_residual``). Each mechanism's pricing rule is documented in its module docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from marketplace.clearing.bilateral import bilateral_accept
from marketplace.clearing.community_pricing import (
    COMMUNITY_RULES,
    CommunitySettlement,
    MemberSettlement,
    bill_sharing,
    mid_market_rate,
    supply_demand_ratio,
)
from marketplace.clearing.grid_residual import grid_residual
from marketplace.clearing.pay_as_bid import pay_as_bid
from marketplace.clearing.trade_reduction import trade_reduction
from marketplace.clearing.types import (
    ClearingError,
    ClearingResult,
    GridTrade,
    Match,
    Order,
    Side,
)
from marketplace.clearing.uniform import uniform_price

__all__ = [
    "COMMUNITY_RULES",
    "MECHANISMS",
    "ClearingError",
    "ClearingResult",
    "CommunitySettlement",
    "GridTrade",
    "Match",
    "MemberSettlement",
    "Order",
    "Side",
    "bilateral_accept",
    "bill_sharing",
    "clear",
    "grid_residual",
    "mid_market_rate",
    "pay_as_bid",
    "supply_demand_ratio",
    "trade_reduction",
    "uniform_price",
]

MECHANISMS: dict[str, Callable[[Sequence[Order]], ClearingResult]] = {
    "uniform": uniform_price,
    "pay-as-bid": pay_as_bid,
    "trade-reduction": trade_reduction,
}


def clear(mechanism: str, orders: Sequence[Order], *, k: Decimal | None = None) -> ClearingResult:
    """Clear ``orders`` with the named mechanism (a key of ``MECHANISMS``).

    ``k`` selects k-pricing and is only meaningful for ``"uniform"``; without it the uniform
    auction uses the midpoint. Raises ``ClearingError`` for an unknown mechanism, a ``k`` given
    to another mechanism, or invalid orders.
    """
    if mechanism not in MECHANISMS:
        known = ", ".join(MECHANISMS)
        raise ClearingError(f"unknown mechanism {mechanism!r}; use one of {known}")
    if k is None:
        return MECHANISMS[mechanism](orders)
    if mechanism != "uniform":
        raise ClearingError(f"k-pricing applies to the uniform auction only, not {mechanism!r}")
    return uniform_price(orders, pricing="k", k=k)
