"""The grid check of an interval's trades: one AC power flow, and curtailment until it is safe.

Pure function over a pandapower net and frozen dataclasses (no Django, no database). The caller's
net is never changed: the check works on a deep copy.

Rules, as implemented (see ``grid_check``):

* Every trade is a constant average power ``quantity_kwh / interval_hours`` for the interval, at
  unity power factor: the seller's bus injects it, the buyer's bus withdraws it; a side that is
  ``None`` is the outside grid (the external grid, i.e. the slack), so a trade with the outside grid
  touches one bus only. Trades come on top of the net's own loads and static generators.
* Limits: every in-service bus voltage inside ``[v_min_pu, v_max_pu]``, every line and transformer
  loading at or below its limit.
* Pre-existing violations: a limit that the base case (the net without any trade) already breaks is
  not the trades' fault. For such an element the effective limit is the base case's own value
  (``max(limit, base)`` for upper limits, ``min(limit, base)`` for the lower voltage limit). The
  violation is recorded with ``caused_by_trades=False`` and causes no curtailment unless the trades
  push the value past the effective limit by more than a tolerance (``VOLTAGE_TOLERANCE_PU``,
  ``LOADING_TOLERANCE_PERCENT``); then it counts as caused by the trades, and curtailment aims at
  the effective limit (back to the base level), not at the nominal one. The base case runs only
  when the scheduled power flow finds a violation, so a clean schedule costs one power flow.
* Curtailment: for each trade-caused violation, the linearised sensitivity of the violated quantity
  to each trade's power is taken from the converged power flow's Jacobian (see
  ``_Sensitivities``). The amount needed is ``excess * (1 + CURTAIL_MARGIN) + margin``; it is taken
  from contributing trades (sensitivity > 0) in policy order: most sensitive first (SENSITIVITY) or
  latest submitted first (LAST_ON_FIRST_OFF, Elecbay's "last on, first off"), each by at most its
  remaining quantity. Violations are handled worst first in one pass, each one crediting what was
  already curtailed for the others (by the same linear model), then the power flow is re-run.
* A power flow that does not converge with the trades (when the base case does) is handled by
  curtailing half of the remaining trade energy, taken from the largest trades first
  (SENSITIVITY) or the latest orders first (LAST_ON_FIRST_OFF); the same halving is the fallback
  when the linear model finds no trade that would help.
* Curtailed energy is ``Decimal`` rounded up to 0.001 kWh, never more than the trade's quantity;
  confirmed = scheduled - curtailed. With everything curtailed the net is back at its base case,
  which is feasible by definition, so the loop always ends feasible unless ``max_power_flows`` is
  reached or the base case itself does not converge.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_UP, Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import pandapower as pp
import scipy.sparse as sp
from pandapower.pypower.dSbus_dV import dSbus_dV
from scipy.sparse.linalg import splu

KWH_STEP = Decimal("0.001")
VOLTAGE_TOLERANCE_PU = 0.001
LOADING_TOLERANCE_PERCENT = 0.1
# The linear estimate is good to a few percent on LV feeders; aiming 5 % plus a small absolute
# margin past the limit makes the next power flow land inside the limit nearly always.
CURTAIL_MARGIN = 0.05
VOLTAGE_MARGIN_PU = 0.0005
LOADING_MARGIN_PERCENT = 0.2
# Below this a trade's effect on a violated quantity is numerical noise (p.u. or % per kW).
_SENSITIVITY_EPS = 1e-9
TRADE_LOAD_NAME = "peergrid trades"


@dataclass(frozen=True, slots=True)
class ScheduledTrade:
    """One provisional trade of the interval, as the clearing produced it."""

    trade_id: str
    seller_bus: int | None  # None = the outside grid (external grid) sells
    buyer_bus: int | None  # None = the outside grid buys
    quantity_kwh: Decimal
    submitted_at: datetime  # when the order behind it was placed (for "last on, first off")


@dataclass(frozen=True, slots=True)
class GridLimits:
    """The community's operating limits (EN 50160 voltage band by default)."""

    v_min_pu: float = 0.90
    v_max_pu: float = 1.10
    max_line_loading_percent: float = 100.0
    max_trafo_loading_percent: float = 100.0


