"""Prosumer agents: what a simulated household or plant does in each interval (pure, no ORM).

A household plans each day ahead from its profiles (perfect foresight of its own demand and PV,
as in Elecbay's day-ahead game) and from the prices it has seen: the battery by price
(``strategies.battery_plan``), the EV in its cheapest parked hours, the heat pump by price within
its comfort band (``strategies.heat_pump_plan``), and the water heater by its
thermostat or by Elecbay's game, which the community-wide ``plan_water_heaters`` solves for all
heaters at once. In each interval the plan gives its net power; it posts the net energy as one
offer or request priced by its strategy, and learns from what was filled.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

import numpy as np

from simulation.assets import WaterHeater
from simulation.games import (
    WaterHeaterGame,
    fictitious_play,
    heater_strategies,
    thermostat_schedule,
)
from simulation.scenario import HouseholdSpec, PlantSpec
from simulation.strategies import (
    BUY,
    SELL,
    Strategy,
    Tariffs,
    Truthful,
    battery_plan,
    ev_plan,
    heat_pump_plan,
    sdr_prices,
)

MIN_ORDER_KWH = 0.001
# κ of the water-heater game's WH-2: a kWh heated while the microgrid imports 10 kW counts
# 0.05 dearer, so heaters that all face retail spread out instead of all starting at once.
HEATER_IMPORT_WEIGHT = 0.005


@dataclass(frozen=True, slots=True)
class Order:
    """What an agent posts for one interval."""

    side: str
    quantity_kwh: float
    limit_price: float
    flexible: bool = False


@dataclass(frozen=True, slots=True)
class DayInputs:
    """One day's profiles for a household: per interval, kW and litres."""

    load_kw: np.ndarray
    pv_kw: np.ndarray
    draws_l: np.ndarray
    local_hours: np.ndarray
    outdoor_c: np.ndarray | None = None  # for a heat pump; None: no heating today


@dataclass
class PriceMemory:
    """What the agent expects a kWh to cost to buy and to earn when sold, per interval of the day.

    Each is a running mean of what the market published for that slot of the day: all told, what
    its buyers paid per kWh (peer price plus fee on the peer part, retail on what the grid
    supplied) and what its sellers got (peer price less fee, feed-in on what the grid took).
    A slot not seen yet is forecast from ``expected`` (the day's prices by the community's
    supply and demand, ``strategies.sdr_prices``), or at retail and feed-in without one.
    """

    slots: int
    weight: float = 0.3
    seen: dict[int, float] = field(default_factory=dict)  # buying
    seen_sell: dict[int, float] = field(default_factory=dict)
    expected: tuple[list[float], list[float]] | None = None  # the day's (buy, sell) per step

    def observe(self, slot: int, buy_price: float | None, sell_price: float | None) -> None:
        """What buyers paid and sellers got per kWh; ``None`` for a side no one was on."""
        for seen, value in ((self.seen, buy_price), (self.seen_sell, sell_price)):
            if value is None:
                continue
            old = seen.get(slot)
            seen[slot] = value if old is None else (1 - self.weight) * old + self.weight * value

    def forecast(
        self, first_slot: int, steps: int, tariffs: Tariffs
    ) -> tuple[list[float], list[float]]:
        buy, sell = [], []
        for t in range(steps):
            slot = (first_slot + t) % self.slots
            if self.expected is not None and t < len(self.expected[0]):
                prior_buy, prior_sell = self.expected[0][t], self.expected[1][t]
            else:
                prior_buy, prior_sell = tariffs.retail, tariffs.feed_in
            bought = self.seen.get(slot, prior_buy)
            sold = self.seen_sell.get(slot, prior_sell)
            buy.append(min(max(bought, tariffs.feed_in), tariffs.retail))
            sell.append(min(max(sold, tariffs.feed_in), tariffs.retail))
        return buy, sell


