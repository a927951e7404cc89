"""The water-heater game's equilibria (checked by hand) and the pool's cooperative game."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulation.assets import WaterHeater
from simulation.games import (
    WaterHeaterGame,
    coalition_formation,
    coalition_values,
    fictitious_play,
    heater_strategies,
    shapley_gain,
    shapley_values,
    support_enumeration,
    thermostat_schedule,
    two_player_equilibria,
)

# Two peers with 2 kW heaters that must heat for one hour, in hour 0 or hour 1. The microgrid
# exports 2 kW in hour 0 and 1.5 kW in hour 1; feed-in 0.10, retail 0.30 per kWh.
#   both in hour 0: λ = 2/4   → 0.20/kWh → 0.40 each;  both in hour 1: λ = 1.5/4 → 0.225 → 0.45
#   alone in hour 0: λ = 1    → 0.10/kWh → 0.20;       alone in hour 1: λ = 1.5/2 → 0.15 → 0.30
# If the other heats in hour 0 with probability q: hour 0 costs 0.4q + 0.2(1 - q), hour 1 costs
# 0.3q + 0.45(1 - q); indifference gives q = 5/7 and an expected cost of 0.2 + 0.2·5/7.
HAND = WaterHeaterGame(
    base_kw=(-2.0, -1.5),
    power_kw=(2.0, 2.0),
    on=(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])),
    hours=1.0,
    retail=0.30,
    feed_in=0.10,
)


def test_costs_by_hand() -> None:
    assert HAND.costs([0, 0]) == pytest.approx([0.40, 0.40])
    assert HAND.costs([1, 1]) == pytest.approx([0.45, 0.45])
    assert HAND.costs([0, 1]) == pytest.approx([0.20, 0.30])
    assert HAND.costs([1, 0]) == pytest.approx([0.30, 0.20])


def test_two_peer_equilibria_by_hand() -> None:
    found = two_player_equilibria(HAND)
    as_tuples = sorted((tuple(np.round(x, 6)), tuple(np.round(y, 6))) for x, y in found)
    mixed = (round(5 / 7, 6), round(2 / 7, 6))
    assert as_tuples == sorted([((1.0, 0.0), (0.0, 1.0)), ((0.0, 1.0), (1.0, 0.0)), (mixed, mixed)])


def test_fictitious_play_finds_the_mixed_equilibrium() -> None:
    equilibrium = fictitious_play(HAND, iterations=5000, tolerance=1e-6)
    for mix in equilibrium.strategies:
        assert mix[0] == pytest.approx(5 / 7, abs=0.01)
    assert equilibrium.expected_costs[0] == pytest.approx(0.2 + 0.2 * 5 / 7, abs=0.002)
    assert equilibrium.regret < 0.002


def test_expected_costs_match_enumeration() -> None:
    """The convolution over the others' demand equals brute force over all profiles."""
    rng = np.random.default_rng(4)
    on = tuple((rng.random((3, 4)) > 0.5).astype(float) for _ in range(3))
    game = WaterHeaterGame((-3.0, 1.0, -1.0, -5.0), (2.0, 1.5, 3.0), on, 0.5, 0.3, 0.1, 0.01)
    mixed = [rng.dirichlet(np.ones(3)) for _ in range(3)]
    for player in range(3):
        brute = np.zeros(3)
        for profile in itertools.product(range(3), repeat=3):
            weight = np.prod([mixed[j][profile[j]] for j in range(3) if j != player])
            if profile[player] == 0:
                for s in range(3):
                    trial = list(profile)
                    trial[player] = s
                    brute[s] += weight * game.costs(trial)[player]
        assert game.expected_costs(player, mixed) == pytest.approx(brute)


def test_import_weight_separates_hours_that_all_face_retail() -> None:
    """Two 2 kW heaters, two hours of import (1 and 3 kW): WH-1 is indifferent, WH-2 is not."""
    on = (np.array([[1.0, 0.0], [0.0, 1.0]]),) * 2
    flat = WaterHeaterGame((1.0, 3.0), (2.0, 2.0), on, 1.0, 0.30, 0.10)
    assert flat.costs([0, 0]) == flat.costs([1, 1]) == flat.costs([0, 1])
    weighted = WaterHeaterGame((1.0, 3.0), (2.0, 2.0), on, 1.0, 0.30, 0.10, import_weight=0.01)
    # Both in hour 0: G = 5 -> 2 x (0.30 + 0.05) = 0.70 each. Apart: hour 0 G = 3 -> 0.66,
    # hour 1 G = 5 -> 0.70. Both in hour 1: G = 7 -> 0.74.
    assert weighted.costs([0, 0]) == pytest.approx([0.70, 0.70])
    assert weighted.costs([0, 1]) == pytest.approx([0.66, 0.70])
    assert weighted.costs([1, 1]) == pytest.approx([0.74, 0.74])
    # Alone, each heater now prefers the hour of the smaller import.
    assert weighted.costs([0, 1])[0] < weighted.costs([1, 1])[0]


