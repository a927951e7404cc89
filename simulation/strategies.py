"""How a prosumer agent prices its postings, and how a battery or an EV schedules itself (pure).

An agent knows what it needs in an interval (kWh to buy or to sell, from its assets) and the
community's tariffs. A buyer's value of a peer kWh is the retail tariff (what the grid would
charge it) less the community fee it pays on a peer trade; a seller's cost is the feed-in tariff
(what the grid would pay it) plus that fee (``Tariffs.buyer_value``, ``Tariffs.seller_cost``):
energy the grid supplies or takes pays no fee, so a peer trade at a price outside that range
loses money against the grid. Every strategy here keeps its limit price inside the range.

- ``Truthful``: posts its value (buyer) or cost (seller) as the limit.
- ``ZeroIntelligenceConstrained``: Gode & Sunder (1993), "Allocative efficiency of markets with
  zero-intelligence traders", JPE 101(1): a limit drawn uniformly between its own value or cost
  and the far end of the range where a trade can happen, never beyond its own value or cost.
- ``RothErev``: the modified Roth-Erev reinforcement learner of Nicolaisen, Petrov & Tesfatsion
  (2001), IEEE Trans. Evol. Comp. 5(5), eq. (4)-(5), over a grid of markups (see its docstring).
- ``sdr_price`` and ``sdr_prices``: the prices a member can expect from the community's supply
  and demand (Liu et al. 2017), an agent's forecast until it has seen the market's own.
- ``battery_plan``: a battery's schedule for a horizon, by price: the cheapest import and dearest
  export given forecast prices, as a linear programme (HiGHS through SciPy).
- ``ev_plan``: an EV charges its energy need in the cheapest parked steps.
- ``heat_pump_plan``: a heat pump's power per step that keeps the house in its comfort band at
  the least cost for the forecast prices (a linear programme over the house's thermal model);
  ``heat_pump_thermostat`` holds the middle of the band whatever the price, the baseline.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from simulation.assets import Battery, ElectricVehicle, HeatPump

BUY = "buy"
SELL = "sell"


@dataclass(frozen=True, slots=True)
class Tariffs:
    """The community's grid tariffs and price limits, and the fee each side of a peer trade
    pays, per kWh."""

    retail: float
    feed_in: float
    floor: float = 0.0
    cap: float = 1.0
    fee: float = 0.0

    def __post_init__(self) -> None:
        if not self.floor <= self.feed_in <= self.retail <= self.cap:
            raise ValueError("need floor ≤ feed_in ≤ retail ≤ cap")
        if not 0 <= self.fee < self.cap:
            raise ValueError("need 0 ≤ fee < cap")

    @property
    def buyer_value(self) -> float:
        """The most a buyer can pay a peer and still gain against the grid: retail - fee."""
        return self.retail - self.fee

    @property
    def seller_cost(self) -> float:
        """The least a seller can take from a peer and still gain: feed-in + fee."""
        return self.feed_in + self.fee

    @property
    def tradeable(self) -> bool:
        """Whether any peer price leaves both sides no worse off than the grid."""
        return self.seller_cost <= self.buyer_value

    @property
    def spread(self) -> float:
        """The range of peer prices at which both sides gain against the grid (0 if none)."""
        return max(self.buyer_value - self.seller_cost, 0.0)


class Strategy(Protocol):
    """Prices a posting; may learn from what the posting achieved."""

    name: str

    def limit_price(self, side: str, tariffs: Tariffs, rng: random.Random) -> float: ...

    def observe(
        self, side: str, tariffs: Tariffs, asked_kwh: float, filled_kwh: float, price: float
    ) -> None: ...


class Truthful:
    """The limit is the agent's own value (buyer: retail - fee) or cost (seller: feed-in + fee)."""

    name = "truthful"

    def limit_price(self, side: str, tariffs: Tariffs, rng: random.Random) -> float:
        return tariffs.buyer_value if side == BUY else tariffs.seller_cost

    def observe(
        self, side: str, tariffs: Tariffs, asked_kwh: float, filled_kwh: float, price: float
    ) -> None:
        return None


