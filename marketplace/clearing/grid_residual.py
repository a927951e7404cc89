"""What the peers did not match is traded with the outside grid through the community.

For community and composite markets the community manager is the counterparty for leftovers:
every unmatched buy kWh is bought from the grid at the retail tariff and every unmatched sell kWh
is sold to the grid at the feed-in tariff.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from marketplace.clearing.book import validate_order
from marketplace.clearing.types import (
    ZERO,
    ClearingError,
    ClearingResult,
    GridTrade,
    Order,
    Side,
)


def grid_residual(
    orders: Sequence[Order],
    result: ClearingResult,
    *,
    retail: Decimal,
    feed_in: Decimal,
) -> tuple[GridTrade, ...]:
    """One ``GridTrade`` per order with an unmatched remainder, in input order.

    Raises ``ClearingError`` for invalid orders or tariffs, or if ``result`` names an unknown
    order, puts an order on the wrong side, or fills an order beyond its quantity.
    """
    for name, tariff in (("retail", retail), ("feed_in", feed_in)):
        if not isinstance(tariff, Decimal) or not tariff.is_finite() or tariff < 0:
            raise ClearingError(f"{name} must be a finite Decimal >= 0, got {tariff!r}")
    by_id: dict[str, Order] = {}
    for i, order in enumerate(orders):
        validate_order(order, i)
        if order.id in by_id:
            raise ClearingError(f"duplicate order id {order.id!r}")
        by_id[order.id] = order
    filled: dict[str, Decimal] = dict.fromkeys(by_id, ZERO)
    for match in result.trades:
        for order_id, side in ((match.buyer, Side.BUY), (match.seller, Side.SELL)):
            known = by_id.get(order_id)
            if known is None or known.side != side:
                raise ClearingError(f"trade names {order_id!r}, not a {side} order of this book")
            filled[order_id] += match.quantity
    residual: list[GridTrade] = []
    for order in orders:
        left = order.quantity - filled[order.id]
        if left < 0:
            raise ClearingError(f"order {order.id!r} is filled beyond its quantity")
        if left > 0:
            price = retail if order.side == Side.BUY else feed_in
            residual.append(GridTrade(order.id, order.side, left, price))
    return tuple(residual)
