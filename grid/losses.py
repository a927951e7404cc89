"""Allocating an interval's network losses to the injections that cause them, by loss factors.

Method (pure function of a converged pandapower net; no Django, no database):

1. Marginal loss factors. With the external grid (slack) balancing, the network's active losses
   are the sum of all bus injections, ``L = sum_k P_k`` (the slack's included). For one more kW
   injected at bus ``i`` (all other specified injections held), ``dL/dP_i = 1 + dP_slack/dP_i``.
   By the adjoint of the power-flow Jacobian (``grid.linearisation``):
   ``MLF = J^-T g`` with ``g = d(sum_k P_k)/dx``, ``x = [Va(pv, pq); Vm(pq)]``; the entry of
   bus ``i``'s active-power row is its loss factor (kW of losses per kW injected; 0 at the slack).
   A withdrawal (a load) of ``p`` kW is an injection of ``-p``.
2. Marginal allocation: an injection of ``P_e`` kW at bus ``b`` is charged
   ``a_e = MLF_b * P_e``. For losses that are quadratic in the flows (branch ``I^2 R``) these
   marginal charges add up to about twice the losses (Euler's theorem for a homogeneous function
   of degree 2), and they add up to something else again where part of the losses does not
   depend on the flows (a transformer's iron losses).
3. Normalisation, so the allocations sum to the losses exactly: every ``a_e`` is scaled by the
   same factor ``k = L / sum_e a_e``. This keeps each participant's relative share (and its sign:
   an injection that relieves the network, a PV export on a loaded feeder feeding a neighbour,
   is credited) and makes ``sum_e k * a_e = L``. When ``sum_e a_e`` is not positive (no flow to
   speak of, or counterflows cancelling), the factor would be meaningless; the losses are then
   shared in proportion to ``|P_e|``, which also sums to ``L``.

   Energy: ``allocated_kwh`` turns the kW into kWh at 0.001 kWh and hands the rounding remainders
   out by largest remainder, so the kWh allocations sum exactly to the interval's losses in kWh
   (``round(L * hours, 3)``) as well.

``L`` is the sum of the line, transformer and three-winding transformer losses, the same figure
the grid check stores. Pass every injection of the solved state (the members' and those of the
elements that follow profiles), so that each bears its own share; the part of elements no member
stands for is the community's.

The grid check's state (``allocate_state_losses``): the check's own converged power flow
(``grid.powerflow.PowerFlowState``) gives the Jacobian and ``L`` directly, with no pandapower run.
The members are the meter points' final net power at their buses (``GridCheckOutcome.
injection_kw``); what else each bus injects in that state (the elements that follow profiles,
the generators) is one more injection per bus, keyed ``"bus <index>"``. Together they are every
injection of the state, so the normalised allocations sum to ``L``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

import numpy as np

from grid.linearisation import Linearisation, linearise
from grid.powerflow import PowerFlowState
from units import KWH

K = TypeVar("K", bound=Hashable)

# Below this (kW) the sum of marginal charges is numerical noise, not a flow to scale by.
_MIN_MARGINAL_SUM_KW = 1e-9


def network_losses_kw(net: Any) -> float:
    """Active losses of the solved net in kW: lines, transformers and 3-winding transformers."""
    losses_mw = float(net.res_line.pl_mw.sum()) + float(net.res_trafo.pl_mw.sum())
    if "res_trafo3w" in net and len(net.res_trafo3w):
        losses_mw += float(net.res_trafo3w.pl_mw.sum())
    return losses_mw * 1000.0


def marginal_loss_factors(net: Any) -> dict[int, float]:
    """kW of losses per kW injected, for every in-service bus of the solved net (0 at a slack)."""
    return loss_factors_at(linearise(net))


def loss_factors_at(linear: Linearisation) -> dict[int, float]:
    """``marginal_loss_factors`` of the solved state ``linear``."""
    g = linear.total_injection_gradient()
    factors = linear.lu.solve(g, trans="T") if linear.size else g
    return {bus: float(factors[row]) if row >= 0 else 0.0 for bus, row in linear.row_of_bus.items()}


def _solver_bus_factors(linear: Linearisation) -> np.ndarray:
    """The loss factor of every solver bus (0 at a slack), from one transposed solve."""
    g = linear.total_injection_gradient()
    factors = np.zeros(len(linear.v))
    if linear.size:
        factors[linear.pvpq] = linear.lu.solve(g, trans="T")[: len(linear.pvpq)]
    return factors


def element_injections(net: Any) -> dict[tuple[str, int], tuple[int, float]]:
    """(element table, index) -> (bus, kW injected) of every in-service power element.

    Loads and storage withdraw (negative), static generators and generators that are not
    slacks inject (positive), as the solved power flow has them.
    """
    injections: dict[tuple[str, int], tuple[int, float]] = {}
    for table, sign in (("load", -1.0), ("sgen", 1.0), ("storage", -1.0), ("gen", 1.0)):
        if table not in net or not len(net[table]):
            continue
        elements = net[table]
        results = net[f"res_{table}"]
        for idx in elements.index[elements.in_service.astype(bool)]:
            if table == "gen" and bool(elements.at[idx, "slack"]):
                continue
            p_mw = results.at[idx, "p_mw"] if idx in results.index else np.nan
            if p_mw == p_mw:  # NaN on an isolated bus
                injections[(table, int(idx))] = (int(elements.at[idx, "bus"]), sign * p_mw * 1e3)
    return injections


@dataclass(frozen=True, slots=True)
class LossAllocation(Generic[K]):
    """Who bears which part of the losses of one solved state.

    ``allocated_kw`` sums to ``losses_kw`` (to float precision); ``method`` is ``"marginal"``
    (normalised loss factors) or ``"proportional"`` (the fallback of step 3).
    """

    losses_kw: float
    loss_factors: dict[int, float]
    allocated_kw: dict[K, float]
    scale: float
    method: str

    def allocated_kwh(self, interval_hours: float | Decimal) -> dict[K, Decimal]:
        """The allocations as energy at 0.001 kWh, summing exactly to the losses' energy."""
        keys = list(self.allocated_kw)
        kwh = np.fromiter(self.allocated_kw.values(), dtype=float, count=len(keys))
        return _apportion(
            Decimal(repr(self.losses_kw)) * Decimal(str(interval_hours)),
            keys,
            kwh * float(interval_hours),
        )


