"""Clearing a book given as integer columns, with the matches returned as columns.

The Decimal ``Order`` API reads five attributes of every order and converts two Decimals each
before the NumPy core starts: for 100,000 orders a side that is most of the time, and the core
itself a few per cent of it. A caller that holds its book as columns already (the pipeline
reads it from the database as integers: ``values_list`` over ``quantity * 1000`` and
``price * 10000`` cast to bigint, which is exact because the columns have 3 and 4 decimal
places) builds one ``OrderColumns`` and never makes a Decimal for an order:

* ``OrderColumns``: side, quantity in milli-kWh, limit price in ticks of 0.0001, submission
  time in microseconds since the epoch, and a tiebreak (the order among equal submission times
  that the Decimal API takes from the ids); ``OrderColumns.from_orders`` converts a list of
  ``Order`` once, for small books and for the tests that hold both paths equal.
* ``clear_columns``: validates the columns with array operations, then runs the same mechanism
  code as the Decimal API (``book.cross`` and the mechanism's pricing) and returns
  ``MatchColumns``: buyer and seller positions, quantity and prices as int64 arrays.
* Decimals only where a trade is written: ``quantity_decimal`` and ``price_decimal`` of the
  rows a caller stores; ``MatchColumns.filled`` gives each order's filled milli-kWh, from which
  the grid residual is the quantity minus the fill.

The trades are exactly those of the Decimal API for the same orders (the property tests
compare both on random books with ties): the same mechanism functions run on the same integer
book, and the time priority ``(submitted_us, tiebreak)`` orders orders as
``(submitted_at, id)`` does when the tiebreak is the rank of the id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from marketplace.clearing.book import (
    Book,
    IntArray,
    Priced,
    SideBook,
    book_from_orders,
    price_decimal,
    quantity_decimal,
)
from marketplace.clearing.discriminatory import discriminatory_priced
from marketplace.clearing.order_reduction import order_trade_reduction_priced
from marketplace.clearing.pay_as_bid import pay_as_bid_priced
from marketplace.clearing.trade_reduction import trade_reduction_priced
from marketplace.clearing.types import (
    KWH_PLACES,
    MAX_PRICE,
    MAX_QUANTITY_KWH,
    PRICE_PLACES,
    ClearingError,
    Match,
    Order,
)
from marketplace.clearing.uniform import DEFAULT_K, check_k, uniform_priced

BoolArray = npt.NDArray[np.bool_]
_MAX_QUANTITY_UNITS = int(MAX_QUANTITY_KWH) * 10**KWH_PLACES
_MAX_PRICE_TICKS = int(MAX_PRICE) * 10**PRICE_PLACES


@dataclass(frozen=True, slots=True)
class OrderColumns:
    """A book of limit orders as equal-length arrays, one position per order."""

    is_buy: BoolArray
    quantity: IntArray  # milli-kWh, > 0
    price: IntArray  # limit price in ticks of 0.0001, >= 0
    submitted_us: IntArray  # submission time, microseconds since the epoch (UTC)
    tiebreak: IntArray  # order among equal submission times; (submitted_us, tiebreak) unique

    def __len__(self) -> int:
        return len(self.quantity)

    @classmethod
    def from_orders(cls, orders: Sequence[Order]) -> OrderColumns:
        """Convert ``Order`` objects once (validated as the Decimal API does); the tiebreak is
        the rank of each order's id, so both APIs order equal times the same way."""
        book = book_from_orders(orders)
        n = len(orders)
        is_buy = np.zeros(n, dtype=np.bool_)
        is_buy[book.buy.index] = True
        quantity = np.empty(n, dtype=np.int64)
        price = np.empty(n, dtype=np.int64)
        priority = np.empty(n, dtype=np.int64)
        for side in (book.buy, book.sell):
            quantity[side.index] = side.quantity
            price[side.index] = side.price
            priority[side.index] = side.priority
        # The Decimal book ranked (submitted_at, id) already; the microseconds keep the times
        # for the caller, and the rank among equal times is that priority itself.
        submitted_us = np.fromiter(
            (o.submitted_at.timestamp() for o in orders), dtype=np.float64, count=n
        )
        return cls(
            is_buy=is_buy,
            quantity=quantity,
            price=price,
            submitted_us=np.rint(submitted_us * 1e6).astype(np.int64),
            tiebreak=priority,
        )