class CurtailmentPolicy(StrEnum):
    SENSITIVITY = "sensitivity"
    LAST_ON_FIRST_OFF = "last_on_first_off"


@dataclass(frozen=True, slots=True)
class Violation:
    """A limit broken in the scheduled (uncurtailed) state."""

    # "overvoltage" | "undervoltage" | "line_overload" | "trafo_overload" | "not_converged"
    kind: str
    element: str  # e.g. "bus 17", "line 3", "trafo 0", "network"
    value: float  # p.u. for voltages, percent for loadings, nan for not_converged
    limit: float  # the nominal limit
    caused_by_trades: bool


@dataclass(frozen=True, slots=True)
class Curtailment:
    """Energy taken off one trade, with the reasons (merged over iterations)."""

    trade_id: str
    curtailed_kwh: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class GridCheckOutcome:
    feasible: bool
    power_flows: int  # every power flow run, including the base case when it was needed
    min_vm_pu: float
    max_vm_pu: float
    max_line_loading_percent: float
    max_trafo_loading_percent: float
    losses_kw: float
    violations: tuple[Violation, ...]
    curtailments: tuple[Curtailment, ...]
    confirmed_kwh: dict[str, Decimal]
    bus_vm_pu: dict[int, float]
    line_loading_percent: dict[int, float]
    duration_s: float


@dataclass(frozen=True, slots=True)
class _State:
    """Results of one power flow, indexed by pandapower element index."""

    converged: bool
    vm_pu: dict[int, float]
    line_loading: dict[int, float]
    trafo_loading: dict[int, float]
    losses_kw: float


@dataclass(frozen=True, slots=True)
class _Finding:
    """A broken limit with what curtailment would need to fix (``excess`` > 0 only if caused)."""

    kind: str
    element_type: str  # "bus" | "line" | "trafo" | "network"
    index: int
    value: float
    limit: float
    target: float  # the effective limit curtailment aims at
    caused_by_trades: bool

    @property
    def direction(self) -> int:
        # +1: the quantity must go down; -1: it must go up (undervoltage).
        return -1 if self.kind == "undervoltage" else 1

    @property
    def excess(self) -> float:
        return max(0.0, self.direction * (self.value - self.target))

    @property
    def element(self) -> str:
        return "network" if self.element_type == "network" else f"{self.element_type} {self.index}"

    def describe(self) -> str:
        if self.kind == "not_converged":
            return "power flow did not converge with the scheduled trades"
        unit = " p.u." if self.element_type == "bus" else " %"
        digits = 3 if self.element_type == "bus" else 1
        op = "<" if self.direction < 0 else ">"
        text = f"{self.kind.replace('_', ' ')} at {self.element}: {self.value:.{digits}f}{unit} "
        text += f"{op} {self.limit:.{digits}f}"
        if abs(self.target - self.limit) > 1e-12:
            text += f" (base case {self.target:.{digits}f})"
        return text


class _Schedule:
    """The trades as arrays, and the per-bus net withdrawal their remaining quantities make."""

    def __init__(self, trades: Sequence[ScheduledTrade], buses: list[int], hours: float) -> None:
        self.trades = list(trades)
        self.hours = hours
        self.position = {bus: i for i, bus in enumerate(buses)}
        n = len(self.trades)
        self.seller = np.full(n, -1, dtype=np.int64)
        self.buyer = np.full(n, -1, dtype=np.int64)
        for i, trade in enumerate(self.trades):
            if trade.seller_bus is not None:
                self.seller[i] = self.position[trade.seller_bus]
            if trade.buyer_bus is not None:
                self.buyer[i] = self.position[trade.buyer_bus]
        self.quantity = [trade.quantity_kwh for trade in self.trades]
        self.curtailed = [Decimal(0) for _ in self.trades]
        self.reasons: list[list[str]] = [[] for _ in self.trades]

    def remaining_kw(self) -> np.ndarray:
        remaining = [float(q - c) for q, c in zip(self.quantity, self.curtailed, strict=True)]
        return np.asarray(remaining, dtype=float) / self.hours

    def withdrawal_mw(self) -> np.ndarray:
        power_mw = self.remaining_kw() / 1000.0
        withdrawal = np.zeros(len(self.position))
        sells = self.seller >= 0
        buys = self.buyer >= 0
        np.add.at(withdrawal, self.seller[sells], -power_mw[sells])
        np.add.at(withdrawal, self.buyer[buys], power_mw[buys])
        return withdrawal

    def curtail(self, i: int, kw: float, reason: str) -> bool:
        """Take ``kw`` (as energy, rounded up to 0.001 kWh) off trade ``i``; False if none left."""
        left = self.quantity[i] - self.curtailed[i]
        if left <= 0 or kw <= 0:
            return False
        kwh = Decimal(repr(float(kw * self.hours))).quantize(KWH_STEP, rounding=ROUND_UP)
        kwh = min(max(kwh, KWH_STEP), left)
        self.curtailed[i] += kwh
        if reason not in self.reasons[i]:
            self.reasons[i].append(reason)
        return True