def allocate_losses(net: Any, injections: Mapping[K, tuple[int, float]]) -> LossAllocation[K]:
    """Allocate a solved pandapower net's losses over ``injections`` (key -> (bus, kW)).

    Raises ``ValueError`` for an injection on a bus the net does not have in service.
    """
    return allocate_losses_at(linearise(net), network_losses_kw(net), injections)


def allocate_losses_at(
    linear: Linearisation, losses_kw: float, injections: Mapping[K, tuple[int, float]]
) -> LossAllocation[K]:
    """Allocate ``losses_kw`` of the solved state ``linear`` over ``injections``."""
    factors = loss_factors_at(linear)
    for key, (bus, _) in injections.items():
        if bus not in factors:
            raise ValueError(f"injection {key!r}: bus {bus} is not an in-service bus")
    keys = list(injections)
    kw = np.fromiter((p for _, p in injections.values()), dtype=float, count=len(keys))
    factor = np.fromiter((factors[b] for b, _ in injections.values()), dtype=float, count=len(keys))
    allocated, scale, method = _normalised(factor, kw, losses_kw)
    return LossAllocation(
        losses_kw, factors, dict(zip(keys, allocated.tolist(), strict=True)), scale, method
    )


def _normalised(
    factor: np.ndarray, kw: np.ndarray, losses_kw: float
) -> tuple[np.ndarray, float, str]:
    """Steps 2 and 3 of the method over arrays: (allocations in kW, scale, method)."""
    marginal = factor * kw
    total = float(marginal.sum())
    if total > _MIN_MARGINAL_SUM_KW:
        scale = losses_kw / total
        return marginal * scale, scale, "marginal"
    magnitude = float(np.abs(kw).sum())
    scale = losses_kw / magnitude if magnitude > 0 else 0.0
    return np.abs(kw) * scale, scale, "proportional"