def _int_column(name: str, values: Any, n: int) -> IntArray:
    array = np.asarray(values)
    if array.shape != (n,):
        raise ClearingError(f"{name} must be a column of {n} values, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ClearingError(f"{name} must be integers, got {array.dtype}")
    return array.astype(np.int64, copy=False)


def _time_order(submitted: IntArray, tiebreak: IntArray) -> IntArray:
    if not len(submitted):
        return np.zeros(0, dtype=np.int64)
    t_low, b_low = int(submitted.min()), int(tiebreak.min())
    t_span = int(submitted.max()) - t_low + 1
    b_span = int(tiebreak.max()) - b_low + 1
    if t_span * b_span < 2**62:
        key = (submitted - t_low) * b_span + (tiebreak - b_low)
        # The keys are distinct (checked below), so any sort gives the one order.
        return np.argsort(key).astype(np.int64)
    return np.lexsort((tiebreak, submitted)).astype(np.int64)


def book_from_columns(columns: OrderColumns) -> Book:
    """Validate ``columns`` with array operations and split them into the core's book."""
    n = len(columns.quantity)
    quantity = _int_column("quantity", columns.quantity, n)
    price = _int_column("price", columns.price, n)
    submitted = _int_column("submitted_us", columns.submitted_us, n)
    tiebreak = _int_column("tiebreak", columns.tiebreak, n)
    is_buy = np.asarray(columns.is_buy)
    if is_buy.shape != (n,) or is_buy.dtype != np.bool_:
        raise ClearingError(f"is_buy must be a column of {n} booleans")
    if n:
        bad = np.flatnonzero((quantity <= 0) | (quantity > _MAX_QUANTITY_UNITS))
        if len(bad):
            i = int(bad[0])
            raise ClearingError(f"order #{i}: quantity {int(quantity[i])} milli-kWh out of range")
        bad = np.flatnonzero((price < 0) | (price > _MAX_PRICE_TICKS))
        if len(bad):
            i = int(bad[0])
            raise ClearingError(f"order #{i}: price {int(price[i])} ticks out of range")
    # Time priority: by submission time, then tiebreak; a dense rank, like a sequence number.
    # One int64 key where the pair fits (an argsort of one key is several times faster than a
    # lexsort of two), else the lexsort.
    by_time = _time_order(submitted, tiebreak)
    same = (submitted[by_time][1:] == submitted[by_time][:-1]) & (
        tiebreak[by_time][1:] == tiebreak[by_time][:-1]
    )
    if same.any():
        i = int(by_time[int(np.flatnonzero(same)[0]) + 1])
        raise ClearingError(f"order #{i}: same submission time and tiebreak as another order")
    priority = np.empty(n, dtype=np.int64)
    priority[by_time] = np.arange(n, dtype=np.int64)
    buy_idx = np.flatnonzero(is_buy).astype(np.int64)
    sell_idx = np.flatnonzero(~is_buy).astype(np.int64)

    def side(idx: IntArray) -> SideBook:
        return SideBook(index=idx, price=price[idx], quantity=quantity[idx], priority=priority[idx])

    return Book(buy=side(buy_idx), sell=side(sell_idx))


@dataclass(frozen=True, slots=True)
class MatchColumns:
    """A mechanism's trades as columns, one row per match, in merit order.

    ``buyer`` and ``seller`` are positions in the ``OrderColumns`` cleared; quantities are
    milli-kWh and prices ticks of 0.0001, exactly the ``Match`` fields of the Decimal API.
    """

    mechanism: str
    buyer: IntArray
    seller: IntArray
    quantity: IntArray
    price: IntArray
    seller_price: IntArray
    clearing_price: int | None  # ticks; the one price of every match, if the mechanism has one
    welfare_units: int  # realised gains from trade in milli-kWh x ticks

    def __len__(self) -> int:
        return len(self.quantity)

    @property
    def volume(self) -> int:
        """Energy traded between peers, milli-kWh."""
        return int(self.quantity.sum())

    def filled(self, orders: int) -> IntArray:
        """Milli-kWh each of the ``orders`` positions traded (bought or sold)."""
        weights = self.quantity.astype(np.float64)
        # Exact: a float64 sum of integers stays exact below 2**53 milli-kWh per order.
        return (
            np.bincount(self.buyer, weights=weights, minlength=orders)
            + np.bincount(self.seller, weights=weights, minlength=orders)
        ).astype(np.int64)

    def matches(self, ids: Sequence[str]) -> tuple[Match, ...]:
        """The trades as the Decimal API's ``Match`` objects, naming orders by ``ids``
        (one per position of the cleared ``OrderColumns``)."""
        qty_of = {q: quantity_decimal(q) for q in set(self.quantity.tolist())}
        prices = {*self.price.tolist(), *self.seller_price.tolist()}
        price_of = {p: price_decimal(p) for p in prices}
        return tuple(
            Match(ids[b], ids[s], qty_of[q], price_of[p], price_of[sp])
            for b, s, q, p, sp in zip(
                self.buyer.tolist(),
                self.seller.tolist(),
                self.quantity.tolist(),
                self.price.tolist(),
                self.seller_price.tolist(),
                strict=True,
            )
        )

    @property
    def price_decimal(self) -> Decimal | None:
        return None if self.clearing_price is None else price_decimal(self.clearing_price)


_PRICERS: dict[str, Callable[..., Priced | None]] = {
    "uniform": uniform_priced,
    "pay-as-bid": pay_as_bid_priced,
    "discriminatory": discriminatory_priced,
    "trade-reduction": trade_reduction_priced,
    "order-trade-reduction": order_trade_reduction_priced,
}
_K_PRICERS = frozenset({"uniform", "discriminatory"})


def clear_columns(
    mechanism: str, columns: OrderColumns, *, k: Decimal | None = None
) -> MatchColumns:
    """Clear ``columns`` with the named mechanism (as ``marketplace.clearing.clear``).

    Raises ``ClearingError`` for an unknown mechanism, a ``k`` given to a mechanism without
    one, or invalid columns.
    """
    if mechanism not in _PRICERS:
        raise ClearingError(f"unknown mechanism {mechanism!r}; use one of {', '.join(_PRICERS)}")
    if k is not None and mechanism not in _K_PRICERS:
        raise ClearingError(f"{mechanism!r} takes no k; k prices uniform and discriminatory")
    book = book_from_columns(columns)
    if mechanism in _K_PRICERS:
        priced = _PRICERS[mechanism](book, k=DEFAULT_K if k is None else check_k(k))
    else:
        priced = _PRICERS[mechanism](book)
    empty = np.zeros(0, dtype=np.int64)
    if priced is None or len(priced.quantity) == 0:
        return MatchColumns(mechanism, empty, empty, empty, empty, empty, None, 0)
    return MatchColumns(
        mechanism=mechanism,
        buyer=book.buy.index[priced.buyer],
        seller=book.sell.index[priced.seller],
        quantity=priced.quantity,
        price=priced.price,
        seller_price=priced.seller_price,
        clearing_price=priced.clearing_price,
        welfare_units=priced.welfare_units(book),
    )
