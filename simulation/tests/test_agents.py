"""An agent's price expectations: the day's prior from supply and demand, then what it saw."""

from __future__ import annotations

import random

import numpy as np
import pytest

from simulation.agents import DayInputs, HouseholdAgent, PriceMemory, expected_prices
from simulation.engine import market_prices
from simulation.scenario import household_spec
from simulation.selectors import IntervalSummary
from simulation.strategies import Tariffs, sdr_prices

TARIFFS = Tariffs(retail=0.32, feed_in=0.08, cap=0.5, fee=0.005)


def test_a_slot_not_seen_yet_is_forecast_from_the_prior_then_from_the_market() -> None:
    memory = PriceMemory(slots=4, weight=0.5)
    assert memory.forecast(0, 2, TARIFFS) == ([0.32, 0.32], [0.08, 0.08])
    memory.expected = ([0.20, 0.30], [0.15, 0.25])
    assert memory.forecast(0, 2, TARIFFS) == ([0.20, 0.30], [0.15, 0.25])
    memory.observe(1, 0.10, 0.09)
    memory.observe(1, 0.20, None)  # nobody sold: the sell side keeps what it knew
    buy, sell = memory.forecast(0, 2, TARIFFS)
    assert buy == pytest.approx([0.20, 0.15])
    assert sell == pytest.approx([0.15, 0.09])


def test_the_prior_counts_pv_beyond_a_homes_own_use_as_supply() -> None:
    """Two homes: one with 3 kW of PV on 1 kW of demand, one with 2 kW of demand, and a plant."""
    agents = []
    for load, pv in ((1.0, 3.0), (2.0, 0.0)):
        agent = HouseholdAgent(
            key=f"h{load}", spec=household_spec({}), strategy=None,  # type: ignore[arg-type]
            rng=random.Random(1), hours=1.0, memory=PriceMemory(1),
        )  # fmt: skip
        agent.day = DayInputs(
            load_kw=np.asarray([load]),
            pv_kw=np.asarray([pv]),
            draws_l=np.zeros(1),
            local_hours=np.zeros(1),
        )
        agents.append(agent)
    buy, sell = expected_prices(agents, np.asarray([0.5]), TARIFFS)
    # Supply 2 kW (the PV home's surplus) + 0.5 kW (the plant) against 2 kW of demand.
    assert (buy[0], sell[0]) == sdr_prices(2.5, 2.0, TARIFFS)


def test_market_prices_by_hand() -> None:
    """Buyers asked 4 kWh, 1 came from peers at 0.20; sellers offered 2, 1 sold to peers."""
    from simulation.agents import Order

    orders = {1: Order("buy", 3.0, 0.3), 2: Order("buy", 1.0, 0.3), 3: Order("sell", 2.0, 0.1)}
    summary = IntervalSummary(1.0, 3.0, 1.0, 0.0, None, 0.20, 0.20)
    paid, got = market_prices(summary, orders, TARIFFS)
    assert paid == pytest.approx(0.25 * (0.20 + 0.005) + 0.75 * 0.32)
    assert got == pytest.approx(0.5 * (0.20 - 0.005) + 0.5 * 0.08)
    # No seller posted: nothing is known of what selling would have got.
    assert market_prices(summary, {1: orders[1]}, TARIFFS)[1] is None
