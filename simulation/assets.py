"""A household's physical assets (PV, battery, water heater, EV) with validated limits (pure).

Powers are kW, energies kWh, temperatures °C, times hours. Each asset is a frozen dataclass that
refuses impossible limits when built (``AssetInvalid`` names the field), and whose step
functions never leave those limits, so an agent cannot schedule what the hardware cannot do.
Floats throughout: this is a numerical core; the market's Decimals start at the posting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Specific heat of water times its density: kWh per litre and kelvin (4.186 kJ/(kg K), 1 kg/l).
WATER_KWH_PER_L_K = 4.186 / 3600.0


class AssetInvalid(ValueError):  # noqa: N818 - reads like grid.networks.NetworkInvalid
    """An asset limit that cannot be: ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def _positive(field: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise AssetInvalid(field, f"must be a positive number, not {value!r}")


def _non_negative(field: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise AssetInvalid(field, f"must be 0 or more, not {value!r}")


def _fraction(field: str, value: float, *, open_low: bool = False) -> None:
    low_ok = value > 0 if open_low else value >= 0
    if not (math.isfinite(value) and low_ok and value <= 1):
        raise AssetInvalid(field, f"must be within {'(0' if open_low else '[0'}, 1], not {value!r}")


@dataclass(frozen=True, slots=True)
class PV:
    """Rooftop PV: output is the profile's per-unit value times the peak power."""

    kwp: float

    def __post_init__(self) -> None:
        _positive("kwp", self.kwp)

    def power_kw(self, per_unit: float) -> float:
        return self.kwp * min(max(per_unit, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class Battery:
    """A home battery: usable capacity, inverter power and round-trip efficiency.

    The round-trip loss is split evenly between charging and discharging (each leg loses
    ``sqrt(efficiency)``); the state of charge stays within ``[min_soc, 1] x capacity``.
    """

    capacity_kwh: float
    power_kw: float
    efficiency: float = 0.9
    min_soc: float = 0.05
    initial_soc: float = 0.5

    def __post_init__(self) -> None:
        _positive("capacity_kwh", self.capacity_kwh)
        _positive("power_kw", self.power_kw)
        _fraction("efficiency", self.efficiency, open_low=True)
        _fraction("min_soc", self.min_soc)
        _fraction("initial_soc", self.initial_soc)
        if self.initial_soc < self.min_soc:
            raise AssetInvalid("initial_soc", "must not be below min_soc")
        if self.min_soc >= 1:
            raise AssetInvalid("min_soc", "must leave some usable capacity (below 1)")

    @property
    def leg_efficiency(self) -> float:
        return math.sqrt(self.efficiency)

    @property
    def min_kwh(self) -> float:
        return self.min_soc * self.capacity_kwh

    def step(self, stored_kwh: float, ac_kw: float, hours: float) -> tuple[float, float]:
        """Charge (``ac_kw`` > 0) or discharge (< 0) for ``hours``, within every limit.

        Returns the new stored energy and the AC power actually drawn (+) or delivered (-),
        which is ``ac_kw`` clipped to the inverter's power and to what the store can take or give.
        """
        ac_kw = min(max(ac_kw, -self.power_kw), self.power_kw)
        if ac_kw >= 0:
            room = self.capacity_kwh - stored_kwh
            ac_kw = min(ac_kw, max(room, 0.0) / (self.leg_efficiency * hours))
            return stored_kwh + ac_kw * hours * self.leg_efficiency, ac_kw
        available = max(stored_kwh - self.min_kwh, 0.0)
        ac_kw = max(ac_kw, -available * self.leg_efficiency / hours)
        return stored_kwh + ac_kw * hours / self.leg_efficiency, ac_kw


@dataclass(frozen=True, slots=True)
class WaterHeater:
    """An electric water heater with a one-node (fully mixed) tank, as Elecbay's flexible load.

    Per step of ``hours`` (explicit Euler; steps are at most an hour, far below the tank's time
    constant of days):

        θ' = θ + (P·Δt - UA·(θ - θ_amb)·Δt) / C,   C = V · c_w     (heating, standing loss)
        θ'' = θ' - (V_draw / V) · (θ' - θ_in)                       (hot water drawn, refilled)

    with ``C`` the tank's heat capacity in kWh/K. Comfort is ``min_c ≤ θ ≤ max_c``; the element's
    thermostat cuts out at ``max_c``, so heating never pushes the tank above it.
    """

    volume_l: float = 200.0
    power_kw: float = 3.0
    min_c: float = 45.0
    max_c: float = 65.0
    inlet_c: float = 10.0
    ambient_c: float = 20.0
    loss_kw_per_k: float = 0.0025  # UA: about 1.2 kWh a day of standing loss at 55 °C
    initial_c: float = 55.0

    def __post_init__(self) -> None:
        _positive("volume_l", self.volume_l)
        _positive("power_kw", self.power_kw)
        _non_negative("loss_kw_per_k", self.loss_kw_per_k)
        if not self.inlet_c < self.min_c < self.max_c <= 95.0:
            raise AssetInvalid("min_c", "need inlet_c < min_c < max_c ≤ 95 °C")
        if not self.min_c <= self.initial_c <= self.max_c:
            raise AssetInvalid("initial_c", "must be within min_c and max_c")

    @property
    def heat_capacity_kwh_per_k(self) -> float:
        return self.volume_l * WATER_KWH_PER_L_K

    def step(self, temp_c: float, on: bool, draw_l: float, hours: float) -> tuple[float, float]:
        """The tank after one step: (new temperature, electric energy used in kWh)."""
        capacity = self.heat_capacity_kwh_per_k
        loss_kwh = self.loss_kw_per_k * (temp_c - self.ambient_c) * hours
        heat_kwh = self.power_kw * hours if on else 0.0
        # The thermostat cuts out at max_c: only the energy that fits is drawn.
        heat_kwh = min(heat_kwh, max((self.max_c - temp_c) * capacity + loss_kwh, 0.0))
        heated = temp_c + (heat_kwh - loss_kwh) / capacity
        drawn = min(max(draw_l, 0.0), self.volume_l)
        return heated - drawn / self.volume_l * (heated - self.inlet_c), heat_kwh

    def simulate(self, on: list[bool], draws_l: list[float], hours: float) -> list[float]:
        """Tank temperature after each step of an on/off schedule (starting at ``initial_c``)."""
        temps: list[float] = []
        temp = self.initial_c
        for switch, draw in zip(on, draws_l, strict=True):
            temp, _ = self.step(temp, switch, draw, hours)
            temps.append(temp)
        return temps

    def feasible(self, on: list[bool], draws_l: list[float], hours: float) -> bool:
        """Whether the schedule keeps the water at or above ``min_c`` after every step."""
        return all(t >= self.min_c - 1e-9 for t in self.simulate(on, draws_l, hours))


@dataclass(frozen=True, slots=True)
class ElectricVehicle:
    """An EV at home from ``arrival_hour`` to ``departure_hour`` (local, may wrap midnight)."""

    charger_kw: float = 11.0
    energy_need_kwh: float = 12.0
    arrival_hour: float = 18.0
    departure_hour: float = 7.0
    efficiency: float = 0.92

    def __post_init__(self) -> None:
        _positive("charger_kw", self.charger_kw)
        _non_negative("energy_need_kwh", self.energy_need_kwh)
        _fraction("efficiency", self.efficiency, open_low=True)
        for name in ("arrival_hour", "departure_hour"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value < 24):
                raise AssetInvalid(name, f"must be an hour of the day in [0, 24), not {value!r}")
        if self.arrival_hour == self.departure_hour:
            raise AssetInvalid("departure_hour", "must differ from arrival_hour")
        if self.energy_need_kwh > self.charger_kw * self.efficiency * self.parked_hours:
            raise AssetInvalid(
                "energy_need_kwh", "cannot be charged at charger_kw while the car is parked"
            )

    @property
    def parked_hours(self) -> float:
        return (self.departure_hour - self.arrival_hour) % 24

    def parked(self, hour_of_day: float) -> bool:
        return (hour_of_day - self.arrival_hour) % 24 < self.parked_hours
