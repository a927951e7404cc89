"""McAfee's trade-reduction double auction (McAfee 1992, J. Econ. Theory 56:434-450).

McAfee's mechanism is dominant-strategy truthful for single-unit traders and gives up at most
the least valuable trade. With bids sorted b_1 >= b_2 >= ... and asks s_1 <= s_2 <= ..., let k
be the efficient number of trades (b_k >= s_k, b_{k+1} < s_{k+1}) and
p0 = (b_{k+1} + s_{k+1}) / 2. If s_k <= p0 <= b_k, all k pairs trade at p0; otherwise the k-th
pair is dropped and the remaining k-1 buyers pay b_k while the k-1 sellers receive s_k; the
difference (k-1)(b_k - s_k) >= 0 is a budget surplus booked to the community.

Generalisation to divisible orders (kWh), stated precisely:

* A *unit* is one milli-kWh. b_k and s_k are the limits of the buyer and seller owning the last
  efficiently traded unit (the marginal bid and ask of the uniform auction); b_{k+1} and s_{k+1}
  are the limits of the owners of the first unit *not* traded on each side. When one side has
  no untraded unit left, p0 is undefined and we take the reduction branch; this is McAfee's own
  convention of padding with fictitious traders b_{n+1} = 0 and s_{m+1} = +inf, which puts p0
  above b_k.
* p0 is tested unrounded; if it passes, every trade of the efficient matching is made at p0
  rounded half to even to the 0.0001 tick (still within [s_k, b_k] since limits are whole ticks).
* Otherwise the dropped "pair" is the final segment of the merit-order walk: the quantity that
  the marginal buyer and the marginal seller trade *with each other*. Everything before it still
  trades, buyers paying b_k and sellers receiving s_k per kWh. The marginal buyer and seller may
  keep trades with other counterparts from earlier segments; they then trade at their own limit,
  which leaves them no gain, as McAfee's excluded marginal traders. So the volume is either the
  efficient volume or the efficient volume minus that one segment's quantity, never less.

A partially filled marginal order always falls in the reduction branch (its own untraded
remainder is the first excluded unit on its side, and an untraded unit has b_{k+1} < s_{k+1}).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from marketplace.clearing.book import (
    Book,
    book_from_orders,
    build_matches,
    cross,
    price_decimal,
    round_to_tick,
)
from marketplace.clearing.types import ClearingResult, Order

MECHANISM = "trade-reduction"


def trade_reduction_from_book(book: Book) -> ClearingResult:
    """Clear an already converted book."""
    crossing = cross(book)
    if crossing.volume == 0:
        return ClearingResult(MECHANISM, None, ())
    b_k, s_k = crossing.marginal_bid, crossing.marginal_ask
    if crossing.next_bid is not None and crossing.next_ask is not None:
        p0 = Decimal(crossing.next_bid + crossing.next_ask) / 2
        if s_k <= p0 <= b_k:
            ticks = round_to_tick(p0)
            matches, welfare = build_matches(book, crossing, price_ticks=ticks)
            return ClearingResult(MECHANISM, price_decimal(ticks), matches, welfare)
    keep = len(crossing.seg_quantity) - 1
    if keep == 0:
        return ClearingResult(MECHANISM, None, ())
    # Two prices (buyers b_k, sellers s_k), so there is no single clearing price to report.
    matches, welfare = build_matches(
        book, crossing, keep=keep, price_ticks=b_k, seller_price_ticks=s_k
    )
    return ClearingResult(MECHANISM, None, matches, welfare)


def trade_reduction(orders: Sequence[Order]) -> ClearingResult:
    """Clear ``orders`` with McAfee's trade reduction (see the module docstring for the rule).

    ``price`` on the result is p0 when all efficient trades are made at p0, else None (buyers pay
    b_k, sellers get s_k; ``Match.seller_price`` differs and ``surplus`` goes to the community).
    Raises ``ClearingError`` on invalid orders.
    """
    return trade_reduction_from_book(book_from_orders(orders))
