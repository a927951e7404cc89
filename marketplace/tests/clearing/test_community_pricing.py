"""Tests for the quantity-only community pricing rules (MMR, SDR, bill sharing)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.clearing import (
    COMMUNITY_RULES,
    ClearingError,
    CommunitySettlement,
    Side,
    bill_sharing,
    mid_market_rate,
    supply_demand_ratio,
)
from marketplace.tests.clearing.helpers import buy, sell

D = Decimal
R, F = D("0.30"), D("0.10")  # retail and feed-in tariffs used in the worked examples


def amounts(s: CommunitySettlement) -> dict[str, Decimal]:
    return {m.member_id: m.amount for m in s.members}


def test_mmr_net_import() -> None:
    # D = 3 + 1 = 4, G = 2: P_mid = (0.30 + 0.10)/2 = 0.20.
    # Sellers: 2 * 0.20 = 0.40. Grid import 2 kWh * 0.30 = 0.60. Buyers total 1.00,
    # split 3:1 -> 0.75 and 0.25 (buy price 0.25 per kWh).
    s = mid_market_rate(
        [("a", "buy", D(3)), ("b", "buy", D(1)), ("c", "sell", D(2))], retail=R, feed_in=F
    )
    assert amounts(s) == {"a": D("0.75"), "b": D("0.25"), "c": D("0.40")}
    assert (s.grid_import, s.grid_export, s.grid_cost) == (D(2), D(0), D("0.60"))
    by_id = {m.member_id: m for m in s.members}
    # a gets 3 * 2/4 = 1.5 kWh from peers, 1.5 kWh from the grid
    assert (by_id["a"].peer_quantity, by_id["a"].grid_quantity) == (D("1.5"), D("1.5"))
    assert s.balance == 0


def test_mmr_net_export() -> None:
    # D = 1, G = 4: buyers pay 1 * 0.20 = 0.20; export 3 kWh * 0.10 = 0.30;
    # sellers share 0.50 -> 0.125 per kWh.
    s = mid_market_rate([("a", "buy", D(1)), ("c", "sell", D(4))], retail=R, feed_in=F)
    assert amounts(s) == {"a": D("0.20"), "c": D("0.50")}
    assert s.grid_revenue == D("0.30")
    assert s.balance == 0


def test_sdr_net_import() -> None:
    # SDR = 2/4 = 0.5; P_s = 0.30*0.10 / ((0.30-0.10)*0.5 + 0.10) = 0.03 / 0.20 = 0.15
    # P_b = 0.15*0.5 + 0.30*0.5 = 0.225; buyers 4 * 0.225 = 0.90 = 2*0.15 + 2*0.30.
    s = supply_demand_ratio([("a", "buy", D(4)), ("c", "sell", D(2))], retail=R, feed_in=F)
    assert amounts(s) == {"a": D("0.90"), "c": D("0.30")}
    assert s.balance == 0


def test_sdr_surplus_uses_feed_in() -> None:
    # SDR = 3/1 >= 1: both prices = feed-in 0.10; export 2 kWh * 0.10 = 0.20.
    s = supply_demand_ratio([("a", "buy", D(1)), ("c", "sell", D(3))], retail=R, feed_in=F)
    assert amounts(s) == {"a": D("0.10"), "c": D("0.30")}
    assert s.balance == 0


def test_bill_sharing() -> None:
    # Net import of 2 kWh at 0.30 = 0.60 shared by buyers 3:1; sellers get nothing
    # (the rule's documented caveat).
    s = bill_sharing(
        [("a", "buy", D(3)), ("b", "buy", D(1)), ("c", "sell", D(2))], retail=R, feed_in=F
    )
    assert amounts(s) == {"a": D("0.45"), "b": D("0.15"), "c": D(0)}
    assert s.balance == 0


def test_bad_tariffs_and_positions() -> None:
    with pytest.raises(ClearingError, match="must not exceed retail"):
        mid_market_rate([], retail=D("0.1"), feed_in=D("0.2"))
    with pytest.raises(ClearingError, match="unknown side"):
        mid_market_rate([("a", "hold", D(1))], retail=R, feed_in=F)
    with pytest.raises(ClearingError, match="duplicate member"):
        mid_market_rate([("a", "buy", D(1)), ("a", "sell", D(1))], retail=R, feed_in=F)
    with pytest.raises(ClearingError, match="quantity must be > 0"):
        supply_demand_ratio([("a", "buy", D(0))], retail=R, feed_in=F)


positions = st.lists(
    st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 20_000)), max_size=10
).map(lambda xs: [(f"m{i}", side, D(q).scaleb(-3)) for i, (side, q) in enumerate(xs)])
tariffs = st.tuples(st.integers(0, 5000), st.integers(0, 5000)).map(
    lambda t: (D(max(t)).scaleb(-4), D(min(t)).scaleb(-4))
)


@pytest.mark.parametrize("rule", sorted(COMMUNITY_RULES))
@settings(max_examples=60, deadline=None)
@given(members=positions, tariff=tariffs)
def test_community_rules_balance(
    rule: str, members: list[tuple[str, str, Decimal]], tariff: tuple[Decimal, Decimal]
) -> None:
    retail, feed_in = tariff
    s = COMMUNITY_RULES[rule](members, retail=retail, feed_in=feed_in)
    assert s.balance == 0
    demand = sum((q for _, side, q in members if side == "buy"), D(0))
    supply = sum((q for _, side, q in members if side == "sell"), D(0))
    assert s.grid_import == max(demand - supply, D(0))
    assert s.grid_export == max(supply - demand, D(0))
    peer = {side: D(0) for side in Side}
    grid = {side: D(0) for side in Side}
    tolerance = D("1e-8")
    for m in s.members:
        assert m.peer_quantity + m.grid_quantity == m.quantity
        peer[m.side] += m.peer_quantity
        grid[m.side] += m.grid_quantity
        assert m.amount >= 0
        assert m.amount <= retail * m.quantity + tolerance
        if rule != "bill-sharing":
            # bounded by the tariffs: feed-in <= price per kWh <= retail
            assert m.amount >= feed_in * m.quantity - tolerance
    assert peer[Side.BUY] == peer[Side.SELL] == min(demand, supply)
    assert (grid[Side.BUY], grid[Side.SELL]) == (s.grid_import, s.grid_export)


def test_rules_accept_orders_and_ignore_their_prices() -> None:
    as_orders = mid_market_rate([buy("a", "3", "9.99"), sell("c", "2", "0")], retail=R, feed_in=F)
    as_tuples = mid_market_rate([("a", Side.BUY, D(3)), ("c", "sell", D(2))], retail=R, feed_in=F)
    assert as_orders == as_tuples
