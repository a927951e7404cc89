"""Truthfulness of the mechanisms labelled truthful: no single trader gains by misreporting its
limit price, on small random books, against every price that could change the outcome."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.clearing import (
    TRUTHFUL,
    ClearingResult,
    Order,
    Side,
    order_trade_reduction,
    trade_reduction,
    uniform_price,
)
from marketplace.tests.clearing.helpers import T0

TICK = Decimal("0.0001")
Mechanism = Callable[[Sequence[Order]], ClearingResult]


@st.composite
def small_books(draw: st.DrawFn, *, single_unit: bool) -> list[Order]:
    """Up to five orders a side, prices on a coarse grid so that misreports create ties."""
    n_buy = draw(st.integers(1, 5))
    n_sell = draw(st.integers(1, 5))
    orders = []
    for i in range(n_buy + n_sell):
        quantity = Decimal("0.001") if single_unit else Decimal(draw(st.integers(1, 4)))
        price = Decimal(draw(st.integers(0, 12))).scaleb(-2)
        at = T0 + timedelta(seconds=draw(st.integers(0, 2)))
        side = Side.BUY if i < n_buy else Side.SELL
        orders.append(Order(f"o{i}", side, quantity, price, at))
    return orders


def utility(order: Order, result: ClearingResult) -> Decimal:
    """Gains from trade of ``order``'s owner at its *true* limit."""
    if order.side == Side.BUY:
        gains = (m.quantity * (order.price - m.price) for m in result.trades if m.buyer == order.id)
    else:
        gains = (
            m.quantity * (m.seller_price - order.price)
            for m in result.trades
            if m.seller == order.id
        )
    return sum(gains, Decimal(0))


def misreports(orders: Sequence[Order]) -> set[Decimal]:
    """Every price at which an order's rank or a clearing price can change: each limit in the
    book, a tick either side, and the extremes."""
    prices = {Decimal(0), Decimal("0.5")}
    for o in orders:
        prices |= {o.price, o.price + TICK, max(o.price - TICK, Decimal(0))}
    return prices


def assert_no_profitable_misreport(mechanism: Mechanism, orders: list[Order]) -> None:
    truthful = mechanism(orders)
    for i, order in enumerate(orders):
        honest = utility(order, truthful)
        for price in misreports(orders):
            lied = list(orders)
            lied[i] = dataclasses.replace(order, price=price)
            gain = utility(order, mechanism(lied))
            assert gain <= honest, f"{order.id} gains {gain - honest} by reporting {price}"


TRUTH = settings(max_examples=40, deadline=None)


@TRUTH
@given(orders=small_books(single_unit=True))
def test_trade_reduction_is_truthful_for_single_unit_traders(orders: list[Order]) -> None:
    assert "single-unit" in TRUTHFUL["trade-reduction"]
    assert_no_profitable_misreport(trade_reduction, orders)


@TRUTH
@given(orders=small_books(single_unit=False))
def test_order_trade_reduction_is_truthful_in_price_for_multi_unit_orders(
    orders: list[Order],
) -> None:
    assert "multi-unit" in TRUTHFUL["order-trade-reduction"]
    assert_no_profitable_misreport(order_trade_reduction, orders)


def test_the_truthfulness_check_catches_a_lie_that_pays() -> None:
    # The check itself must be able to fail: the k-double auction is not truthful, and a
    # marginal seller gains by asking more (1 kWh each: bid 0.10, ask 0.02; the price is the
    # midpoint of [0.02, 0.10] and rises with the ask).
    book = [
        Order("b", Side.BUY, Decimal(1), Decimal("0.10"), T0),
        Order("s", Side.SELL, Decimal(1), Decimal("0.02"), T0),
    ]
    with pytest.raises(AssertionError, match="gains"):
        assert_no_profitable_misreport(uniform_price, book)