class _Sensitivities:
    """Linearised effect of active power at the trade buses on voltages and branch loadings.

    From the converged Newton-Raphson point: J [dVa; dVm] = dS for a unit active injection at each
    trade bus (one sparse LU, one solve per distinct bus), so dVm/dP at every bus; branch currents
    I = Yf V change by Yf dV, giving d|I|/dP and loading' = loading * d|I| / |I| on the side that
    sets the loading. The slack bus holds its voltage, so the outside grid's side of a trade has no
    effect.
    """

    def __init__(self, net: Any, buses: list[int]) -> None:
        internal = net._ppc["internal"]
        ybus = internal["Ybus"]
        v = internal["V"]
        pv = np.asarray(internal["pv"], dtype=np.int64)
        pq = np.asarray(internal["pq"], dtype=np.int64)
        pvpq = np.r_[pv, pq]
        base_mva = float(internal["baseMVA"])
        ds_dvm, ds_dva = dSbus_dV(ybus, v)
        jac = sp.vstack(
            [
                sp.hstack([ds_dva[pvpq][:, pvpq].real, ds_dvm[pvpq][:, pq].real]),
                sp.hstack([ds_dva[pq][:, pvpq].imag, ds_dvm[pq][:, pq].imag]),
            ],
            format="csc",
        )
        bus_lookup = np.asarray(net._pd2ppc_lookups["bus"])
        n_bus = len(v)
        row_of_bus = np.full(n_bus, -1, dtype=np.int64)
        row_of_bus[pvpq] = np.arange(len(pvpq))
        rhs = np.zeros((jac.shape[0], len(buses)))
        for col, bus in enumerate(buses):
            row = row_of_bus[bus_lookup[bus]]
            if row >= 0:
                # Per kW of injection: 1 kW = 1e-3 MW = 1e-3 / baseMVA p.u.
                rhs[row, col] = 1e-3 / base_mva
        solution = splu(jac).solve(rhs) if len(buses) else rhs
        dva = np.zeros((n_bus, len(buses)))
        dvm = np.zeros((n_bus, len(buses)))
        dva[pvpq] = solution[: len(pvpq)]
        dvm[pq] = solution[len(pvpq) :]
        self._dvm = dvm
        self._bus_lookup = bus_lookup
        vm = np.abs(v)
        dv = v[:, None] * (1j * dva + dvm / vm[:, None])
        branch_is = np.asarray(internal["branch_is"], dtype=bool)
        self._ppci_branch = np.cumsum(branch_is) - 1
        self._branch_is = branch_is
        self._i_from = internal["Yf"] @ v
        self._i_to = internal["Yt"] @ v
        self._di_from = internal["Yf"] @ dv
        self._di_to = internal["Yt"] @ dv
        self._branch_lookup = net._pd2ppc_lookups["branch"]

    def voltage(self, bus: int) -> np.ndarray:
        """d vm_pu / d P (per kW injected) at ``bus``, one value per trade bus."""
        result: np.ndarray = self._dvm[self._bus_lookup[bus]]
        return result

    def loading(self, element_type: str, index: int, position: int, loading: float) -> np.ndarray:
        """d loading_percent / d P (per kW injected) of the ``position``-th line or trafo."""
        start, _ = self._branch_lookup[element_type]
        ppc_branch = start + position
        if not self._branch_is[ppc_branch]:
            return np.zeros(self._dvm.shape[1])
        b = self._ppci_branch[ppc_branch]
        best = np.zeros(self._dvm.shape[1])
        best_abs = -1.0
        for current, delta in (
            (self._i_from[b], self._di_from[b]),
            (self._i_to[b], self._di_to[b]),
        ):
            magnitude = abs(current)
            if magnitude > best_abs:
                best_abs = magnitude
                best = (
                    np.real(np.conj(current) * delta) / magnitude**2 * loading
                    if magnitude > 0
                    else np.zeros(self._dvm.shape[1])
                )
        return best


