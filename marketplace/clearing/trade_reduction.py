"""McAfee's trade-reduction double auction on 0.001 kWh steps.

R. P. McAfee, "A dominant strategy double auction", J. Econ. Theory 56 (1992) 434-450, section 2.
With the unit bids sorted b_1 >= b_2 >= ... and the unit asks s_1 <= s_2 <= ..., let k be the
efficient number of trades (b_k >= s_k and b_{k+1} < s_{k+1}) and

    p0 = (b_{k+1} + s_{k+1}) / 2.

* If s_k <= p0 <= b_k, all k units trade at p0.
* Otherwise the k-th (least valuable) unit is dropped: the other k - 1 units trade, buyers
  paying b_k and sellers receiving s_k per unit; the difference (k - 1)(b_k - s_k) >= 0 is a
  budget surplus, booked to the community.

Here a unit is one 0.001 kWh step of an order, the book's quantity resolution; an order of
q kWh is 1000 q units at its limit. b_k and s_k are the limits of the orders owning the last
efficiently traded step, b_{k+1} and s_{k+1} those owning the first step not traded on each side
(the uniform auction's marginal and next bid and ask). Where a side has no untraded step left,
p0 is undefined and the reduction branch applies: McAfee's own convention of fictitious traders
b_{n+1} = 0 and s_{m+1} = +inf puts p0 above b_k. p0 is tested unrounded and, when it applies,
rounded half to even to the 0.0001 tick (it stays in [s_k, b_k]: both are whole ticks).

The reduction drops exactly the marginal step: the last 0.001 kWh that the marginal buyer and
marginal seller trade with each other. Everything else still trades, so the volume is the
efficient volume or 0.001 kWh less, never less than that.

Truthfulness, as it holds: dominant-strategy truthful for *single-unit* traders, i.e. orders of
0.001 kWh (McAfee's theorem; tested on random books of such orders). It is NOT truthful for
multi-unit orders, because a multi-unit buyer on the margin sets b_k for its own other steps.
Counterexample: buyer B wants 0.002 kWh at 0.30; sellers S1 0.001 kWh at 0.05 and S2 0.001 kWh at
0.10. Both steps cross (k = 2) and no step is left over, so the reduction branch applies: B buys
0.001 kWh from S1 at b_k = 0.30 and gains nothing. If B reports 0.15 instead, both steps still
cross, B buys the same 0.001 kWh at b_k = 0.15 and gains 0.001 * (0.30 - 0.15). For multi-unit
orders, ``order-trade-reduction`` is truthful in the price.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal

from marketplace.clearing.book import (
    Book,
    Priced,
    book_from_orders,
    cross,
    price_segments,
    result_of,
    round_to_tick,
)
from marketplace.clearing.types import ClearingResult, Order

MECHANISM = "trade-reduction"


def trade_reduction_priced(book: Book) -> Priced | None:
    """The trades of an already converted book in integer columns; None if nothing trades."""
    crossing = cross(book)
    if crossing.volume == 0:
        return None
    b_k, s_k = crossing.marginal_bid, crossing.marginal_ask
    if crossing.next_bid is not None and crossing.next_ask is not None:
        p0 = Decimal(crossing.next_bid + crossing.next_ask) / 2
        if s_k <= p0 <= b_k:
            ticks = round_to_tick(p0)
            return price_segments(crossing, price_ticks=ticks, clearing_price=ticks)
    # Drop the marginal step: one milli-kWh off the last segment of the merit-order walk.
    quantities = crossing.seg_quantity.copy()
    quantities[-1] -= 1
    keep = len(quantities) if quantities[-1] > 0 else len(quantities) - 1
    if keep == 0:
        return None
    reduced = dataclasses.replace(crossing, volume=crossing.volume - 1, seg_quantity=quantities)
    # Two prices (buyers b_k, sellers s_k), so there is no single clearing price to report.
    return price_segments(reduced, keep=keep, price_ticks=b_k, seller_price_ticks=s_k)


def trade_reduction_from_book(book: Book) -> ClearingResult:
    """Clear an already converted book."""
    return result_of(MECHANISM, book, trade_reduction_priced(book))


def trade_reduction(orders: Sequence[Order]) -> ClearingResult:
    """Clear ``orders`` with McAfee's trade reduction (see the module docstring for the rule).

    ``price`` on the result is p0 when all efficient trades are made at p0, else None (buyers pay
    b_k, sellers get s_k; ``Match.seller_price`` differs and ``surplus`` goes to the community).
    Raises ``ClearingError`` on invalid orders.
    """
    return trade_reduction_from_book(book_from_orders(orders))