def linearise_state(state: PowerFlowState) -> Linearisation:
    """The ``Linearisation`` of a converged state of the grid check's own power flow."""
    if not state.converged:
        raise ValueError("the power flow state has not converged")
    network = state.network
    live = network.ppci_of_bus >= 0
    return Linearisation.build(
        ybus=network.ybus,
        v=state.v,
        pv=network.pv,
        pq=network.pq,
        base_mva=network.base_mva,
        internal_bus=dict(
            zip(network.bus_index[live].tolist(), network.ppci_of_bus[live].tolist(), strict=True)
        ),
        jacobian=state.jacobian(),
    )


def allocate_state_losses(
    state: PowerFlowState, members: Mapping[str, tuple[int, float]]
) -> LossAllocation[str]:
    """Allocate a converged grid-check state's losses over ``members`` (key -> (pandapower bus,
    kW injected)) and, per bus, the rest of what the state injects there (``"bus <index>"``).

    Member keys must not start with ``"bus "``. Raises ``ValueError`` for a state that has not
    converged or a member on a bus the network does not have in service. In arrays throughout:
    a thousand members cost about as much as ten.
    """
    network = state.network
    linear = linearise_state(state)
    factor = _solver_bus_factors(linear)
    keys = list(members)
    buses = np.fromiter((b for b, _ in members.values()), dtype=np.int64, count=len(keys))
    kw = np.fromiter((p for _, p in members.values()), dtype=float, count=len(keys))
    lookup = np.full(int(max(network.bus_index.max(initial=0), buses.max(initial=0))) + 2, -1)
    lookup[network.bus_index] = network.ppci_of_bus
    ppci = lookup[np.clip(buses, -1, len(lookup) - 1)]
    if len(keys) and (buses.min() < 0 or ppci.min() < 0):
        bad = int(np.flatnonzero((buses < 0) | (ppci < 0))[0])
        raise ValueError(f"injection {keys[bad]!r}: bus {buses[bad]} is not an in-service bus")
    rest = state.bus_injection_kw() - np.bincount(ppci, weights=kw, minlength=network.n_bus)
    rest[network.ref] = 0.0  # the slack balances; its loss factor is 0
    solver = network.solver_buses
    # Power-flow noise (the mismatch tolerance) is not an injection worth a line.
    with_rest = np.abs(rest[solver]) > 1e-6
    rest_ppci = solver[with_rest]
    keys += [f"bus {bus}" for bus in network.solver_bus_names[with_rest].tolist()]
    allocated, scale, method = _normalised(
        np.r_[factor[ppci], factor[rest_ppci]], np.r_[kw, rest[rest_ppci]], state.losses_mw() * 1e3
    )
    factors = {
        bus: float(factor[p])
        for bus, p in zip(network.bus_index.tolist(), network.ppci_of_bus.tolist(), strict=True)
        if p >= 0
    }
    return LossAllocation(
        state.losses_mw() * 1e3,
        factors,
        dict(zip(keys, allocated.tolist(), strict=True)),
        scale,
        method,
    )


def apportion(total: Decimal, shares: Mapping[K, float]) -> dict[K, Decimal]:
    """Round ``shares`` (signed kWh) to 0.001 kWh so they sum to ``total`` rounded to 0.001.

    Largest remainder: every share is floored to whole watt-hours, and the steps still missing
    go to the shares with the largest remainders (ties by key order as given); a negative total
    takes steps away from the smallest remainders instead. Deterministic for the same input.
    """
    keys = list(shares)
    return _apportion(total, keys, np.fromiter(shares.values(), dtype=float, count=len(keys)))


def _apportion(total: Decimal, keys: list[K], kwh: np.ndarray) -> dict[K, Decimal]:
    """``apportion`` of the shares ``kwh`` (an array in the order of ``keys``)."""
    if not keys:
        return {}
    wh = kwh * 1000.0
    floors = np.floor(wh)
    remainders = wh - floors
    target = int(total.quantize(KWH).scaleb(3))
    missing = target - int(floors.sum())
    positions = np.arange(len(keys))
    if missing >= 0:
        order = np.lexsort((positions, -remainders))
    else:
        order = np.lexsort((positions, remainders))
    np.add.at(floors, order[np.arange(abs(missing)) % len(keys)], 1.0 if missing >= 0 else -1.0)
    steps = floors.astype(np.int64).tolist()
    return {key: Decimal(value).scaleb(-3) for key, value in zip(keys, steps, strict=True)}