class ZeroIntelligenceConstrained:
    """Gode & Sunder's ZI-C trader: uniform limits constrained to never trade at a loss.

    Buyer and seller both draw from ``U(seller_cost, buyer_value)``: a buyer never above its
    value, a seller never below its cost; outside that range no trade with a peer can beat the
    grid for both sides, so the draws cover every price a trade could happen at. Where the fee
    leaves no such range, each side posts its own value or cost (and no peer trade happens).
    """

    name = "zi-c"

    def limit_price(self, side: str, tariffs: Tariffs, rng: random.Random) -> float:
        if not tariffs.tradeable:
            return tariffs.buyer_value if side == BUY else tariffs.seller_cost
        return rng.uniform(tariffs.seller_cost, tariffs.buyer_value)

    def observe(
        self, side: str, tariffs: Tariffs, asked_kwh: float, filled_kwh: float, price: float
    ) -> None:
        return None


@dataclass
class RothErev:
    """Modified Roth-Erev reinforcement learning over price markups.

    Actions ``k = 0..K-1`` are markups ``m_k = k / (K-1)`` of the spread: a seller asks
    ``seller_cost + m_k · spread``, a buyer bids ``buyer_value - m_k · spread``. Choice
    probabilities are proportional to propensities, ``p_k = q_k / Σ q`` (Nicolaisen et al. 2001,
    eq. 5). After each posting the propensities update (eq. 4):

        q_j ← (1 - r) q_j + E_j,   E_j = R (1 - e)            if j was chosen
                                   E_j = q_j e / (K - 1)        otherwise

    with recency ``r``, experimentation ``e`` and the reward ``R`` the posting's surplus against
    the grid per kWh it asked for, in units of the spread (so ``R ∈ [0, 1]``). Each side learns
    its own propensities, since a battery both buys and sells.
    """

    actions: int = 6
    recency: float = 0.1
    experimentation: float = 0.2
    initial_propensity: float = 0.5
    name: str = "roth-erev"
    propensities: dict[str, list[float]] = field(default_factory=dict)
    _last: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.actions < 2:
            raise ValueError("actions must be at least 2")
        if not (0 <= self.recency < 1 and 0 <= self.experimentation < 1):
            raise ValueError("recency and experimentation must be within [0, 1)")

    def markup(self, action: int) -> float:
        return action / (self.actions - 1)

    def _q(self, side: str) -> list[float]:
        return self.propensities.setdefault(side, [self.initial_propensity] * self.actions)

    def probabilities(self, side: str) -> list[float]:
        q = self._q(side)
        total = sum(q)
        return [value / total for value in q]

    def limit_price(self, side: str, tariffs: Tariffs, rng: random.Random) -> float:
        action = rng.choices(range(self.actions), weights=self._q(side))[0]
        self._last[side] = action
        step = self.markup(action) * tariffs.spread
        return tariffs.seller_cost + step if side == SELL else tariffs.buyer_value - step

    def observe(
        self, side: str, tariffs: Tariffs, asked_kwh: float, filled_kwh: float, price: float
    ) -> None:
        chosen = self._last.pop(side, None)
        if chosen is None:
            return
        surplus = (price - tariffs.seller_cost) if side == SELL else (tariffs.buyer_value - price)
        reward = 0.0
        if tariffs.spread > 0 and filled_kwh > 0 and asked_kwh > 0:
            reward = min(max(surplus * filled_kwh / (tariffs.spread * asked_kwh), 0.0), 1.0)
        self.reinforce(side, chosen, reward)

    def reinforce(self, side: str, chosen: int, reward: float) -> None:
        q = self._q(side)
        spill = self.experimentation / (self.actions - 1)
        for j, value in enumerate(q):
            experience = reward * (1 - self.experimentation) if j == chosen else value * spill
            q[j] = (1 - self.recency) * value + experience
        # Propensities only shrink towards 0; keep a floor so probabilities stay defined.
        total = sum(q)
        if total < 1e-9:
            q[:] = [self.initial_propensity] * self.actions


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    Truthful.name: Truthful,
    ZeroIntelligenceConstrained.name: ZeroIntelligenceConstrained,
    "roth-erev": RothErev,
}