@dataclass
class HouseholdAgent:
    """One simulated household: its assets' state, today's plan and its pricing strategy."""

    key: str
    spec: HouseholdSpec
    strategy: Strategy
    rng: random.Random
    hours: float
    memory: PriceMemory
    stored_kwh: float = 0.0
    tank_c: float = 0.0
    indoor_c: float = 0.0
    plan_net_kw: list[float] = field(default_factory=list)
    plan_battery_kw: list[float] = field(default_factory=list)
    plan_heater_on: list[bool] = field(default_factory=list)
    plan_ev_kw: list[float] = field(default_factory=list)
    plan_heat_pump_kw: list[float] = field(default_factory=list)
    day: DayInputs | None = None
    step: int = 0

    def __post_init__(self) -> None:
        if self.spec.battery is not None:
            self.stored_kwh = self.spec.battery.initial_soc * self.spec.battery.capacity_kwh
        if self.spec.water_heater is not None:
            self.tank_c = self.spec.water_heater.initial_c
        if self.spec.heat_pump is not None:
            self.indoor_c = self.spec.heat_pump.initial_c

    @property
    def base_kw(self) -> np.ndarray:
        """Today's demand minus PV, before any flexible asset."""
        assert self.day is not None
        return self.day.load_kw - self.day.pv_kw

    def heater_thermostat(self) -> list[bool]:
        assert self.day is not None
        return thermostat_schedule(self.heater_today(), self.day.draws_l.tolist(), self.hours)

    def heater_today(self) -> WaterHeater:
        """The heater as it starts today: the tank is as warm as it was when yesterday ended."""
        heater = self.spec.water_heater
        assert heater is not None
        start = min(max(self.tank_c, heater.min_c), heater.max_c)
        return dataclasses.replace(heater, initial_c=start)

    def plan_day(
        self, day: DayInputs, first_slot: int, tariffs: Tariffs, heater_on: list[bool] | None
    ) -> None:
        """Plan the day: heater (given, or by thermostat), EV by price, battery by price."""
        self.day = day
        self.step = 0
        steps = len(day.load_kw)
        buy, sell = self.memory.forecast(first_slot, steps, tariffs)
        self.plan_heater_on = (
            heater_on
            if heater_on is not None
            else (
                self.heater_thermostat() if self.spec.water_heater is not None else [False] * steps
            )
        )
        self.plan_ev_kw = (
            ev_plan(self.spec.ev, day.local_hours.tolist(), buy, self.hours)
            if self.spec.ev is not None
            else [0.0] * steps
        )
        pump = self.spec.heat_pump
        self.plan_heat_pump_kw = (
            heat_pump_plan(pump, self.indoor_c, day.outdoor_c.tolist(), buy, self.hours)
            if pump is not None and day.outdoor_c is not None
            else [0.0] * steps
        )
        heater_kw = np.asarray(self.plan_heater_on, dtype=float) * (
            self.spec.water_heater.power_kw if self.spec.water_heater else 0.0
        )
        net = (
            self.base_kw
            + heater_kw
            + np.asarray(self.plan_ev_kw)
            + np.asarray(self.plan_heat_pump_kw)
        )
        if self.spec.battery is not None:
            self.plan_battery_kw = battery_plan(
                self.spec.battery, self.stored_kwh, net.tolist(), buy, sell, self.hours
            )
        else:
            self.plan_battery_kw = [0.0] * steps
        self.plan_net_kw = (net + np.asarray(self.plan_battery_kw)).tolist()

    def act(self) -> tuple[float, float]:
        """Run the assets for this interval; returns (net kW, flexible kW of it)."""
        assert self.day is not None
        t = self.step
        flexible = 0.0
        battery_kw = 0.0
        if self.spec.battery is not None:
            self.stored_kwh, battery_kw = self.spec.battery.step(
                self.stored_kwh, self.plan_battery_kw[t], self.hours
            )
            flexible += max(battery_kw, 0.0)
        heater_kwh = 0.0
        if self.spec.water_heater is not None:
            self.tank_c, heater_kwh = self.spec.water_heater.step(
                self.tank_c, self.plan_heater_on[t], float(self.day.draws_l[t]), self.hours
            )
            flexible += heater_kwh / self.hours
        ev_kw = self.plan_ev_kw[t]
        flexible += ev_kw
        pump_kw = 0.0
        pump = self.spec.heat_pump
        if pump is not None and self.day.outdoor_c is not None:
            # The house is warm enough to wait: its heating is a flexible purchase.
            self.indoor_c, pump_kwh = pump.step(
                self.indoor_c, self.plan_heat_pump_kw[t], float(self.day.outdoor_c[t]), self.hours
            )
            pump_kw = pump_kwh / self.hours
            flexible += pump_kw
        self.step += 1
        net = float(self.base_kw[t]) + battery_kw + heater_kwh / self.hours + ev_kw + pump_kw
        return net, min(flexible, max(net, 0.0))

    def order(self, net_kw: float, flexible_kw: float, tariffs: Tariffs) -> Order | None:
        kwh = abs(net_kw) * self.hours
        if kwh < MIN_ORDER_KWH:
            return None
        side = BUY if net_kw > 0 else SELL
        price = self.strategy.limit_price(side, tariffs, self.rng)
        return Order(side, kwh, price, flexible=side == BUY and flexible_kw > net_kw / 2)

    def observe(
        self, slot: int, order: Order, filled_kwh: float, price: float | None, tariffs: Tariffs
    ) -> None:
        self.strategy.observe(order.side, tariffs, order.quantity_kwh, filled_kwh, price or 0.0)