def _run(net: Any, *, warm: bool) -> bool:
    try:
        # Warm start from the previous results: curtailment changes few injections, so Newton-
        # Raphson needs one or two iterations instead of four or five.
        pp.runpp(net, numba=False, init="results" if warm else "auto")
    except pp.LoadflowNotConverged:
        return False
    return bool(net.converged)


def _state(net: Any, converged: bool) -> _State:
    if not converged:
        return _State(False, {}, {}, {}, math.nan)
    in_service = net.bus.in_service.astype(bool)
    vm = net.res_bus.vm_pu[in_service].dropna()
    line = net.res_line.loading_percent[net.line.in_service.astype(bool)].dropna()
    trafo = net.res_trafo.loading_percent[net.trafo.in_service.astype(bool)].dropna()
    losses_mw = float(net.res_line.pl_mw.sum()) + float(net.res_trafo.pl_mw.sum())
    if "res_trafo3w" in net and len(net.res_trafo3w):
        losses_mw += float(net.res_trafo3w.pl_mw.sum())
    return _State(
        True,
        {int(k): float(x) for k, x in vm.items()},
        {int(k): float(x) for k, x in line.items()},
        {int(k): float(x) for k, x in trafo.items()},
        losses_mw * 1000.0,
    )


def _findings(state: _State, base: _State | None, limits: GridLimits) -> list[_Finding]:
    """Every nominal limit broken in ``state``; classified against ``base`` when given."""
    if not state.converged:
        caused = base is None or base.converged
        return [_Finding("not_converged", "network", 0, math.nan, math.nan, math.nan, caused)]
    found: list[_Finding] = []

    def add(kind: str, etype: str, idx: int, value: float, limit: float, upper: bool) -> None:
        broken = value > limit if upper else value < limit
        if not broken:
            return
        target = limit
        base_value = None
        if base is not None and base.converged:
            table = {"bus": base.vm_pu, "line": base.line_loading, "trafo": base.trafo_loading}
            base_value = table[etype].get(idx)
        if base_value is not None:
            target = max(limit, base_value) if upper else min(limit, base_value)
        # The tolerance only shields a base-case violation from power-flow noise; where the base
        # case is inside the limit, any violation is the trades' doing.
        tol = 0.0
        if target != limit:
            tol = VOLTAGE_TOLERANCE_PU if etype == "bus" else LOADING_TOLERANCE_PERCENT
        caused = (value > target + tol) if upper else (value < target - tol)
        found.append(_Finding(kind, etype, idx, value, limit, target, caused))

    for bus, vm in state.vm_pu.items():
        add("overvoltage", "bus", bus, vm, limits.v_max_pu, True)
        add("undervoltage", "bus", bus, vm, limits.v_min_pu, False)
    for line, loading in state.line_loading.items():
        add("line_overload", "line", line, loading, limits.max_line_loading_percent, True)
    for trafo, loading in state.trafo_loading.items():
        add("trafo_overload", "trafo", trafo, loading, limits.max_trafo_loading_percent, True)
    return found


