"""Pure clearing mechanisms for PeerGrid markets (plain Python and NumPy, no Django).

Pooled double auctions (``uniform_price``, the k-double auction; ``pay_as_bid``;
``discriminatory``; McAfee's ``trade_reduction``; ``order_trade_reduction``), automatic
acceptance on the bilateral board (``bilateral_accept``), quantity-only community pricing rules
(``mid_market_rate``, ``supply_demand_ratio``, ``bill_sharing``) and the grid residual of a pooled
market (``grid_residual``). A caller holding its book as integer columns clears it with
``clear_columns`` (``columns``: no Decimal per order, the same trades). Each mechanism's
pricing rule is documented in its module docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from marketplace.clearing.bilateral import bilateral_accept
from marketplace.clearing.book import price_decimal, quantity_decimal
from marketplace.clearing.columns import MatchColumns, OrderColumns, clear_columns
from marketplace.clearing.community_pricing import (
    COMMUNITY_RULES,
    CommunitySettlement,
    MemberSettlement,
    bill_sharing,
    mid_market_rate,
    supply_demand_ratio,
)
from marketplace.clearing.discriminatory import discriminatory
from marketplace.clearing.grid_residual import grid_residual
from marketplace.clearing.order_reduction import order_trade_reduction
from marketplace.clearing.pay_as_bid import pay_as_bid
from marketplace.clearing.trade_reduction import trade_reduction
from marketplace.clearing.types import (
    KWH_PLACES,
    PRICE_PLACES,
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
    "KWH_PLACES",
    "K_MECHANISMS",
    "MECHANISMS",
    "PRICE_PLACES",
    "TRUTHFUL",
    "ClearingError",
    "ClearingResult",
    "CommunitySettlement",
    "GridTrade",
    "Match",
    "MatchColumns",
    "MemberSettlement",
    "Order",
    "OrderColumns",
    "Side",
    "bilateral_accept",
    "bill_sharing",
    "clear",
    "clear_columns",
    "discriminatory",
    "grid_residual",
    "mid_market_rate",
    "order_trade_reduction",
    "pay_as_bid",
    "price_decimal",
    "quantity_decimal",
    "supply_demand_ratio",
    "trade_reduction",
    "uniform_price",
]

MECHANISMS: dict[str, Callable[..., ClearingResult]] = {
    "uniform": uniform_price,
    "pay-as-bid": pay_as_bid,
    "discriminatory": discriminatory,
    "trade-reduction": trade_reduction,
    "order-trade-reduction": order_trade_reduction,
}
# The mechanisms priced by a k in [0, 1]; the others take no parameter.
K_MECHANISMS = frozenset({"uniform", "discriminatory"})
# What each label promises, held by the truthfulness tests.
TRUTHFUL = {
    "trade-reduction": "truthful for single-unit traders (orders of 0.001 kWh) only",
    "order-trade-reduction": "truthful in the limit price for multi-unit orders",
}


def clear(mechanism: str, orders: Sequence[Order], *, k: Decimal | None = None) -> ClearingResult:
    """Clear ``orders`` with the named mechanism (a key of ``MECHANISMS``).

    ``k`` is the k of the k-double auction (``uniform``) or of ``discriminatory`` pair pricing
    (default 0.5); other mechanisms take none. Raises ``ClearingError`` for an unknown mechanism,
    a ``k`` given to a mechanism without one, or invalid orders.
    """
    if mechanism not in MECHANISMS:
        known = ", ".join(MECHANISMS)
        raise ClearingError(f"unknown mechanism {mechanism!r}; use one of {known}")
    if k is None:
        return MECHANISMS[mechanism](orders)
    if mechanism not in K_MECHANISMS:
        raise ClearingError(f"{mechanism!r} takes no k; k prices uniform and discriminatory")
    return MECHANISMS[mechanism](orders, k=k)
