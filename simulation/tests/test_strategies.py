"""Each strategy's behaviour on tiny cases."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulation.assets import Battery, ElectricVehicle
from simulation.strategies import (
    BUY,
    SELL,
    RothErev,
    Tariffs,
    Truthful,
    ZeroIntelligenceConstrained,
    battery_plan,
    ev_plan,
    gini,
    sdr_prices,
    strategy_for,
)

TARIFFS = Tariffs(retail=0.32, feed_in=0.08, floor=0.0, cap=0.5)


def test_truthful_posts_its_value_and_cost() -> None:
    rng = random.Random(1)
    assert Truthful().limit_price(BUY, TARIFFS, rng) == 0.32
    assert Truthful().limit_price(SELL, TARIFFS, rng) == 0.08


@given(seed=st.integers(0, 10_000), side=st.sampled_from([BUY, SELL]))
def test_zero_intelligence_never_posts_to_lose_against_the_grid(seed: int, side: str) -> None:
    price = ZeroIntelligenceConstrained().limit_price(side, TARIFFS, random.Random(seed))
    assert TARIFFS.feed_in <= price <= TARIFFS.retail


def test_zero_intelligence_draws_spread_over_the_range() -> None:
    rng = random.Random(7)
    prices = [ZeroIntelligenceConstrained().limit_price(BUY, TARIFFS, rng) for _ in range(500)]
    assert min(prices) < 0.12
    assert max(prices) > 0.28


def test_roth_erev_learns_the_markup_that_pays() -> None:
    """A seller whose offers fill only at markups up to 0.4 ends up asking around there."""
    learner = RothErev(actions=6, recency=0.05, experimentation=0.1)
    rng = random.Random(3)
    for _ in range(600):
        limit = learner.limit_price(SELL, TARIFFS, rng)
        markup = (limit - TARIFFS.feed_in) / TARIFFS.spread
        filled = 1.0 if markup <= 0.4 + 1e-9 else 0.0
        learner.observe(SELL, TARIFFS, 1.0, filled, limit)
    probabilities = learner.probabilities(SELL)
    assert max(range(6), key=probabilities.__getitem__) == 2  # markup 0.4: the best that fills
    assert probabilities[5] < 0.1


def test_roth_erev_update_by_hand() -> None:
    learner = RothErev(actions=3, recency=0.1, experimentation=0.2, initial_propensity=1.0)
    learner.reinforce(BUY, 0, 0.5)
    # chosen: 0.9 * 1 + 0.5 * 0.8; others: 0.9 * 1 + 1 * 0.2 / 2
    assert learner.propensities[BUY] == pytest.approx([1.3, 1.0, 1.0])


def test_strategy_names() -> None:
    assert isinstance(strategy_for("truthful"), Truthful)
    with pytest.raises(ValueError, match="unknown strategy"):
        strategy_for("oracle")


def test_battery_buys_cheap_and_sells_dear() -> None:
    battery = Battery(capacity_kwh=10, power_kw=5, efficiency=0.9, min_soc=0.0, initial_soc=0.0)
    buy = [0.10, 0.10, 0.40, 0.40]
    sell = [0.08, 0.08, 0.30, 0.30]
    plan = battery_plan(battery, 0.0, [0.5, 0.5, 0.5, 0.5], buy, sell, 1.0)
    assert plan[0] > 0
    assert plan[1] > 0
    assert plan[2] < 0
    assert plan[3] < 0


def test_battery_does_not_cycle_when_it_does_not_pay() -> None:
    battery = Battery(capacity_kwh=10, power_kw=5, efficiency=0.8, min_soc=0.0, initial_soc=0.0)
    # 0.20 → 0.22 is less than the round-trip loss of 20 %: leave it.
    plan = battery_plan(battery, 0.0, [1, 1], [0.20, 0.22], [0.08, 0.08], 1.0)
    assert plan == [0.0, 0.0]


def test_battery_keeps_pv_surplus_for_the_evening() -> None:
    battery = Battery(capacity_kwh=10, power_kw=5, efficiency=0.9, min_soc=0.0, initial_soc=0.0)
    plan = battery_plan(battery, 0.0, [-3, -3, 2, 2], [0.32] * 4, [0.08] * 4, 1.0)
    assert plan[2] == pytest.approx(-2)
    assert plan[3] == pytest.approx(-2)
    # It stores just what the evening needs (4 kWh through a 90 % round trip); the rest of
    # the surplus is worth more exported now than left unused in the battery.
    assert plan[0] + plan[1] == pytest.approx(4 / 0.9, abs=1e-4)


def test_ev_charges_its_need_in_the_cheapest_parked_hours() -> None:
    ev = ElectricVehicle(
        charger_kw=4, energy_need_kwh=7.36, arrival_hour=20, departure_hour=2, efficiency=0.92
    )
    hours = [18, 19, 20, 21, 22, 23, 0, 1]
    price = [0.0, 0.0, 0.3, 0.2, 0.1, 0.3, 0.1, 0.3]
    plan = ev_plan(ev, hours, price, 1.0)
    assert plan[:2] == [0.0, 0.0]  # away, however cheap
    assert plan[4] == 4
    assert plan[6] == 4
    assert sum(plan) == pytest.approx(8)


def test_gini() -> None:
    assert gini([1, 1, 1, 1]) == 0
    assert gini([0, 0, 0, 4]) == pytest.approx(0.75)
    assert gini([-2, 0, 0, 4]) == pytest.approx(0.75)  # a loss counts as no saving


FEE = Tariffs(retail=0.32, feed_in=0.08, floor=0.0, cap=0.5, fee=0.01)


def test_the_fee_narrows_every_strategy_to_the_prices_that_beat_the_grid() -> None:
    """A peer kWh pays the fee on each side and the grid's energy none: a seller at feed-in
    would get less than the grid pays, a buyer at retail would pay more than the grid asks."""
    rng = random.Random(4)
    assert (FEE.seller_cost, FEE.buyer_value) == (pytest.approx(0.09), pytest.approx(0.31))
    assert Truthful().limit_price(SELL, FEE, rng) == pytest.approx(0.09)
    assert Truthful().limit_price(BUY, FEE, rng) == pytest.approx(0.31)
    for _ in range(300):
        price = ZeroIntelligenceConstrained().limit_price(rng.choice([BUY, SELL]), FEE, rng)
        assert FEE.seller_cost <= price <= FEE.buyer_value
    learner = RothErev(actions=3)
    asks = {round(learner.limit_price(SELL, FEE, rng), 6) for _ in range(60)}
    assert asks == {0.09, 0.2, 0.31}


def test_a_fee_that_leaves_no_gain_posts_each_side_at_its_own_limit() -> None:
    steep = Tariffs(retail=0.20, feed_in=0.10, cap=0.5, fee=0.06)
    assert not steep.tradeable
    assert steep.spread == 0.0
    rng = random.Random(1)
    # The bid (0.14) is below the ask (0.16): no peer trade can happen, as none would pay.
    assert ZeroIntelligenceConstrained().limit_price(BUY, steep, rng) == pytest.approx(0.14)
    assert ZeroIntelligenceConstrained().limit_price(SELL, steep, rng) == pytest.approx(0.16)


def test_sdr_prices_by_hand() -> None:
    """Liu et al.'s split: at SDR 0.5 half the demand is met locally at p, the rest at retail."""
    tariffs = Tariffs(retail=0.30, feed_in=0.10, fee=0.01)
    p = 0.10 * 0.30 / (0.20 * 0.5 + 0.10)  # 0.15
    buy, sell = sdr_prices(5.0, 10.0, tariffs)
    assert buy == pytest.approx(0.5 * (p + 0.01) + 0.5 * 0.30)
    assert sell == pytest.approx(p - 0.01)  # every seller finds a buyer
    # A surplus: every buyer is served locally at feed-in (plus the fee); a seller gets feed-in.
    assert sdr_prices(20.0, 10.0, tariffs) == (pytest.approx(0.11), pytest.approx(0.10))
    # No local supply at all: the grid's prices.
    assert sdr_prices(0.0, 10.0, tariffs) == (pytest.approx(0.30), pytest.approx(0.30 - 0.01))
