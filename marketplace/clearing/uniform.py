"""Uniform-price k-double auction: everyone who trades pays or receives one clearing price.

Rustichini, Satterthwaite & Williams, "Convergence to efficiency in a simple market with
incomplete information", Econometrica 62(5) (1994) 1041-1063, section 2 (after Chatterjee &
Samuelson's bilateral k = 1/2 rule and Satterthwaite & Williams, J. Econ. Theory 48 (1989)).

Every order is a run of units of 0.001 kWh at its limit price. Sort all unit bids in decreasing
order b_1 >= b_2 >= ... and all unit asks in increasing order s_1 <= s_2 <= ...; m, the efficient
volume, is the largest index with b_m >= s_m. Any price in the *market-clearing interval*

    [a, b] = [max(s_m, b_{m+1}), min(b_m, s_{m+1})]                                  (RSW sec. 2)

makes supply equal demand at m units: at such a price the m-th buyer and seller still want to
trade and the best excluded bid and ask do not. An absent b_{m+1} (demand exhausted) counts as
-inf and an absent s_{m+1} as +inf, so [a, b] is never empty. The k-double auction trades the m
units at

    p = a + k (b - a),  k in [0, 1]                                                  (RSW sec. 2)

(k = 0 favours buyers, k = 1 sellers, k = 1/2 is the midpoint; the default). p is rounded half
to even to the 0.0001 tick; a and b are whole ticks, so p stays in [a, b] and no trader trades
outside its limit. A marginal bid equal to the marginal ask trades at that price.

Example (the book in the module's tests): bids 10 and 9, asks 1 and 9.5, one unit each. m = 1,
[a, b] = [max(1, 9), min(10, 9.5)] = [9, 9.5], so p = 9.25 at k = 1/2. A midpoint of the marginal
pair (5.5) would leave the excluded buyer at 9 wanting to buy at the price, which this rule never
does.

Not truthful: a trader on the margin can move the price by shading its limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from marketplace.clearing.book import (
    Book,
    Cross,
    Priced,
    book_from_orders,
    cross,
    price_segments,
    result_of,
    round_to_tick,
)
from marketplace.clearing.types import ClearingError, ClearingResult, Order

MECHANISM = "uniform"
DEFAULT_K = Decimal("0.5")


def check_k(k: object) -> Decimal:
    """Validate a k of k-pricing: a finite Decimal (or int) in [0, 1]."""
    if isinstance(k, bool) or not isinstance(k, Decimal | int):
        raise ClearingError(f"k must be a Decimal in [0, 1], got {type(k).__name__}")
    kd = Decimal(k)
    if not kd.is_finite() or not Decimal(0) <= kd <= Decimal(1):
        raise ClearingError(f"k must be in [0, 1], got {k}")
    return kd


def clearing_interval(crossing: Cross) -> tuple[int, int]:
    """The market-clearing interval [a, b] in ticks (the book must trade: volume > 0)."""
    low = crossing.marginal_ask
    if crossing.next_bid is not None:
        low = max(low, crossing.next_bid)
    high = crossing.marginal_bid
    if crossing.next_ask is not None:
        high = min(high, crossing.next_ask)
    return low, high


def uniform_price_ticks(crossing: Cross, *, k: Decimal) -> int:
    """The clearing price a + k (b - a) in ticks (RSW), rounded half to even."""
    low, high = clearing_interval(crossing)
    return round_to_tick(low + k * (high - low))


def uniform_priced(book: Book, *, k: Decimal = DEFAULT_K) -> Priced | None:
    """The trades of an already converted book in integer columns; None if nothing trades."""
    crossing = cross(book)
    if crossing.volume == 0:
        return None
    ticks = uniform_price_ticks(crossing, k=k)
    return price_segments(crossing, price_ticks=ticks, clearing_price=ticks)


def uniform_from_book(book: Book, *, k: Decimal = DEFAULT_K) -> ClearingResult:
    """Clear an already converted book (the benchmark times this separately from conversion)."""
    return result_of(MECHANISM, book, uniform_priced(book, k=k))


def uniform_price(orders: Sequence[Order], *, k: Decimal = DEFAULT_K) -> ClearingResult:
    """Clear ``orders`` in the k-double auction (see the module docstring).

    Sellers are sorted ascending by price, buyers descending, ties by ``submitted_at`` then id;
    the marginal order on each side may be partially filled, and buyers and sellers are paired
    in merit order walking both curves. Raises ``ClearingError`` on invalid orders or k outside
    [0, 1].
    """
    kd = check_k(k)
    return uniform_from_book(book_from_orders(orders), k=kd)
