"""A household's physical assets (PV, battery, water heater, EV, heat pump) with validated limits
(pure).

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
KELVIN = 273.15


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


@dataclass(frozen=True, slots=True)
class HeatPump:
    """An air-source heat pump heating a house, the house as one thermal node (1R1C).

    The house loses ``heat_loss_kw_per_k`` (H, kW/K: its fabric and ventilation) to the outdoor
    air and stores ``thermal_capacity_kwh_per_k`` (C, kWh/K). With heat Q = COP · P from an
    electrical power P held over a step of Δt hours, the indoor temperature moves exactly
    (the linear ODE C·dθ/dt = Q - H·(θ - θ_out) solved over the step, stable at any Δt):

        θ' = θ_eq + (θ - θ_eq) · exp(-H·Δt / C),   θ_eq = θ_out + Q / H

    COP is a fixed share of the Carnot COP at the heating supply temperature (the usual
    second-law model; ``carnot_share`` 0.4 gives about 2.9 at -7 °C, 3.7 at 2 °C and 4.4 at
    7 °C outdoors for 35 °C floor heating, in the range of EN 14511 ratings), never below 1
    (the pump then heats like a resistance) nor above ``max_cop``. The inverter modulates P
    anywhere in ``[0, power_kw]``. Comfort is ``min_c ≤ θ ≤ max_c``.
    """

    power_kw: float = 3.0
    heat_loss_kw_per_k: float = 0.2  # a 1990s detached house: 8 kW of heat at -12 °C for 28 K
    thermal_capacity_kwh_per_k: float = 8.0  # time constant C/H of 40 hours
    min_c: float = 19.5
    max_c: float = 22.5
    initial_c: float = 20.5
    supply_c: float = 35.0
    carnot_share: float = 0.4
    max_cop: float = 6.0

    def __post_init__(self) -> None:
        _positive("power_kw", self.power_kw)
        if self.power_kw > 50:
            raise AssetInvalid("power_kw", "must be at most 50 kW for a household")
        _positive("heat_loss_kw_per_k", self.heat_loss_kw_per_k)
        _positive("thermal_capacity_kwh_per_k", self.thermal_capacity_kwh_per_k)
        _fraction("carnot_share", self.carnot_share, open_low=True)
        if not (math.isfinite(self.max_cop) and self.max_cop >= 1):
            raise AssetInvalid("max_cop", f"must be 1 or more, not {self.max_cop!r}")
        if not 5.0 <= self.min_c < self.max_c <= 30.0:
            raise AssetInvalid("min_c", "need 5 °C ≤ min_c < max_c ≤ 30 °C")
        if not self.max_c < self.supply_c <= 75.0:
            raise AssetInvalid("supply_c", "must be above max_c and at most 75 °C")
        if not self.min_c <= self.initial_c <= self.max_c:
            raise AssetInvalid("initial_c", "must be within min_c and max_c")

    def cop(self, outdoor_c: float) -> float:
        """Heat delivered per unit of electricity at this outdoor temperature."""
        lift = self.supply_c - outdoor_c
        if lift <= 0:
            return self.max_cop
        carnot = (self.supply_c + KELVIN) / lift
        return min(max(self.carnot_share * carnot, 1.0), self.max_cop)

    def _decay(self, hours: float) -> float:
        return math.exp(-self.heat_loss_kw_per_k * hours / self.thermal_capacity_kwh_per_k)

    def step(
        self, indoor_c: float, power_kw: float, outdoor_c: float, hours: float
    ) -> tuple[float, float]:
        """The house after one step: (new indoor temperature, electric energy used in kWh).

        ``power_kw`` is clipped to ``[0, power_kw]`` and to what keeps the house at or below
        ``max_c`` (the pump's controller stops there)."""
        room = self.power_for(indoor_c, self.max_c, outdoor_c, hours)
        power = min(max(power_kw, 0.0), self.power_kw, room)
        heat_kw = self.cop(outdoor_c) * power
        decay = self._decay(hours)
        equilibrium = outdoor_c + heat_kw / self.heat_loss_kw_per_k
        return equilibrium + (indoor_c - equilibrium) * decay, power * hours

    def power_for(self, indoor_c: float, target_c: float, outdoor_c: float, hours: float) -> float:
        """The constant electrical power that brings the house from ``indoor_c`` to ``target_c``
        over the step (0 if it gets there unheated; not clipped to ``power_kw``)."""
        decay = self._decay(hours)
        equilibrium = (target_c - indoor_c * decay) / (1.0 - decay)
        heat_kw = (equilibrium - outdoor_c) * self.heat_loss_kw_per_k
        return max(heat_kw, 0.0) / self.cop(outdoor_c)

    def simulate(self, power_kw: list[float], outdoor_c: list[float], hours: float) -> list[float]:
        """Indoor temperature after each step of a power schedule (from ``initial_c``)."""
        temps: list[float] = []
        temp = self.initial_c
        for power, outdoor in zip(power_kw, outdoor_c, strict=True):
            temp, _ = self.step(temp, power, outdoor, hours)
            temps.append(temp)
        return temps