def _policy_order(
    schedule: _Schedule, candidates: list[int], weight: np.ndarray, policy: CurtailmentPolicy
) -> list[int]:
    if policy is CurtailmentPolicy.LAST_ON_FIRST_OFF:
        return sorted(
            candidates,
            key=lambda i: (schedule.trades[i].submitted_at, schedule.trades[i].trade_id),
            reverse=True,
        )
    return sorted(candidates, key=lambda i: (-weight[i], schedule.trades[i].trade_id))


def _curtail_half(schedule: _Schedule, policy: CurtailmentPolicy, reason: str) -> bool:
    """Take half of the remaining trade energy: latest orders first (LAST_ON_FIRST_OFF) or
    largest trades first (SENSITIVITY: without a converged state the big injections are the
    likely cause, and small trades are spared)."""
    remaining = schedule.remaining_kw()
    live = [i for i in range(len(schedule.trades)) if remaining[i] > 0]
    need = float(remaining.sum()) / 2.0
    progressed = False
    for i in _policy_order(schedule, live, remaining, policy):
        if need <= 0:
            break
        take = min(remaining[i], need)
        progressed = schedule.curtail(i, take, reason) or progressed
        need -= take
    return progressed


def _curtail_by_sensitivity(
    net: Any,
    schedule: _Schedule,
    caused: list[_Finding],
    policy: CurtailmentPolicy,
) -> bool:
    """One round of curtailment from the linearised model; False if nothing could be taken."""
    buses = list(schedule.position)
    sens = _Sensitivities(net, buses)
    remaining = schedule.remaining_kw()
    planned = np.zeros(len(schedule.trades))
    line_pos = {int(idx): pos for pos, idx in enumerate(net.line.index)}
    trafo_pos = {int(idx): pos for pos, idx in enumerate(net.trafo.index)}
    progressed = False
    # Worst first, relative to the size of the limit, so a 3 % overload outranks 0.01 p.u.
    for finding in sorted(caused, key=lambda f: -f.excess / max(abs(f.target), 1e-9)):
        if finding.element_type == "bus":
            per_bus = sens.voltage(finding.index)
            margin = VOLTAGE_MARGIN_PU
            unit = "p.u./kW"
        else:
            pos = (line_pos if finding.element_type == "line" else trafo_pos)[finding.index]
            per_bus = sens.loading(finding.element_type, finding.index, pos, finding.value)
            margin = LOADING_MARGIN_PERCENT
            unit = "%/kW"
        # Effect on the violation of 1 kW more of each trade: seller injects, buyer withdraws.
        padded = np.r_[per_bus, 0.0]  # index -1 (the outside grid) reads the 0 at the end
        effect = finding.direction * (padded[schedule.seller] - padded[schedule.buyer])
        need = finding.excess * (1.0 + CURTAIL_MARGIN) + margin - float(planned @ effect)
        if need <= 0:
            continue
        candidates = [
            i
            for i in range(len(schedule.trades))
            if effect[i] > _SENSITIVITY_EPS and remaining[i] - planned[i] > 0
        ]
        for i in _policy_order(schedule, candidates, effect, policy):
            take = min(remaining[i] - planned[i], need / effect[i])
            planned[i] += take
            need -= take * effect[i]
            reason = f"{finding.describe()}; sensitivity {effect[i]:.3g} {unit}"
            progressed = schedule.curtail(i, take, reason) or progressed
            if need <= 0:
                break
    return progressed


