"""Uniform-price double auction: everyone who trades pays or receives one clearing price.

Pricing rule (documented here and in ``uniform_price``): the traded volume is where the aggregate
demand curve (bids, highest first) and supply curve (asks, lowest first) meet; the *marginal* bid
and ask are the limits of the buyer and the seller whose orders contain the last traded kWh. The
price is

* ``"midpoint"`` (default): (marginal bid + marginal ask) / 2, or
* ``"k"``: k * marginal bid + (1 - k) * marginal ask, k in [0, 1] (k-double auction,
  Satterthwaite & Williams 1989; k = 1 favours sellers, k = 0 favours buyers),

rounded half to even to the 0.0001 price tick. Every traded bid is >= the marginal bid and every
traded ask <= the marginal ask, and both are whole ticks, so nobody trades outside its limit.
A marginal bid equal to the marginal ask trades at that price (some libraries test bid > ask
and return no trade there; that loses welfare and we do not).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Literal

from marketplace.clearing.book import (
    Book,
    Cross,
    book_from_orders,
    build_matches,
    cross,
    price_decimal,
    round_to_tick,
)
from marketplace.clearing.types import ClearingError, ClearingResult, Order

Pricing = Literal["midpoint", "k"]
MECHANISM = "uniform"


def check_k(k: object) -> Decimal:
    """Validate the k of k-pricing: a finite Decimal (or int) in [0, 1]."""
    if isinstance(k, bool) or not isinstance(k, Decimal | int):
        raise ClearingError(f"k must be a Decimal in [0, 1], got {type(k).__name__}")
    kd = Decimal(k)
    if not kd.is_finite() or not Decimal(0) <= kd <= Decimal(1):
        raise ClearingError(f"k must be in [0, 1], got {k}")
    return kd


def uniform_price_ticks(crossing: Cross, *, pricing: Pricing, k: Decimal) -> int:
    """The clearing price in ticks for a book that trades (``crossing.volume > 0``)."""
    bid = Decimal(crossing.marginal_bid)
    ask = Decimal(crossing.marginal_ask)
    weight = Decimal("0.5") if pricing == "midpoint" else k
    return round_to_tick(weight * bid + (1 - weight) * ask)


def uniform_from_book(book: Book, *, pricing: Pricing = "midpoint", k: Decimal) -> ClearingResult:
    """Clear an already converted book (the benchmark times this separately from conversion)."""
    crossing = cross(book)
    if crossing.volume == 0:
        return ClearingResult(MECHANISM, None, ())
    ticks = uniform_price_ticks(crossing, pricing=pricing, k=k)
    matches, welfare = build_matches(book, crossing, price_ticks=ticks)
    return ClearingResult(MECHANISM, price_decimal(ticks), matches, welfare)


def uniform_price(
    orders: Sequence[Order],
    *,
    pricing: Pricing = "midpoint",
    k: Decimal = Decimal("0.5"),
) -> ClearingResult:
    """Clear ``orders`` in a uniform-price double auction (see the module docstring).

    Sellers are sorted ascending by price, buyers descending, ties by ``submitted_at`` then id;
    the aggregate curves' intersection sets the volume and the marginal orders, the marginal
    order on each side is partially filled, and buyers and sellers are paired in merit order
    walking both curves. ``k`` is only used with ``pricing="k"``.
    Raises ``ClearingError`` on invalid orders, an unknown ``pricing`` or k outside [0, 1].
    """
    if pricing not in ("midpoint", "k"):
        raise ClearingError(f"unknown pricing {pricing!r}; use 'midpoint' or 'k'")
    kd = check_k(k)
    return uniform_from_book(book_from_orders(orders), pricing=pricing, k=kd)
