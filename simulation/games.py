"""The review's game theory (pure): Elecbay's water-heater game and the pool's coalitions.

Non-cooperative: the flexible-load game of Zhang et al. (2018), "Peer-to-Peer energy trading in
a Microgrid", Applied Energy 220, Sect. 4: every peer with a water heater chooses a heating
schedule that keeps its tank comfortable, and its payoff depends on the microgrid's net exchange
with the grid at the times it heats. The paper's equations are not reproduced here, so the payoff
is stated exactly (WH-1 below) and the equilibrium is a mixed-strategy Nash equilibrium of *that*
game: exact by support enumeration for two peers, by fictitious play with its remaining regret
reported for more.

Cooperative: the community pool as a transferable-utility game whose value is what a coalition
saves by netting its members' imports and exports before trading with the grid; each member's
Shapley value (Shapley 1953) and a coalition formation step in which households join or leave by
their gain (a myopic, Nash-stable partition into the community and those standing alone).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from simulation.assets import WaterHeater

# Powers are put on this grid (kW) to convolve the other peers' demand distributions.
POWER_GRID_KW = 0.05


@dataclass(frozen=True, slots=True)
class WaterHeaterGame:
    """Players' feasible schedules and the microgrid they share.

    ``base_kw[t]`` is the microgrid's net exchange without the players' heaters (+ import,
    - export) and ``on[i]`` player ``i``'s strategies as a boolean matrix (strategies x steps);
    its heater draws ``power_kw[i]`` while on. The cost of player ``i`` (payoff = -cost) is

        (WH-1)  C_i(s) = Σ_t e_it · h · π_t,   π_t = f · λ_t + r · (1 - λ_t),
                λ_t = min(1, S_t / D_t),  S_t = max(-base_t, 0),  D_t = Σ_j e_jt

    with ``e_it`` its heater's power at ``t``: the heaters share the microgrid's surplus ``S_t``
    pro rata, paying the feed-in tariff ``f`` for it (what the surplus would fetch from the grid)
    and the retail tariff ``r`` for the rest, imported. Heating when the microgrid exports is
    cheap, heating when it imports, or when others already use the surplus, is dear. With
    ``import_weight`` κ > 0 a peer also bears the microgrid's import at the times it heats:

        (WH-2)  C_i(s) = Σ_t e_it · h · (π_t + κ · G_t⁺),   G_t = base_t + D_t

    so that among hours that all cost retail, the ones where the microgrid imports least are
    preferred (κ in currency per kWh and kW of import; 0 gives WH-1).
    """

    base_kw: tuple[float, ...]
    power_kw: tuple[float, ...]
    on: tuple[np.ndarray, ...]
    hours: float
    retail: float
    feed_in: float
    import_weight: float = 0.0

    def __post_init__(self) -> None:
        steps = len(self.base_kw)
        if len(self.power_kw) != len(self.on) or not self.on:
            raise ValueError("one power and one strategy matrix per player")
        for matrix in self.on:
            if matrix.ndim != 2 or matrix.shape[1] != steps or matrix.shape[0] == 0:
                raise ValueError("each player needs at least one strategy over every step")
        if self.feed_in > self.retail:
            raise ValueError("feed_in must not exceed retail")

    @property
    def players(self) -> int:
        return len(self.on)

    def unit_price(self, surplus_kw: np.ndarray, demand_kw: np.ndarray) -> np.ndarray:
        share = np.minimum(1.0, surplus_kw / np.maximum(demand_kw, 1e-12))
        return np.asarray(self.feed_in * share + self.retail * (1.0 - share))

    def costs(self, profile: Sequence[int]) -> list[float]:
        """Each player's cost (WH-1) when player ``i`` plays strategy ``profile[i]``."""
        power = [self.on[i][s] * self.power_kw[i] for i, s in enumerate(profile)]
        demand = np.sum(power, axis=0)
        base = np.asarray(self.base_kw)
        price = self.unit_price(np.maximum(-base, 0.0), demand)
        price = price + self.import_weight * np.maximum(base + demand, 0.0)
        return [float(np.sum(p * price) * self.hours) for p in power]

    def exchange(self, profile: Sequence[int]) -> np.ndarray:
        """The microgrid's net exchange per step (kW) with these schedules."""
        power = sum(self.on[i][s] * self.power_kw[i] for i, s in enumerate(profile))
        return np.asarray(np.asarray(self.base_kw) + power)

    def expected_costs(self, player: int, mixed: Sequence[np.ndarray]) -> np.ndarray:
        """Expected cost of each of ``player``'s pure strategies against the others' mixes."""
        steps = len(self.base_kw)
        units = [round(p / POWER_GRID_KW) for p in self.power_kw]
        width = sum(units) + 1
        # dist[t, k]: probability that the other heaters draw k grid units at step t.
        dist = np.zeros((steps, width))
        dist[:, 0] = 1.0
        for j in range(self.players):
            if j == player:
                continue
            q = mixed[j] @ self.on[j]  # probability that j heats at each step
            shifted = np.zeros_like(dist)
            shifted[:, units[j] :] = dist[:, : width - units[j]]
            dist = dist * (1.0 - q)[:, None] + shifted * q[:, None]
        others_kw = np.arange(width) * POWER_GRID_KW
        demand = self.power_kw[player] + others_kw[None, :]
        base = np.asarray(self.base_kw)[:, None]
        price = self.unit_price(np.maximum(-base, 0.0), demand)
        price = price + self.import_weight * np.maximum(base + demand, 0.0)
        expected_price = np.sum(dist * price, axis=1)
        return np.asarray(self.on[player] @ (expected_price * self.power_kw[player] * self.hours))


