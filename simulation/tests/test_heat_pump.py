"""The heat pump: its limits, its house model and COP checked by hand, its plan by price."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulation.assets import AssetInvalid, HeatPump
from simulation.strategies import heat_pump_plan, heat_pump_thermostat

HOUSE = HeatPump(power_kw=3.0, heat_loss_kw_per_k=0.2, thermal_capacity_kwh_per_k=8.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"power_kw": 0}, "power_kw"),
        ({"power_kw": 80}, "power_kw"),
        ({"heat_loss_kw_per_k": -0.1}, "heat_loss_kw_per_k"),
        ({"thermal_capacity_kwh_per_k": float("nan")}, "thermal_capacity_kwh_per_k"),
        ({"min_c": 23, "max_c": 21, "initial_c": 22}, "min_c"),
        ({"initial_c": 25}, "initial_c"),
        ({"supply_c": 20}, "supply_c"),
        ({"carnot_share": 1.5}, "carnot_share"),
        ({"max_cop": 0.5}, "max_cop"),
    ],
)
def test_impossible_limits_are_refused_with_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(AssetInvalid) as info:
        HeatPump(**kwargs)
    assert info.value.field == field


def test_cop_is_a_share_of_carnot_and_falls_with_the_cold() -> None:
    # 0.4 x (35 + 273.15) / (35 - 7) = 4.402; at 2 °C / 33 K 3.735; at -7 °C / 42 K 2.935.
    assert HOUSE.cop(7.0) == pytest.approx(4.402, abs=1e-3)
    assert HOUSE.cop(2.0) == pytest.approx(3.735, abs=1e-3)
    assert HOUSE.cop(-7.0) == pytest.approx(2.935, abs=1e-3)
    assert HOUSE.cop(34.0) == 6.0  # capped at max_cop
    assert HeatPump(carnot_share=0.05).cop(-20.0) == 1.0  # never below a resistance heater


def test_an_unheated_house_cools_toward_the_outdoor_air_by_hand() -> None:
    # θ' = θ_out + (θ - θ_out)·exp(-H·h/C) = 0 + 20·exp(-0.2/8) = 19.506 after an hour.
    temp, used = HOUSE.step(20.5, 0.0, 0.0, 1.0)
    assert temp == pytest.approx(20.5 * math.exp(-0.025))
    assert used == 0.0


def test_holding_the_temperature_takes_the_heat_loss_over_the_cop() -> None:
    # At 0 °C out and 20.5 °C in the house loses 0.2 x 20.5 = 4.1 kW; COP 3.522: 1.164 kW.
    power = HOUSE.power_for(20.5, 20.5, 0.0, 0.25)
    assert power == pytest.approx(4.1 / HOUSE.cop(0.0))
    temp, used = HOUSE.step(20.5, power, 0.0, 0.25)
    assert temp == pytest.approx(20.5)
    assert used == pytest.approx(power * 0.25)


@given(
    indoor=st.floats(19.5, 22.5),
    power=st.floats(-5, 10),
    outdoor=st.floats(-25, 30),
    hours=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_the_pump_never_exceeds_its_power_nor_heats_above_max(
    indoor: float, power: float, outdoor: float, hours: float
) -> None:
    temp, used = HOUSE.step(indoor, power, outdoor, hours)
    unheated, _ = HOUSE.step(indoor, 0.0, outdoor, hours)
    assert 0.0 <= used <= HOUSE.power_kw * hours + 1e-9
    # Heating stops at max_c; a warm day may still warm the house past it on its own.
    assert temp <= max(HOUSE.max_c, unheated) + 1e-9
    assert temp >= unheated - 1e-9


COLD_DAY = [-2.0 + 4.0 * math.sin((t - 40) / 96 * 2 * math.pi) for t in range(96)]
# Night power is cheap: 0.15 until 06:00 and after 22:00, 0.40 in the day.
PRICES = [0.15 if t < 24 or t >= 88 else 0.40 for t in range(96)]


def test_the_plan_keeps_the_house_comfortable_and_heats_in_the_cheap_hours() -> None:
    plan = heat_pump_plan(HOUSE, HOUSE.initial_c, COLD_DAY, PRICES, 0.25)
    temps = HOUSE.simulate(plan, COLD_DAY, 0.25)
    assert min(temps) >= HOUSE.min_c - 1e-6
    assert max(temps) <= HOUSE.max_c + 1e-6
    assert temps[-1] >= HOUSE.initial_c - 1e-6  # the house is not left colder than it was
    assert all(0 <= p <= HOUSE.power_kw + 1e-9 for p in plan)
    steady = heat_pump_thermostat(HOUSE, HOUSE.initial_c, COLD_DAY, 0.25)

    def cost(schedule: list[float]) -> float:
        return sum(p * 0.25 * c for p, c in zip(schedule, PRICES, strict=True))

    def cheap_share(schedule: list[float]) -> float:
        return sum(p for p, c in zip(schedule, PRICES, strict=True) if c < 0.2) / sum(schedule)

    assert cost(plan) < cost(steady)
    # The thermostat spreads its heat over the day; the plan pre-heats at night and coasts.
    assert cheap_share(plan) > cheap_share(steady) + 0.2
    assert cheap_share(plan) > 0.6


def test_a_flat_price_plans_about_the_heat_the_house_loses() -> None:
    plan = heat_pump_plan(HOUSE, HOUSE.min_c, [0.0] * 24, [0.3] * 24, 1.0)
    # It stays at the bottom of the band: 0.2 x 19.5 = 3.9 kW of heat an hour at COP 3.522.
    assert sum(plan) == pytest.approx(24 * 3.9 / HOUSE.cop(0.0), rel=1e-3)


def test_a_pump_too_small_for_the_cold_runs_flat_out_where_it_must() -> None:
    small = HeatPump(power_kw=0.5)
    plan = heat_pump_plan(small, small.initial_c, [-20.0] * 8, [0.3] * 8, 1.0)
    assert plan == [0.5] * 8  # the thermostat's answer: all it has
    assert small.simulate(plan, [-20.0] * 8, 1.0)[-1] < small.min_c


def test_a_scenario_refuses_a_heat_pump_it_cannot_build_naming_the_field() -> None:
    from simulation.scenario import ScenarioInvalid, scenario_parse

    base = {"name": "hp", "start": "2026-01-12T00:00:00Z", "hours": 2, "network": "cigre_lv"}
    for heat_pump, field in (
        ({"power_kw": -1}, "households[0].heat_pump.power_kw"),
        ({"min_c": 22, "max_c": 20, "initial_c": 21}, "households[0].heat_pump.min_c"),
        ({"cop": 3}, "households[0].heat_pump.cop"),
        ({"power_kw": "three"}, "households[0].heat_pump.power_kw"),
    ):
        with pytest.raises(ScenarioInvalid) as info:
            scenario_parse({**base, "households": [{"count": 1, "heat_pump": heat_pump}]})
        assert info.value.path == field, info.value
    parsed = scenario_parse({**base, "households": [{"count": 1, "heat_pump": {"power_kw": 4}}]})
    assert parsed.households[0].heat_pump == HeatPump(power_kw=4.0)


def test_winter_outdoor_temperature_profile() -> None:
    import numpy as np

    from simulation.profiles import outdoor_temperature

    days, hours = np.asarray([15.0, 15.0, 196.0]), np.asarray([5.0, 15.0, 15.0])
    january_dawn, january_afternoon, july_afternoon = outdoor_temperature(days, hours)
    # Mid-January: the annual term is -9.5; 05:00 is 10 h before the warmest hour (cos = -0.866).
    assert january_dawn == pytest.approx(9.5 - 9.5 + 4.0 * math.cos(-10 / 24 * 2 * math.pi))
    assert january_afternoon == pytest.approx(4.0)
    assert january_dawn < 0.0 < january_afternoon < july_afternoon
    # Mid-July (day 196, half a year on): 9.5 + 9.5 x cos(2π·0.5027) + 4 = about 23 °C.
    assert july_afternoon == pytest.approx(23.0, abs=0.01)


WINTER = {
    "name": "winter heating",
    "seed": 3,
    "start": "2026-01-12T00:00:00Z",
    "hours": 4,
    "network": "cigre_lv",
    "market": {"market_structure": "pool", "interval_minutes": 60},
    "households": [
        {"count": 2, "label": "heat pump homes", "heat_pump": {"power_kw": 4.0}},
        {"count": 1, "label": "flat", "pv_kwp": 0.0},
    ],
}


@pytest.mark.django_db
def test_heat_pump_homes_post_their_heating_as_flexible_purchases() -> None:
    from marketplace.models import Posting, Side
    from simulation.agents import HouseholdAgent
    from simulation.engine import simulation_run
    from simulation.scenario import scenario_parse

    outcome = simulation_run(scenario=scenario_parse(WINTER))
    assert outcome.errors == []
    flexible = Posting.objects.filter(interval__community=outcome.community, flexible=True)
    assert flexible.filter(side=Side.BUY).exists()
    assert set(flexible.values_list("meter_point__label", flat=True)) <= {"home-0001", "home-0002"}
    for participant in outcome.participants[:2]:
        agent = participant.agent
        assert isinstance(agent, HouseholdAgent)
        pump = agent.spec.heat_pump
        assert pump is not None
        assert pump.min_c - 1e-6 <= agent.indoor_c <= pump.max_c + 1e-6
        assert sum(agent.plan_heat_pump_kw) > 0  # a January night needs heat
