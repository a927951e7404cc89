"""Discriminatory k-pricing double auction: each matched pair trades between its bid and ask.

Who trades, and how much, is the uniform auction's merit-order matching. Each matched pair (one
segment of the merit-order walk, buyer limit ``bid``, seller limit ``ask``) trades at

    p = ask + k (bid - ask),  k in [0, 1]

the pairwise k-double auction of Chatterjee & Samuelson, "Bargaining under incomplete
information", Operations Research 31(5) (1983) 835-851 (k = 1/2 there), applied to every pair;
k = 1/2 (the default) is the midpoint of the pair. p is rounded half to even to the 0.0001 tick;
the limits are whole ticks, so p stays within them. Buyer and seller see the same price, so there
is no budget surplus. Not truthful.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from marketplace.clearing.book import (
    Book,
    IntArray,
    Priced,
    book_from_orders,
    cross,
    price_segments,
    result_of,
)
from marketplace.clearing.types import ClearingResult, Order
from marketplace.clearing.uniform import DEFAULT_K, check_k

MECHANISM = "discriminatory"


def _half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator (denominator > 0) rounded half to even, in integers."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def pair_prices(bids: IntArray, asks: IntArray, k: Decimal) -> IntArray:
    """ask + k (bid - ask) per pair in ticks, rounded half to even, exactly (bid >= ask)."""
    # Exact in integers: k = num / den, so ask + k (bid - ask) = ask + num (bid - ask) / den.
    num, den = k.as_integer_ratio()
    gaps = bids - asks
    if len(gaps) and int(gaps.max()) * num < 2**62 and den < 2**62:
        quotient, remainder = np.divmod(gaps * num, den)
        twice = 2 * remainder
        quotient += (twice > den) | ((twice == den) & (quotient % 2 == 1))
        return asks + quotient
    # A k with a long decimal expansion: Python integers, which cannot overflow.
    prices = [
        a + _half_even(num * (b - a), den)
        for b, a in zip(bids.tolist(), asks.tolist(), strict=True)
    ]
    return np.array(prices, dtype=np.int64)


def discriminatory_priced(book: Book, *, k: Decimal = DEFAULT_K) -> Priced | None:
    """The trades of an already converted book in integer columns; None if nothing trades."""
    crossing = cross(book)
    if crossing.volume == 0:
        return None
    bids = book.buy.price[crossing.seg_buyer]
    asks = book.sell.price[crossing.seg_seller]
    return price_segments(crossing, price_ticks=pair_prices(bids, asks, k))


def discriminatory_from_book(book: Book, *, k: Decimal = DEFAULT_K) -> ClearingResult:
    """Clear an already converted book."""
    return result_of(MECHANISM, book, discriminatory_priced(book, k=k))


def discriminatory(orders: Sequence[Order], *, k: Decimal = DEFAULT_K) -> ClearingResult:
    """Clear ``orders`` with every merit-order pair at ask + k (bid - ask).

    ``price`` on the result is None. Raises ``ClearingError`` on invalid orders or k outside
    [0, 1].
    """
    kd = check_k(k)
    return discriminatory_from_book(book_from_orders(orders), k=kd)
