"""Pay-as-bid (discriminatory) double auction: each matched pair trades at its own price.

Who trades, and how much, is exactly the uniform auction's merit-order matching (highest bid
with lowest ask, walking both curves), so volume and welfare are the efficient ones.

Pricing rule: each matched pair (one segment of the merit-order walk) trades at the midpoint of
its own bid and ask, rounded half to even to the 0.0001 tick. The buyer never pays above its bid
and the seller never receives below its ask (both limits are whole ticks and the midpoint lies
between them). We chose the pair midpoint over "the buyer pays its bid" because it treats buyers
and sellers alike (the equal-access rule): paying the bid hands all gains from trade to sellers,
which in a repeated market just teaches buyers to bid the expected ask. Buyer and seller see the
same price, so there is no budget surplus.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marketplace.clearing.book import Book, book_from_orders, build_matches, cross
from marketplace.clearing.types import ClearingResult, Order

MECHANISM = "pay-as-bid"


def pay_as_bid_from_book(book: Book) -> ClearingResult:
    """Clear an already converted book."""
    crossing = cross(book)
    if crossing.volume == 0:
        return ClearingResult(MECHANISM, None, ())
    total = book.buy.price[crossing.seg_buyer] + book.sell.price[crossing.seg_seller]
    # Round half to even on integer ticks: an odd sum sits exactly between two ticks.
    half = total // 2
    prices = half + ((total % 2 == 1) & (half % 2 == 1)).astype(np.int64)
    matches, welfare = build_matches(book, crossing, price_ticks=prices.tolist())
    return ClearingResult(MECHANISM, None, matches, welfare)


def pay_as_bid(orders: Sequence[Order]) -> ClearingResult:
    """Clear ``orders`` pay-as-bid: merit-order pairs, each at the midpoint of its bid and ask.

    ``price`` on the result is None (there is no single clearing price).
    Raises ``ClearingError`` on invalid orders.
    """
    return pay_as_bid_from_book(book_from_orders(orders))