def test_support_enumeration_matching_pennies() -> None:
    a = np.array([[1.0, -1.0], [-1.0, 1.0]])
    found = support_enumeration(a, -a)
    assert len(found) == 1
    assert found[0][0] == pytest.approx([0.5, 0.5])
    assert found[0][1] == pytest.approx([0.5, 0.5])


def _draws() -> list[float]:
    draws = [0.0] * 24
    draws[7] = draws[19] = 40.0
    return draws


def test_heater_strategies_are_feasible_and_the_thermostat_is_the_fallback() -> None:
    heater = WaterHeater()
    strategies = heater_strategies(heater, _draws(), 1.0, blocks=2, stride=1)
    assert len(strategies) > 3
    for row in strategies:
        assert heater.feasible([bool(v) for v in row], _draws(), 1.0)
    impossible = [200.0] * 24  # more hot water than any schedule can heat
    only = heater_strategies(heater, impossible, 1.0)
    assert only.shape[0] == 1
    assert [bool(v) for v in only[0]] == thermostat_schedule(heater, impossible, 1.0)


def test_heaters_playing_the_game_exchange_less_with_the_grid() -> None:
    """Three heaters facing a midday PV surplus: the game moves heating into it."""
    heater = WaterHeater()
    base = [0.8] * 24
    for hour in range(10, 15):
        base[hour] = -4.0
    strategies = heater_strategies(heater, _draws(), 1.0, blocks=2, stride=1)
    game = WaterHeaterGame(tuple(base), (3.0,) * 3, (strategies,) * 3, 1.0, 0.30, 0.08)
    equilibrium = fictitious_play(game, iterations=300)
    thermostat = np.asarray(thermostat_schedule(heater, _draws(), 1.0), dtype=float)
    without = np.asarray(base) + 3 * 3.0 * thermostat
    with_game = game.exchange(equilibrium.sample(random.Random(1)))
    assert np.abs(with_game).sum() < np.abs(without).sum()
    assert equilibrium.regret < 0.05


def test_coalition_values_and_shapley_by_hand() -> None:
    # A sells 2 kW, B buys 1 kW, C buys 1 kW for one hour; retail 0.3, feed-in 0.1.
    net = np.array([[-2.0], [1.0], [1.0]])
    values = coalition_values(net, 0.3, 0.1, 1.0)
    # Each kWh netted saves retail - feed-in = 0.2: v(AB) = v(AC) = 0.2, v(BC) = 0, v(ABC) = 0.4.
    assert values[0b011] == pytest.approx(0.2)
    assert values[0b101] == pytest.approx(0.2)
    assert values[0b110] == 0
    assert values[0b111] == pytest.approx(0.4)
    # A's marginal contribution is 0, 0.2, 0.2, 0.4, 0.4 and 0 over the six orders... by hand:
    # first (2 orders) 0, second (2) 0.2, last (2) 0.4 -> 1.2 / 6 = 0.2; B and C share the rest.
    phi = shapley_values(values, 3)
    assert phi == pytest.approx([0.2, 0.1, 0.1])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.floats(-5, 5), min_size=3, max_size=3), min_size=2, max_size=6))
def test_shapley_is_efficient_and_individually_rational(rows: list[list[float]]) -> None:
    net = np.asarray(rows)
    values = coalition_values(net, 0.32, 0.08, 0.25)
    phi = shapley_values(values, len(rows))
    assert sum(phi) == pytest.approx(values[-1], abs=1e-9)
    assert all(p >= -1e-9 for p in phi)  # the game is superadditive: no one loses by pooling


def test_coalition_formation_sends_away_who_pays_more_in_fees_than_it_gains() -> None:
    # A sells what B buys; C sells a little beside A. C's Shapley value is 0.2 / 6 (it only
    # adds to {B}), but the pool fills it pro rata, so it pays a fee on 0.5 · 3 / 3.5 kWh a step.
    net = np.array([[-3.0, -3.0], [3.0, 3.0], [-0.5, -0.5]])
    gain = shapley_gain(net, 0.30, 0.10, 1.0, fee_per_kwh=0.05)
    community, moves = coalition_formation(3, gain)
    assert community == frozenset({0, 1})
    assert [(m.member, m.joined) for m in moves] == [(2, False)]
    free = shapley_gain(net, 0.30, 0.10, 1.0, fee_per_kwh=0.0)
    assert coalition_formation(3, free)[0] == frozenset({0, 1, 2})
