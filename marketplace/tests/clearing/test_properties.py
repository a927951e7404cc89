"""Property-based tests: the invariants every pooled clearing mechanism must keep."""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.clearing import (
    MECHANISMS,
    ClearingResult,
    Order,
    Side,
    book,
    clear,
    grid_residual,
    pay_as_bid,
    trade_reduction,
    uniform_price,
)
from marketplace.tests.clearing.helpers import (
    books,
    greedy_pairs,
    pairs_welfare,
    triples,
    unit_max_welfare,
)

FAST = settings(max_examples=60, deadline=None)


def check_invariants(orders: list[Order], result: ClearingResult) -> None:
    by_id = {o.id: o for o in orders}
    filled: dict[str, Decimal] = defaultdict(Decimal)
    for m in result.trades:
        b, s = by_id[m.buyer], by_id[m.seller]
        assert b.side == Side.BUY
        assert s.side == Side.SELL
        assert m.quantity > 0
        assert m.price <= b.price, "buyer pays above its limit"
        assert m.seller_price >= s.price, "seller receives below its limit"
        assert m.seller_price <= m.price, "the community would pay the difference"
        filled[m.buyer] += m.quantity
        filled[m.seller] += m.quantity
    for oid, q in filled.items():
        assert q <= by_id[oid].quantity
    bought = sum((q for oid, q in filled.items() if by_id[oid].side == Side.BUY), Decimal(0))
    sold = sum((q for oid, q in filled.items() if by_id[oid].side == Side.SELL), Decimal(0))
    assert bought == sold == result.volume
    assert result.surplus >= 0
    assert result.buyer_payments == result.seller_receipts + result.surplus
    welfare = sum(
        (m.quantity * (by_id[m.buyer].price - by_id[m.seller].price) for m in result.trades),
        Decimal(0),
    )
    assert result.welfare == welfare


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
@FAST
@given(orders=books(), seed=st.integers(0, 2**32 - 1))
def test_invariants_and_input_order(mechanism: str, orders: list[Order], seed: int) -> None:
    result = clear(mechanism, orders)
    check_invariants(orders, result)
    shuffled = list(orders)
    random.Random(seed).shuffle(shuffled)
    assert clear(mechanism, shuffled) == result


@FAST
@given(orders=books())
def test_uniform_matches_reference_and_one_price(orders: list[Order]) -> None:
    result = uniform_price(orders)
    pairs = greedy_pairs(orders)
    assert [(m.buyer, m.seller, m.quantity) for m in result.trades] == [
        (p.buy.id, p.sell.id, p.quantity) for p in pairs
    ]
    assert result.welfare == pairs_welfare(pairs)
    if pairs:
        assert result.price is not None
        assert {m.price for m in result.trades} == {result.price}
        # Price between the marginal ask and bid (the last pair's limits).
        assert pairs[-1].sell.price <= result.price <= pairs[-1].buy.price
    else:
        assert result.price is None


@FAST
@given(orders=books(max_per_side=6, whole_kwh=True))
def test_uniform_reaches_unit_level_maximum_welfare(orders: list[Order]) -> None:
    assert uniform_price(orders).welfare == unit_max_welfare(orders)


@FAST
@given(orders=books(), k=st.integers(0, 100))
def test_k_pricing_stays_between_marginal_ask_and_bid(orders: list[Order], k: int) -> None:
    kd = Decimal(k) / 100
    result = uniform_price(orders, pricing="k", k=kd)
    check_invariants(orders, result)
    pairs = greedy_pairs(orders)
    if pairs:
        bid, ask = pairs[-1].buy.price, pairs[-1].sell.price
        assert result.price is not None
        assert ask <= result.price <= bid
        assert abs(result.price - (kd * bid + (1 - kd) * ask)) <= Decimal("0.00005")


@FAST
@given(orders=books())
def test_pay_as_bid_reaches_uniform_volume_and_welfare(orders: list[Order]) -> None:
    uniform = uniform_price(orders)
    discriminatory = pay_as_bid(orders)
    assert discriminatory.volume == uniform.volume
    assert discriminatory.welfare == uniform.welfare
    assert discriminatory.price is None
    assert discriminatory.surplus == 0


@FAST
@given(orders=books())
def test_trade_reduction_drops_at_most_the_marginal_pair(orders: list[Order]) -> None:
    pairs = greedy_pairs(orders)
    efficient = sum((p.quantity for p in pairs), Decimal(0))
    result = trade_reduction(orders)
    if not pairs:
        assert result.trades == ()
        return
    last = pairs[-1]
    assert result.volume in (efficient, efficient - last.quantity)
    assert result.welfare >= pairs_welfare(pairs) - last.quantity * (
        last.buy.price - last.sell.price
    )
    if result.volume == efficient:
        assert result.price is not None
        assert triples(result) == [
            (p.buy.id, p.sell.id, p.quantity, result.price, result.price) for p in pairs
        ]
    else:
        # Reduction branch: the kept trades are the efficient ones minus the marginal pair,
        # buyers pay the marginal bid, sellers receive the marginal ask.
        assert triples(result) == [
            (p.buy.id, p.sell.id, p.quantity, last.buy.price, last.sell.price) for p in pairs[:-1]
        ]


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
@FAST
@given(orders=books())
def test_grid_residual_completes_every_order(mechanism: str, orders: list[Order]) -> None:
    retail, feed_in = Decimal("0.3000"), Decimal("0.0800")
    result = clear(mechanism, orders)
    residual = grid_residual(orders, result, retail=retail, feed_in=feed_in)
    done: dict[str, Decimal] = defaultdict(Decimal)
    for m in result.trades:
        done[m.buyer] += m.quantity
        done[m.seller] += m.quantity
    for g in residual:
        assert g.quantity > 0
        assert g.price == (retail if g.side == Side.BUY else feed_in)
        done[g.order_id] += g.quantity
    assert all(done[o.id] == o.quantity for o in orders)


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
@FAST
@given(orders=books())
def test_fast_and_per_order_conversion_agree(mechanism: str, orders: list[Order]) -> None:
    # The vectorised conversion is an optimisation of the per-order validating path; forcing the
    # latter must not change any result.
    fast = clear(mechanism, orders)
    original = book._fast_columns
    book._fast_columns = lambda _orders: None  # type: ignore[assignment]
    try:
        slow = clear(mechanism, orders)
    finally:
        book._fast_columns = original
    assert slow == fast