def grid_check(
    net: Any,
    trades: Sequence[ScheduledTrade],
    *,
    interval_hours: Decimal | float,
    limits: GridLimits = GridLimits(),  # frozen, so one shared default is safe
    policy: CurtailmentPolicy = CurtailmentPolicy.SENSITIVITY,
    max_power_flows: int = 50,
) -> GridCheckOutcome:
    """Check the interval's trades against the grid and curtail them until they are safe.

    See the module docstring for the rules. ``power_flows`` counts every power flow run,
    including the base case, which runs only when the scheduled state has a violation.
    Raises ``ValueError`` for a trade on a bus the net does not have, a negative quantity,
    duplicate trade ids or a non-positive interval.
    """
    started = time.perf_counter()
    hours = float(interval_hours)
    if not hours > 0:
        raise ValueError(f"interval_hours must be positive, got {interval_hours}")
    known = {int(b) for b in net.bus.index[net.bus.in_service.astype(bool)]}
    seen: set[str] = set()
    buses: set[int] = set()
    for trade in trades:
        if trade.trade_id in seen:
            raise ValueError(f"duplicate trade id {trade.trade_id!r}")
        seen.add(trade.trade_id)
        if trade.quantity_kwh < 0:
            raise ValueError(f"trade {trade.trade_id}: negative quantity {trade.quantity_kwh}")
        for bus in (trade.seller_bus, trade.buyer_bus):
            if bus is not None and bus not in known:
                raise ValueError(f"trade {trade.trade_id}: bus {bus} is not an in-service bus")
            if bus is not None:
                buses.add(bus)

    work = copy.deepcopy(net)
    bus_list = sorted(buses)
    schedule = _Schedule(trades, bus_list, hours)
    load_idx = (
        pp.create_loads(work, bus_list, p_mw=0.0, q_mvar=0.0, name=TRADE_LOAD_NAME)
        if bus_list
        else []
    )
    # The trades' power is fixed (not voltage dependent), whatever the net's own loads do.
    for column in ("const_z_percent", "const_i_percent", "const_z_p_percent", "const_i_p_percent"):
        if column in work.load:
            work.load.loc[load_idx, column] = 0.0
    power_flows = 0
    base: _State | None = None

    def run_scheduled(warm: bool) -> _State:
        nonlocal power_flows
        if bus_list:
            work.load.loc[load_idx, "p_mw"] = schedule.withdrawal_mw()
        power_flows += 1
        return _state(work, _run(work, warm=warm))

    def run_base() -> _State:
        nonlocal power_flows
        base_net = copy.deepcopy(net)
        power_flows += 1
        return _state(base_net, _run(base_net, warm=False))

    state = run_scheduled(warm=False)
    findings = _findings(state, None, limits)
    if findings:
        base = run_base()
        findings = _findings(state, base, limits)
    first_findings = findings
    while any(f.caused_by_trades for f in findings) and power_flows < max_power_flows:
        caused = [f for f in findings if f.caused_by_trades]
        if not state.converged:
            progressed = _curtail_half(schedule, policy, caused[0].describe())
        else:
            progressed = _curtail_by_sensitivity(work, schedule, caused, policy)
            if not progressed:
                # The linear model sees no trade that helps (strong non-linearity); fall back to
                # halving, which always ends at the base case.
                progressed = _curtail_half(schedule, policy, caused[0].describe())
        if not progressed:
            break
        state = run_scheduled(warm=state.converged)
        findings = _findings(state, base, limits)
        if findings and base is None:
            base = run_base()
            findings = _findings(state, base, limits)

    feasible = state.converged and not any(f.caused_by_trades for f in findings)
    violations = tuple(
        Violation(f.kind, f.element, f.value, f.limit, f.caused_by_trades) for f in first_findings
    )
    curtailments = tuple(
        Curtailment(t.trade_id, schedule.curtailed[i], "; ".join(schedule.reasons[i]))
        for i, t in enumerate(schedule.trades)
        if schedule.curtailed[i] > 0
    )
    confirmed = {
        t.trade_id: schedule.quantity[i] - schedule.curtailed[i]
        for i, t in enumerate(schedule.trades)
    }
    vm = list(state.vm_pu.values())
    return GridCheckOutcome(
        feasible=feasible,
        power_flows=power_flows,
        min_vm_pu=min(vm) if vm else math.nan,
        max_vm_pu=max(vm) if vm else math.nan,
        max_line_loading_percent=max(state.line_loading.values(), default=0.0)
        if state.converged
        else math.nan,
        max_trafo_loading_percent=max(state.trafo_loading.values(), default=0.0)
        if state.converged
        else math.nan,
        losses_kw=state.losses_kw,
        violations=violations,
        curtailments=curtailments,
        confirmed_kwh=confirmed,
        bus_vm_pu=dict(state.vm_pu),
        line_loading_percent=dict(state.line_loading),
        duration_s=time.perf_counter() - started,
    )
