"""Property-based tests: the invariants every pooled clearing mechanism must keep."""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal

import numpy as np
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
    discriminatory,
    grid_residual,
    order_trade_reduction,
    pay_as_bid,
    trade_reduction,
    uniform_price,
)
from marketplace.tests.clearing.helpers import (
    STEP,
    books,
    clearing_interval,
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
        low, high = clearing_interval(orders, pairs)
        assert low <= result.price <= high
    else:
        assert result.price is None


@FAST
@given(orders=books())
def test_uniform_price_clears_the_market(orders: list[Order]) -> None:
    # Competitive equilibrium at the price: nobody left with an unfilled remainder wants to trade
    # at it (an excluded buyer bids at most the price, an excluded seller asks at least it).
    result = uniform_price(orders)
    if result.price is None:
        return
    filled: dict[str, Decimal] = defaultdict(Decimal)
    for m in result.trades:
        filled[m.buyer] += m.quantity
        filled[m.seller] += m.quantity
    for o in orders:
        if filled[o.id] < o.quantity:
            if o.side == Side.BUY:
                assert o.price <= result.price, f"{o.id} still wants to buy"
            else:
                assert o.price >= result.price, f"{o.id} still wants to sell"


@FAST
@given(orders=books(max_per_side=6, whole_kwh=True))
def test_uniform_reaches_unit_level_maximum_welfare(orders: list[Order]) -> None:
    assert uniform_price(orders).welfare == unit_max_welfare(orders)


@FAST
@given(orders=books(), k=st.integers(0, 100))
def test_k_double_auction_price_is_a_plus_k_b_minus_a(orders: list[Order], k: int) -> None:
    kd = Decimal(k) / 100
    result = uniform_price(orders, k=kd)
    check_invariants(orders, result)
    pairs = greedy_pairs(orders)
    if pairs:
        low, high = clearing_interval(orders, pairs)
        assert result.price is not None
        assert low <= result.price <= high
        assert abs(result.price - (low + kd * (high - low))) <= Decimal("0.00005")


@FAST
@given(orders=books())
def test_pay_as_bid_trades_at_the_buyers_bid(orders: list[Order]) -> None:
    uniform = uniform_price(orders)
    result = pay_as_bid(orders)
    by_id = {o.id: o for o in orders}
    assert result.volume == uniform.volume
    assert result.welfare == uniform.welfare
    assert result.price is None
    assert result.surplus == 0
    assert all(m.price == m.seller_price == by_id[m.buyer].price for m in result.trades)


@FAST
@given(orders=books(), k=st.integers(0, 100))
def test_discriminatory_prices_each_pair_at_ask_plus_k(orders: list[Order], k: int) -> None:
    kd = Decimal(k) / 100
    result = discriminatory(orders, k=kd)
    pairs = greedy_pairs(orders)
    assert [(m.buyer, m.seller, m.quantity) for m in result.trades] == [
        (p.buy.id, p.sell.id, p.quantity) for p in pairs
    ]
    for m, p in zip(result.trades, pairs, strict=True):
        exact = p.sell.price + kd * (p.buy.price - p.sell.price)
        assert abs(m.price - exact) <= Decimal("0.00005")
        assert m.seller_price == m.price
    assert result.surplus == 0


@FAST
@given(orders=books())
def test_trade_reduction_drops_at_most_the_marginal_step(orders: list[Order]) -> None:
    pairs = greedy_pairs(orders)
    efficient = sum((p.quantity for p in pairs), Decimal(0))
    result = trade_reduction(orders)
    if not pairs:
        assert result.trades == ()
        return
    last = pairs[-1]
    assert result.volume in (efficient, efficient - STEP)
    if result.volume == efficient:
        assert result.price is not None
        assert triples(result) == [
            (p.buy.id, p.sell.id, p.quantity, result.price, result.price) for p in pairs
        ]
    else:
        # Reduction branch: one 0.001 kWh step off the marginal pair, buyers pay the marginal
        # bid, sellers receive the marginal ask.
        kept = [(p.buy.id, p.sell.id, p.quantity) for p in pairs[:-1]]
        if last.quantity > STEP:
            kept.append((last.buy.id, last.sell.id, last.quantity - STEP))
        assert triples(result) == [(b, s, q, last.buy.price, last.sell.price) for b, s, q in kept]


@FAST
@given(orders=books())
def test_order_trade_reduction_excludes_the_marginal_orders(orders: list[Order]) -> None:
    pairs = greedy_pairs(orders)
    result = order_trade_reduction(orders)
    if not pairs:
        assert result.trades == ()
        return
    marginal_buyer, marginal_seller = pairs[-1].buy, pairs[-1].sell
    traded = {m.buyer for m in result.trades} | {m.seller for m in result.trades}
    assert marginal_buyer.id not in traded
    assert marginal_seller.id not in traded
    for m in result.trades:
        assert (m.price, m.seller_price) == (marginal_buyer.price, marginal_seller.price)
    # Everyone strictly ahead of the margin on the short side trades in full.
    ahead_buyers = {p.buy.id: p.buy for p in pairs if p.buy != marginal_buyer}
    ahead_sellers = {p.sell.id: p.sell for p in pairs if p.sell != marginal_seller}
    demand = sum((o.quantity for o in ahead_buyers.values()), Decimal(0))
    supply = sum((o.quantity for o in ahead_sellers.values()), Decimal(0))
    assert result.volume == min(demand, supply)
    assert traded <= ahead_buyers.keys() | ahead_sellers.keys()


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


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=300),
    spread=st.sampled_from([1, 3, 1_000, 10**6]),
)
def test_time_priority_ranks_by_submission_time_then_id(times: list[int], spread: int) -> None:
    """Few ties take the runs-only path, many the full id ranking; both rank (time, id)."""
    rng = random.Random(len(times))
    moments = np.array([float(t * spread % 7919) for t in times])
    ids = [f"o{rng.randrange(10**6)}-{i}" for i in range(len(times))]
    expected = np.empty(len(ids), dtype=np.int64)
    expected[sorted(range(len(ids)), key=lambda j: (moments[j], ids[j]))] = np.arange(len(ids))
    assert (book._priority(moments, ids) == expected).all()
