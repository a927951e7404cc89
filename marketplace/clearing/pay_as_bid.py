"""Pay-as-bid double auction: each matched pair trades at the buyer's bid.

Who trades, and how much, is the uniform auction's merit-order matching (highest bid with lowest
ask, walking both curves; ties by submission time), so volume and welfare are the efficient
ones. Each matched pair (one segment of the merit-order walk) then trades at the buyer's limit
price, as gsy-e's pay-as-bid market does (the trade rate is the bid's rate): the buyer pays its
bid and the seller receives that same price, which is >= its ask because the pair crossed. There
is no budget surplus and no single clearing price. All gains from trade go to sellers; buyers
learn to bid what they expect the ask to be. Not truthful.

The rule that prices each pair between its bid and ask is ``discriminatory``.
"""

from __future__ import annotations

from collections.abc import Sequence

from marketplace.clearing.book import (
    Book,
    Priced,
    book_from_orders,
    cross,
    price_segments,
    result_of,
)
from marketplace.clearing.types import ClearingResult, Order

MECHANISM = "pay-as-bid"


def pay_as_bid_priced(book: Book) -> Priced | None:
    """The trades of an already converted book in integer columns; None if nothing trades."""
    crossing = cross(book)
    if crossing.volume == 0:
        return None
    return price_segments(crossing, price_ticks=book.buy.price[crossing.seg_buyer])


def pay_as_bid_from_book(book: Book) -> ClearingResult:
    """Clear an already converted book."""
    return result_of(MECHANISM, book, pay_as_bid_priced(book))


def pay_as_bid(orders: Sequence[Order]) -> ClearingResult:
    """Clear ``orders`` pay-as-bid: merit-order pairs, each at the buyer's bid.

    ``price`` on the result is None (there is no single clearing price).
    Raises ``ClearingError`` on invalid orders.
    """
    return pay_as_bid_from_book(book_from_orders(orders))