@dataclass(frozen=True, slots=True)
class MixedEquilibrium:
    """Each player's mixed strategy, its expected cost and how far it is from a best reply."""

    strategies: tuple[np.ndarray, ...]
    expected_costs: tuple[float, ...]
    regret: float  # max over players of (expected cost - best pure reply's cost)
    iterations: int

    def sample(self, rng: random.Random) -> list[int]:
        """One pure profile drawn from the mixes (each player independently)."""
        return [rng.choices(range(len(s)), weights=s.tolist())[0] for s in self.strategies]

    def most_likely(self) -> list[int]:
        return [int(np.argmax(s)) for s in self.strategies]


def _summary(game: WaterHeaterGame, mixed: list[np.ndarray], iterations: int) -> MixedEquilibrium:
    expected, regret = [], 0.0
    for i in range(game.players):
        costs = game.expected_costs(i, mixed)
        mine = float(mixed[i] @ costs)
        expected.append(mine)
        regret = max(regret, mine - float(costs.min()))
    return MixedEquilibrium(tuple(mixed), tuple(expected), regret, iterations)


def fictitious_play(
    game: WaterHeaterGame, *, iterations: int = 400, tolerance: float = 1e-4
) -> MixedEquilibrium:
    """A mixed-strategy equilibrium by simultaneous fictitious play (Brown 1951).

    Every round each player best-replies (ties: lowest index) to the others' empirical mixes and
    the mixes move by ``1/(n+1)`` towards the replies. Stops once no player can gain more than
    ``tolerance`` by a pure deviation, or after ``iterations``; the regret left is reported, so a
    caller sees how close to an equilibrium the answer is.
    """
    mixed = [np.full(m.shape[0], 1.0 / m.shape[0]) for m in game.on]
    done = 0
    for n in range(1, iterations + 1):
        done = n
        replies = []
        worst = 0.0
        for i in range(game.players):
            costs = game.expected_costs(i, mixed)
            best = int(np.argmin(costs))
            worst = max(worst, float(mixed[i] @ costs) - float(costs[best]))
            replies.append(best)
        if worst <= tolerance:
            break
        for i, best in enumerate(replies):
            mixed[i] *= n / (n + 1)
            mixed[i][best] += 1 / (n + 1)
    return _summary(game, mixed, done)


