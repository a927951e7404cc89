"""The assets keep their physical limits, and refuse limits that cannot be."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulation.assets import PV, AssetInvalid, Battery, ElectricVehicle, WaterHeater


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: PV(kwp=0), "kwp"),
        (lambda: Battery(capacity_kwh=-1, power_kw=3), "capacity_kwh"),
        (lambda: Battery(capacity_kwh=10, power_kw=3, efficiency=1.2), "efficiency"),
        (lambda: Battery(capacity_kwh=10, power_kw=3, initial_soc=0.01), "initial_soc"),
        (lambda: WaterHeater(min_c=70, max_c=60), "min_c"),
        (lambda: WaterHeater(initial_c=30), "initial_c"),
        (lambda: ElectricVehicle(arrival_hour=25), "arrival_hour"),
        (
            lambda: ElectricVehicle(
                charger_kw=2, energy_need_kwh=40, arrival_hour=18, departure_hour=20
            ),
            "energy_need_kwh",
        ),
        (lambda: PV(kwp=float("nan")), "kwp"),
    ],
)
def test_impossible_limits_are_refused_with_the_field(build, field) -> None:
    with pytest.raises(AssetInvalid) as caught:
        build()
    assert caught.value.field == field


def test_pv_follows_its_profile_within_its_peak() -> None:
    pv = PV(kwp=5)
    assert pv.power_kw(0.5) == 2.5
    assert pv.power_kw(1.7) == 5  # a profile glitch above 1 p.u. is not more power
    assert pv.power_kw(-0.1) == 0


@given(
    stored=st.floats(0, 10),
    ac_kw=st.floats(-20, 20),
    hours=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_battery_never_leaves_its_limits(stored: float, ac_kw: float, hours: float) -> None:
    battery = Battery(capacity_kwh=10, power_kw=5, efficiency=0.81, min_soc=0.1, initial_soc=0.5)
    stored = max(stored, battery.min_kwh)
    after, actual = battery.step(stored, ac_kw, hours)
    assert battery.min_kwh - 1e-9 <= after <= battery.capacity_kwh + 1e-9
    assert abs(actual) <= battery.power_kw + 1e-9
    assert abs(actual) <= abs(ac_kw) + 1e-9
    assert actual * ac_kw >= 0


def test_battery_round_trip_loses_its_efficiency() -> None:
    battery = Battery(capacity_kwh=10, power_kw=5, efficiency=0.81, min_soc=0.0, initial_soc=0.0)
    stored, _drawn = battery.step(0.0, 4.0, 1.0)
    assert stored == pytest.approx(4 * 0.9)
    _, delivered = battery.step(stored, -5.0, 1.0)
    assert delivered == pytest.approx(-4 * 0.81)


def test_water_heater_tank_model_by_hand() -> None:
    heater = WaterHeater(volume_l=200, power_kw=3, loss_kw_per_k=0, initial_c=50)
    capacity = 200 * 4.186 / 3600  # kWh/K
    temp, used = heater.step(50, True, 0, 0.25)
    assert used == pytest.approx(0.75)
    assert temp == pytest.approx(50 + 0.75 / capacity)
    # 50 litres drawn at 50 °C, refilled at 10 °C: a quarter of the tank mixes down by 40 K.
    temp, used = heater.step(50, False, 50, 0.25)
    assert used == 0
    assert temp == pytest.approx(40)


def test_water_heater_thermostat_cuts_out_at_its_maximum() -> None:
    heater = WaterHeater(initial_c=64.9)
    temp, used = heater.step(64.9, True, 0, 1.0)
    assert temp == pytest.approx(65.0)
    assert used < heater.power_kw


def test_water_heater_feasibility_needs_comfort_all_day() -> None:
    heater = WaterHeater()
    draws = [0.0] * 24
    draws[7] = draws[19] = 40.0  # a shower in the morning and one in the evening
    assert not heater.feasible([False] * 24, draws, 1.0)
    on = [False] * 24
    on[6] = on[17] = on[23] = True  # before each shower, and back up at night
    assert heater.feasible(on, draws, 1.0)


def test_ev_parked_window_wraps_midnight() -> None:
    ev = ElectricVehicle(arrival_hour=18, departure_hour=7)
    assert ev.parked(23)
    assert ev.parked(3)
    assert not ev.parked(12)
    assert ev.parked_hours == 13