@dataclass
class PlantAgent:
    """A community plant: sells its output, never below its marginal cost or the feed-in tariff."""

    key: str
    spec: PlantSpec
    hours: float
    output_kw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    step: int = 0
    strategy: Strategy = field(default_factory=Truthful)

    def plan_day(self, per_unit: np.ndarray) -> None:
        self.output_kw = per_unit * self.spec.kw
        self.step = 0

    def act(self) -> tuple[float, float]:
        kw = float(self.output_kw[self.step])
        self.step += 1
        return -kw, 0.0

    def order(self, net_kw: float, flexible_kw: float, tariffs: Tariffs) -> Order | None:
        kwh = -net_kw * self.hours
        if kwh < MIN_ORDER_KWH:
            return None
        # Below feed-in plus the fee a peer sale earns less than the grid would pay.
        floor = max(self.spec.cost_per_kwh, tariffs.seller_cost)
        return Order(SELL, kwh, min(floor, tariffs.cap))

    def observe(
        self, slot: int, order: Order, filled_kwh: float, price: float | None, tariffs: Tariffs
    ) -> None:
        return None


def expected_prices(
    households: list[HouseholdAgent], plant_kw: np.ndarray, tariffs: Tariffs
) -> tuple[list[float], list[float]]:
    """The day's buy and sell prices per step by the community's supply and demand.

    Supply is the plants' output and each home's PV beyond its own demand, demand each home's
    demand beyond its own PV (before batteries and flexible loads, which the plans decide
    later); the prices are ``strategies.sdr_prices`` of the two.
    """
    steps = len(plant_kw)
    supply = np.asarray(plant_kw, dtype=float).copy()
    demand = np.zeros(steps)
    for agent in households:
        base = agent.base_kw
        supply += np.maximum(-base, 0.0)
        demand += np.maximum(base, 0.0)
    pairs = [sdr_prices(float(s), float(d), tariffs) for s, d in zip(supply, demand, strict=True)]
    return [b for b, _ in pairs], [v for _, v in pairs]


def plan_water_heaters(
    agents: list[HouseholdAgent],
    community_base_kw: np.ndarray,
    tariffs: Tariffs,
    hours: float,
    rng: random.Random,
) -> tuple[dict[str, list[bool]], float]:
    """Elecbay's game for the day: each heater's schedule drawn from the mixed equilibrium.

    ``community_base_kw`` is the community's net exchange without the heaters. Returns the
    schedules by agent key and the equilibrium's remaining regret (money per player).
    """
    players = [a for a in agents if a.spec.water_heater is not None]
    if not players:
        return {}, 0.0
    steps = len(community_base_kw)
    stride = max(1, round(1 / hours))  # block starts on the hour
    strategies = []
    for agent in players:
        assert agent.day is not None
        strategies.append(
            heater_strategies(
                agent.heater_today(), agent.day.draws_l.tolist(), hours, stride=stride
            )
        )
    game = WaterHeaterGame(
        base_kw=tuple(float(v) for v in community_base_kw),
        power_kw=tuple(a.spec.water_heater.power_kw for a in players),  # type: ignore[union-attr]
        on=tuple(strategies),
        hours=hours,
        retail=tariffs.retail,
        feed_in=tariffs.feed_in,
        import_weight=HEATER_IMPORT_WEIGHT,
    )
    assert steps == game.on[0].shape[1]
    equilibrium = fictitious_play(game, iterations=300)
    profile = equilibrium.sample(rng)
    return (
        {a.key: [bool(v) for v in strategies[i][profile[i]]] for i, a in enumerate(players)},
        equilibrium.regret,
    )
