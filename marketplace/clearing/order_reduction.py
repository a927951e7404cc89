"""Trade reduction on whole orders: truthful in the limit price for multi-unit orders.

McAfee's reduction (``trade_reduction``) is truthful only for traders of one unit, because a
multi-unit trader on the margin sets the price of its own other units. This mechanism removes that
lever by excluding the marginal *orders* rather than the marginal unit, in the way of Huang,
Scheller-Wolf & Sycara's multi-unit double auction (Computational Intelligence 18(4) (2002)
596-617) for traders with one price per order; the rule as implemented here:

1. Run the efficient merit-order crossing (as the uniform auction: bids descending, asks
   ascending, ties by submission time). Let B* be the buyer order and S* the seller order that
   own the last efficiently traded 0.001 kWh.
2. B* and S* do not trade at all. The buyers ahead of B* in merit order pay B*'s bid per kWh;
   the sellers ahead of S* receive S*'s ask per kWh. B*'s bid >= S*'s ask (they crossed), so
   the difference is a budget surplus booked to the community: weakly budget balanced.
3. The volume is the smaller side's total quantity; the longer side is rationed by time
   priority alone (earliest submission first), never by price.

Truthfulness in the limit price (tested on random small books): an order's price decides only
whether it is ahead of the marginal order; while it is, its price changes neither the marginal
orders (raising or lowering it within the included buyers leaves the demand curve unchanged from
B*'s first step on), nor the prices, nor its rationed quantity (time priority). An excluded order
that raises its price far enough to be included makes the owner of the new last traded step
someone with a limit at least its own true one, so it pays at least its value (or sells for at
most its cost). Not claimed for misreported quantities.

The price of truthfulness is welfare: the marginal orders' whole quantities go untraded, which in
a book of a few large orders can be most of the volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marketplace.clearing.book import (
    Book,
    Cross,
    Priced,
    book_from_orders,
    cross,
    merit_order,
    price_segments,
    result_of,
    walk_segments,
)
from marketplace.clearing.types import ClearingResult, Order

MECHANISM = "order-trade-reduction"


def order_trade_reduction_priced(book: Book) -> Priced | None:
    """The trades of an already converted book in integer columns; None if nothing trades."""
    crossing = cross(book)
    if crossing.volume == 0:
        return None
    marginal_buyer = int(crossing.seg_buyer[-1])
    marginal_seller = int(crossing.seg_seller[-1])
    b_perm = merit_order(book.buy, descending=True)
    s_perm = merit_order(book.sell, descending=False)
    buyers = b_perm[: int(np.flatnonzero(b_perm == marginal_buyer)[0])]
    sellers = s_perm[: int(np.flatnonzero(s_perm == marginal_seller)[0])]
    if len(buyers) == 0 or len(sellers) == 0:
        return None
    # Ration by time priority only, so an included order's price never changes what it gets.
    buyers = buyers[np.argsort(book.buy.priority[buyers])]
    sellers = sellers[np.argsort(book.sell.priority[sellers])]
    demand = np.cumsum(book.buy.quantity[buyers])
    supply = np.cumsum(book.sell.quantity[sellers])
    volume = int(min(demand[-1], supply[-1]))
    seg_quantity, b_pos, s_pos = walk_segments(demand, supply, volume)
    bid = int(book.buy.price[marginal_buyer])
    ask = int(book.sell.price[marginal_seller])
    pairing = Cross(
        volume=volume,
        seg_quantity=seg_quantity,
        seg_buyer=buyers[b_pos],
        seg_seller=sellers[s_pos],
        marginal_bid=bid,
        marginal_ask=ask,
        next_bid=None,
        next_ask=None,
    )
    return price_segments(
        pairing, price_ticks=bid, seller_price_ticks=ask, clearing_price=bid if bid == ask else None
    )


def order_trade_reduction_from_book(book: Book) -> ClearingResult:
    """Clear an already converted book."""
    return result_of(MECHANISM, book, order_trade_reduction_priced(book))


def order_trade_reduction(orders: Sequence[Order]) -> ClearingResult:
    """Clear ``orders`` by excluding the marginal buyer and seller orders (module docstring).

    ``price`` is None unless buyers pay what sellers receive. Raises ``ClearingError`` on
    invalid orders.
    """
    return order_trade_reduction_from_book(book_from_orders(orders))