def strategy_for(name: str) -> Strategy:
    """A fresh strategy by its name (``truthful``, ``zi-c``, ``roth-erev``)."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}") from None


def sdr_price(supply_kw: float, demand_kw: float, tariffs: Tariffs) -> float:
    """The expected peer price by the supply-demand ratio SDR = supply / demand, as in Liu et al.
    (2017), "Energy sharing management for microgrids with PV prosumers: a Stackelberg game
    approach", IEEE Trans. Ind. Informatics 13(3), eq. (4):

        p = f·r / ((r - f)·SDR + f)   for 0 ≤ SDR ≤ 1,   p = f   for SDR > 1

    with ``f`` the feed-in and ``r`` the retail tariff: retail with no local supply, feed-in
    once local supply covers demand.
    """
    f, r = tariffs.feed_in, tariffs.retail
    if demand_kw <= 0:
        return f
    ratio = max(supply_kw, 0.0) / demand_kw
    if ratio >= 1 or f <= 0:
        return f if ratio >= 1 else r
    return f * r / ((r - f) * ratio + f)


def sdr_prices(supply_kw: float, demand_kw: float, tariffs: Tariffs) -> tuple[float, float]:
    """What a member can expect to pay per kWh bought and get per kWh sold, all told.

    Only ``min(SDR, 1)`` of the demand finds local supply, the rest comes from the grid at
    retail; only ``min(1/SDR, 1)`` of the supply finds local demand, the rest goes to the grid
    at feed-in. With ``p = sdr_price`` and the fee on the peer part (Liu et al. 2017, eq. (5),
    with the fee):

        buy  = s_b·(p + fee) + (1 - s_b)·r,   s_b = min(SDR, 1)
        sell = s_s·(p - fee) + (1 - s_s)·f,   s_s = min(1 / SDR, 1)

    A battery plans with these, not with ``p`` alone: a kWh it keeps for its own home saves the
    buy price, a kWh it sells earns the sell price, and in a short market the two differ.
    """
    price = sdr_price(supply_kw, demand_kw, tariffs)
    supply, demand = max(supply_kw, 0.0), max(demand_kw, 0.0)
    # As a member one kWh more would find it: with no one on the other side, nothing is local;
    # with no one on its own side, everything the other side has is there for it.
    share_buy = min(supply / demand, 1.0) if demand > 0 else float(supply > 0)
    share_sell = min(demand / supply, 1.0) if supply > 0 else float(demand > 0)
    buy = share_buy * (price + tariffs.fee) + (1 - share_buy) * tariffs.retail
    sell = share_sell * (price - tariffs.fee) + (1 - share_sell) * tariffs.feed_in
    # The fee can make a peer kWh no better than the grid's; then the grid's price holds.
    return min(buy, tariffs.retail), max(sell, tariffs.feed_in)


def battery_plan(
    battery: Battery,
    stored_kwh: float,
    net_kw: list[float],
    buy_price: list[float],
    sell_price: list[float],
    hours: float,
) -> list[float]:
    """The battery's AC power per step (+ charge, - discharge) that minimises the home's cost.

    Linear programme over ``T`` steps with charge ``c_t``, discharge ``d_t``, import ``i_t``
    and export ``x_t`` (kW, all ≥ 0) and the energy stored after each step ``e_t`` (kWh):

        min Σ_t (buy_t · i_t - sell_t · x_t) · h + ε Σ_t (c_t + d_t)
        s.t. i_t - x_t = net_t + c_t - d_t,   c_t, d_t ≤ P,
             e_t = e_{t-1} + h (η c_t - d_t / η),   e_{-1} = E_0,
             E_min ≤ e_t ≤ E_max,   e_{T-1} ≥ min(E_0, E_max)

    where ``net_t`` is the home's load minus its PV without the battery and ``η`` the one-way
    efficiency. The end condition keeps the battery from being emptied at the horizon's edge
    just because the plan ends there; ``ε`` breaks ties against needless cycling. The stored
    energy is a variable of its own, so each constraint names at most four variables: HiGHS
    solves the sparse programme in a fraction of the time the same bounds on running sums of
    the powers took (a day of 333 batteries was 7 of a simulated day's 10 s of planning).
    Where prices tie, the solver may pick another schedule of the same least cost.
    """
    steps = len(net_kw)
    if not (len(buy_price) == len(sell_price) == steps) or steps == 0:
        raise ValueError("net_kw, buy_price and sell_price need the same, non-zero length")
    eta = battery.leg_efficiency
    start = min(max(stored_kwh, battery.min_kwh), battery.capacity_kwh)
    # Variable order: c (T), d (T), i (T), x (T), e (T).
    c, d, i, x, e = (np.arange(steps) + k * steps for k in range(5))
    cost = np.concatenate(
        [
            np.full(2 * steps, 1e-6),
            np.asarray(buy_price, dtype=float) * hours,
            -np.asarray(sell_price, dtype=float) * hours,
            np.zeros(steps),
        ]
    )
    # Rows 0..T-1, the balance: -c + d + i - x = net. Rows T..2T-1, the store:
    # e_t - e_{t-1} - h η c_t + h d_t / η = 0 (for t = 0, e_{-1} = E_0 on the right).
    balance, store = np.arange(steps), np.arange(steps) + steps
    rows = np.concatenate([balance, balance, balance, balance, store, store, store, store[1:]])
    cols = np.concatenate([c, d, i, x, e, c, d, e[:-1]])
    values = np.concatenate(
        [
            np.full(steps, -1.0),
            np.ones(steps),
            np.ones(steps),
            np.full(steps, -1.0),
            np.ones(steps),
            np.full(steps, -eta * hours),
            np.full(steps, hours / eta),
            np.full(steps - 1, -1.0),
        ]
    )
    a_eq = sparse.csc_array((values, (rows, cols)), shape=(2 * steps, 5 * steps))
    b_eq = np.concatenate([np.asarray(net_kw, dtype=float), [start], np.zeros(steps - 1)])
    lower = np.concatenate([np.zeros(4 * steps), np.full(steps, battery.min_kwh)])
    upper = np.concatenate(
        [np.full(2 * steps, battery.power_kw), np.full(2 * steps, np.inf),
         np.full(steps, battery.capacity_kwh)]
    )  # fmt: skip
    lower[e[-1]] = start
    result = linprog(
        cost, A_eq=a_eq, b_eq=b_eq, bounds=np.column_stack([lower, upper]), method="highs"
    )
    if not result.success:  # the all-zero schedule is always feasible, so this is a solver fault
        raise RuntimeError(f"battery plan failed: {result.message}")
    charge, discharge = result.x[:steps], result.x[steps : 2 * steps]
    return [round(float(c - d), 6) for c, d in zip(charge, discharge, strict=True)]


def ev_plan(
    ev: ElectricVehicle, hours_of_day: Sequence[float], price: Sequence[float], hours: float
) -> list[float]:
    """Charging power per step: the need goes into the cheapest parked steps (ties: earliest).

    Steps where the car is away get 0. If the horizon's parked steps cannot hold the need, the
    car charges at full power in all of them (the validated limits make this rare).
    """
    if len(hours_of_day) != len(price):
        raise ValueError("hours_of_day and price need the same length")
    parked = [t for t, h in enumerate(hours_of_day) if ev.parked(h)]
    remaining = ev.energy_need_kwh / ev.efficiency
    plan = [0.0] * len(price)
    for t in sorted(parked, key=lambda t: (price[t], t)):
        if remaining <= 1e-9:
            break
        kw = min(ev.charger_kw, remaining / hours)
        plan[t] = kw
        remaining -= kw * hours
    return plan


def heat_pump_thermostat(
    pump: HeatPump, indoor_c: float, outdoor_c: Sequence[float], hours: float
) -> list[float]:
    """Power per step that holds the middle of the comfort band (as far as ``power_kw`` can)."""
    setpoint = (pump.min_c + pump.max_c) / 2
    plan: list[float] = []
    temp = indoor_c
    for outdoor in outdoor_c:
        power = min(pump.power_for(temp, setpoint, outdoor, hours), pump.power_kw)
        temp, _ = pump.step(temp, power, outdoor, hours)
        plan.append(power)
    return plan


def heat_pump_plan(
    pump: HeatPump,
    indoor_c: float,
    outdoor_c: Sequence[float],
    buy_price: Sequence[float],
    hours: float,
) -> list[float]:
    """The heat pump's power per step that keeps the house comfortable at the least cost.

    With ``a = exp(-H·h/C)`` and COP_t from the outdoor temperature, the step of ``HeatPump``
    makes the indoor temperature after step ``t`` linear in the powers ``P``:

        θ_t = a^(t+1)·θ_0 + Σ_{τ≤t} a^(t-τ)·(1 - a)·(θ_out,τ + COP_τ·P_τ / H)

    so the cheapest schedule is the linear programme

        min Σ_t buy_t · P_t · h + ε Σ_t P_t
        s.t. min_c ≤ θ_t ≤ max_c,   0 ≤ P_t ≤ power_kw,   θ_T ≥ θ_0

    (the end condition keeps the plan from letting the house cool off just because the horizon
    ends; ``θ_0`` is clipped into the band). The house is pre-heated in cheap steps and coasts
    through dear ones. If no schedule can hold the band (the pump too small for the cold), the
    thermostat's schedule is returned: full power wherever the band is lost.
    """
    steps = len(outdoor_c)
    if len(buy_price) != steps or steps == 0:
        raise ValueError("outdoor_c and buy_price need the same, non-zero length")
    start = min(max(indoor_c, pump.min_c), pump.max_c)
    a = math.exp(-pump.heat_loss_kw_per_k * hours / pump.thermal_capacity_kwh_per_k)
    t = np.arange(steps)
    # powers[t, τ] = a^(t-τ) for τ ≤ t, else 0.
    lag = t[:, None] - t[None, :]
    powers = np.where(lag >= 0, a ** np.maximum(lag, 0), 0.0)
    outdoor = np.asarray(outdoor_c, dtype=float)
    cop = np.asarray([pump.cop(float(v)) for v in outdoor])
    free = a ** (t + 1) * start + powers @ ((1 - a) * outdoor)
    gain = powers * ((1 - a) * cop / pump.heat_loss_kw_per_k)[None, :]
    a_ub = np.vstack([gain, -gain, -gain[-1:]])
    b_ub = np.concatenate([pump.max_c - free, free - pump.min_c, [free[-1] - start]])
    cost = np.asarray(buy_price, dtype=float) * hours + 1e-6
    result = linprog(
        cost, A_ub=a_ub, b_ub=b_ub, bounds=[(0, pump.power_kw)] * steps, method="highs"
    )
    if not result.success:
        return heat_pump_thermostat(pump, indoor_c, outdoor_c, hours)
    return [round(float(v), 6) for v in result.x]


def gini(values: list[float]) -> float:
    """The Gini coefficient of non-negative values (0: all equal; towards 1: one has all)."""
    clipped = sorted(max(v, 0.0) for v in values)
    total = sum(clipped)
    n = len(clipped)
    if n == 0 or total <= 0 or not math.isfinite(total):
        return 0.0
    weighted = sum((i + 1) * v for i, v in enumerate(clipped))
    return (2 * weighted) / (n * total) - (n + 1) / n