def support_enumeration(
    payoff_a: np.ndarray, payoff_b: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every Nash equilibrium of a non-degenerate bimatrix game (payoffs, higher is better).

    For each pair of supports of equal size, solve the indifference conditions (the other
    player's payoffs equal on one's support) and keep solutions that are probabilities and
    against which no strategy outside the support pays more (Nisan et al. 2007, Alg. 3.4).
    """
    rows, cols = payoff_a.shape
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for size in range(1, min(rows, cols) + 1):
        for row_support in itertools.combinations(range(rows), size):
            for col_support in itertools.combinations(range(cols), size):
                y = _indifferent(payoff_a[np.ix_(row_support, col_support)], size)
                x = _indifferent(payoff_b[np.ix_(row_support, col_support)].T, size)
                if x is None or y is None:
                    continue
                sigma = np.zeros(rows)
                tau = np.zeros(cols)
                sigma[list(row_support)] = x
                tau[list(col_support)] = y
                row_values = payoff_a @ tau
                col_values = sigma @ payoff_b
                if row_values.max() <= row_values[list(row_support)].min() + 1e-9 and (
                    col_values.max() <= col_values[list(col_support)].min() + 1e-9
                ):
                    found.append((sigma, tau))
    return found


def _indifferent(payoffs: np.ndarray, size: int) -> np.ndarray | None:
    """Mix over the columns making every row equal: ``payoffs @ y = v``, ``Σ y = 1``, ``y ≥ 0``."""
    system = np.zeros((size + 1, size + 1))
    system[:size, :size] = payoffs
    system[:size, size] = -1.0
    system[size, :size] = 1.0
    rhs = np.zeros(size + 1)
    rhs[size] = 1.0
    try:
        solution = np.linalg.solve(system, rhs)
    except np.linalg.LinAlgError:
        return None
    mix = solution[:size]
    if np.any(mix < -1e-12):
        return None
    return np.asarray(np.clip(mix, 0.0, 1.0))


def two_player_equilibria(game: WaterHeaterGame) -> list[tuple[np.ndarray, np.ndarray]]:
    """All equilibria of a two-peer water-heater game, exactly (payoff = -cost)."""
    if game.players != 2:
        raise ValueError("exact enumeration is for two players")
    rows, cols = game.on[0].shape[0], game.on[1].shape[0]
    a, b = np.zeros((rows, cols)), np.zeros((rows, cols))
    for r, c in itertools.product(range(rows), range(cols)):
        cost_a, cost_b = game.costs([r, c])
        a[r, c], b[r, c] = -cost_a, -cost_b
    return support_enumeration(a, b)


def heater_strategies(
    heater: WaterHeater,
    draws_l: Sequence[float],
    hours: float,
    *,
    blocks: int = 2,
    stride: int = 4,
    heat_kwh: float | None = None,
) -> np.ndarray:
    """A heater's feasible schedules: ``blocks`` heating blocks starting on a grid of steps.

        Each block lasts long enough that the blocks together supply ``heat_kwh`` (default: the
        day's hot-water energy plus standing losses at 55 °C); block starts are every ``stride``
        steps and blocks do not overlap. A schedule is feasible if the tank model keeps the water
        within comfort all day (``WaterHeater.feasible``); every schedule heats the same energy, so
    the players differ in when they heat, not how much. If no
        schedule on the grid is feasible, the thermostat's own schedule is the only strategy.
    """
    steps = len(draws_l)
    if heat_kwh is None:
        drawn = sum(draws_l) * hot_water_kwh_per_l(heater)
        heat_kwh = drawn + heater.loss_kw_per_k * (55.0 - heater.ambient_c) * hours * steps
    length = max(1, math.ceil(heat_kwh / (heater.power_kw * hours * blocks)))
    starts = range(0, steps - length + 1, stride)
    found: list[list[bool]] = []
    for combo in itertools.combinations(starts, blocks):
        if any(b - a < length for a, b in itertools.pairwise(combo)):
            continue
        schedule = [False] * steps
        for start in combo:
            for t in range(start, start + length):
                schedule[t] = True
        if heater.feasible(schedule, list(draws_l), hours):
            found.append(schedule)
    if not found:
        found.append(thermostat_schedule(heater, draws_l, hours))
    return np.asarray(found, dtype=float)


def hot_water_kwh_per_l(heater: WaterHeater) -> float:
    """The heat a litre of hot water takes away (drawn at 55 °C, refilled at the inlet)."""
    return heater.heat_capacity_kwh_per_k / heater.volume_l * (55.0 - heater.inlet_c)


def thermostat_schedule(
    heater: WaterHeater, draws_l: Sequence[float], hours: float, *, deadband_k: float = 5.0
) -> list[bool]:
    """The conventional control, without the game: the element switches on when the tank cools
    to ``deadband_k`` above its minimum and off when it reaches its maximum."""
    temp = heater.initial_c
    heating = False
    schedule: list[bool] = []
    for draw in draws_l:
        if temp < heater.min_c + deadband_k:
            heating = True
        elif temp >= heater.max_c - 1e-6:
            heating = False
        schedule.append(heating)
        temp, _ = heater.step(temp, heating, draw, hours)
    return schedule


# --- the cooperative game of the community pool --------------------------------------------


def grid_cost(net_kw: np.ndarray, retail: float, feed_in: float, hours: float) -> np.ndarray:
    """What net power costs against the grid per step: import at retail, export at feed-in."""
    return np.asarray(
        (retail * np.maximum(net_kw, 0.0) - feed_in * np.maximum(-net_kw, 0.0)) * hours
    )


def coalition_values(net_kw: np.ndarray, retail: float, feed_in: float, hours: float) -> np.ndarray:
    """``v(S)`` for every coalition (bit mask over the rows of ``net_kw``: members x steps).

    ``v(S) = Σ_t [Σ_{i∈S} c(net_it) - c(Σ_{i∈S} net_it)]``: what the coalition saves by netting
    its members' imports against its exports before trading the rest with the grid, with
    ``c`` the grid cost above. ``v`` is superadditive because ``c`` is convex (retail ≥ feed-in).
    """
    members = net_kw.shape[0]
    if members > 16:
        raise ValueError("exact coalition values are for at most 16 members")
    alone = grid_cost(net_kw, retail, feed_in, hours).sum(axis=1)
    values = np.zeros(1 << members)
    for mask in range(1, 1 << members):
        chosen = [i for i in range(members) if mask >> i & 1]
        pooled = grid_cost(net_kw[chosen].sum(axis=0), retail, feed_in, hours).sum()
        values[mask] = alone[chosen].sum() - pooled
    return values


def shapley_values(values: np.ndarray, members: int) -> list[float]:
    """Each member's Shapley value from ``v`` over bit masks:

    φ_i = Σ_{S ⊆ N \\ {i}} |S|! (n - |S| - 1)! / n! · (v(S + {i}) - v(S)).
    """
    if len(values) != 1 << members:
        raise ValueError("values must hold one entry per coalition (2^members)")
    weights = [
        math.factorial(s) * math.factorial(members - s - 1) / math.factorial(members)
        for s in range(members)
    ]
    phi = [0.0] * members
    for mask in range(1 << members):
        size = mask.bit_count()
        for i in range(members):
            if not mask >> i & 1:
                phi[i] += weights[size] * (values[mask | 1 << i] - values[mask])
    return phi


@dataclass(frozen=True, slots=True)
class CoalitionStep:
    """One move in coalition formation: who joined or left, and their gain that decided it."""

    member: int
    joined: bool
    gain: float


def coalition_formation(
    members: int,
    gain: Callable[[frozenset[int], int], float],
    *,
    start: frozenset[int] | None = None,
    max_rounds: int = 50,
) -> tuple[frozenset[int], list[CoalitionStep]]:
    """Households join or leave the community by their gain until no one wants to move.

    ``gain(community, i)`` is household ``i``'s gain as a member of ``community`` (which
    contains ``i``) against standing alone. In turn, a member with a negative gain leaves and an
    outsider whose gain on joining is positive joins; the result is Nash-stable (no household
    gains by moving alone) or the moves after ``max_rounds`` rounds are returned as they stand.
    """
    community = frozenset(range(members)) if start is None else start
    moves: list[CoalitionStep] = []
    for _ in range(max_rounds):
        moved = False
        for i in range(members):
            if i in community:
                g = gain(community, i)
                if g < 0:
                    community = community - {i}
                    moves.append(CoalitionStep(i, False, g))
                    moved = True
            else:
                g = gain(community | {i}, i)
                if g > 0:
                    community = community | {i}
                    moves.append(CoalitionStep(i, True, g))
                    moved = True
        if not moved:
            break
    return community, moves


def shapley_gain(
    net_kw: np.ndarray, retail: float, feed_in: float, hours: float, fee_per_kwh: float
) -> Callable[[frozenset[int], int], float]:
    """A household's gain in a community that shares its savings by Shapley value and charges
    ``fee_per_kwh`` on what each member trades with peers. The pool fills each side pro rata:
    at each step the matched energy ``min(Σ imports, Σ exports)`` is shared by every member on a
    side in proportion to its import or export."""
    cache: dict[frozenset[int], dict[int, float]] = {}

    def gain(community: frozenset[int], i: int) -> float:
        if community not in cache:
            order = sorted(community)
            sub = net_kw[order]
            phi = shapley_values(coalition_values(sub, retail, feed_in, hours), len(order))
            buying = np.maximum(sub, 0.0)
            selling = np.maximum(-sub, 0.0)
            matched = np.minimum(buying.sum(axis=0), selling.sum(axis=0))
            fill_buy = matched / np.maximum(buying.sum(axis=0), 1e-12)
            fill_sell = matched / np.maximum(selling.sum(axis=0), 1e-12)
            traded = (buying * fill_buy + selling * fill_sell).sum(axis=1) * hours
            cache[community] = {
                member: phi[k] - fee_per_kwh * float(traded[k]) for k, member in enumerate(order)
            }
        return cache[community][i]

    return gain
