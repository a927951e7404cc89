"""The grid check of an interval: what actually flows, and curtailment of what can be controlled.

A pure function of a network and a schedule (no Django, no database, no trades or money):
``grid_check(network, schedule, limits=..., policy=...)``.

The physical picture of the interval
    Each meter point on the network (``Placement``) stands for the network elements it represents:
    the loads and static generators it names (``elements``, e.g. ``("load 3", "sgen 1")``), or,
    naming none, ``share`` of every load and static generator on its bus. A meter point with
    schedule entries replaces its elements by its scheduled net power, the sum of its entries
    (``ScheduleEntry.kw``: > 0 exported, < 0 imported). A meter point without entries, and every
    element no meter point represents, follows the network's profile at ``schedule.when``
    (``grid.profiles``). Reactive power of a meter point is ``|P| * tan(acos(power_factor))``
    drawn from the grid (a lagging household or an inverter absorbing reactive power, the usual
    setting against voltage rise); at the default power factor 1.0 it is zero.

Limits
    Every in-service bus voltage inside ``[v_min_pu, v_max_pu]``; every line, transformer and
    three-winding transformer loading at or below the element's own ``max_loading_percent`` where
    the network has one, else the community's limit for lines or transformers.

Who causes a violation
    Only exports (generation curtailment at the seller's inverter) and purchases declared
    flexible (battery or EV charging, heat pumps) can be controlled; they are the ``flexible``
    entries. When the scheduled state breaks a limit, the check also solves the uncontrollable
    state: every flexible entry at zero, which is where curtailing everything would end. A limit
    that this state breaks as well needs grid action (``needs_grid_action``): it is recorded and
    shown to the manager, and curtailment only aims back at the uncontrollable state's own value
    (``max(limit, value)`` for upper limits, ``min(limit, value)`` for the lower voltage limit), so
    inflexible demand below the band curtails nothing. A violation counts as caused by the
    flexible entries (``caused_by_trades``) when they push the value past that target by more than
    a tolerance (``VOLTAGE_TOLERANCE_PU``, ``LOADING_TOLERANCE_PERCENT``).

Curtailment
    For each caused violation, the linearised sensitivity of the violated quantity to one kW more
    injected at each bus comes from the converged power flow's Jacobian
    (``grid.powerflow.Sensitivities``). Curtailing an export lowers the injection at its bus,
    curtailing a flexible purchase raises it; the entries whose curtailment helps are taken in
    policy order: the most effective first (SENSITIVITY) or the latest submitted first
    (LAST_ON_FIRST_OFF, Elecbay's "last on, first off"), each by at most its remaining power. The
    amount aims ``excess * (1 + CURTAIL_MARGIN) + margin`` past the violation; violations are
    handled worst first in one pass, each crediting what the others already took (by the same
    linear model), then the power flow runs again. A scheduled state that does not converge, or a
    linear model that finds no helpful entry, curtails half of the remaining flexible power
    (largest or latest first); with everything curtailed the network is at its uncontrollable
    state, so the loop ends.

System strength
    Given the network's short-circuit power per bus (``short_circuit``: IEC 60909 maximum,
    ``grid.strength.short_circuit_mva``, computed once per network version by the caller), every
    bus's inverter-connected export is the sum of the net exports (``max(0, net power)``) of the
    meter points on it; its short-circuit ratio ``S''k / export`` must stay at or above
    ``limits.min_short_circuit_ratio``, i.e. the export at or below ``S''k / minimum`` (the export
    the bus can take). A bus above it is a ``system_strength`` violation, classified like the
    others against the uncontrollable state (every flexible entry at zero: what the meter points'
    baselines export alone). Its curtailment takes the excess (plus ``STRENGTH_MARGIN_KW``) off
    the flexible exports at that bus only, with the reason "system strength": in proportion to
    their power (SENSITIVITY: every export at a bus moves its ratio alike) or latest submitted
    first (LAST_ON_FIRST_OFF). A round that curtails for system strength runs the power flow
    again before any other violation is handled, so the voltage and loading curtailments see the
    exports that are left. Without ``short_circuit`` system strength is not checked.

Infeasible
    The check never calls an infeasible state feasible: if the uncontrollable state does not
    converge, or curtailment runs out of power flows (``max_power_flows``), the outcome is
    infeasible with ``held_reason`` saying why; the caller holds the interval for the manager.

Determinism
    Ties break by ``ScheduleEntry.key`` (and by ``submitted_at`` first for last on, first off), so
    the same schedule gives the same curtailments whatever order or database ids it came with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from grid.policy import CurtailmentPolicy
from grid.powerflow import CompiledNetwork, PowerFlowState
from grid.profiles import NetworkProfiles, standard_profiles
from grid.strength import DEFAULT_MIN_SCR, StrengthEvent, hostable_export_kw

__all__ = [
    "Curtailment",
    "CurtailmentPolicy",
    "GridCheckOutcome",
    "GridLimits",
    "GridNetwork",
    "Placement",
    "Schedule",
    "ScheduleEntry",
    "StateSummary",
    "Violation",
    "grid_check",
]

VOLTAGE_TOLERANCE_PU = 0.001
LOADING_TOLERANCE_PERCENT = 0.1
# The linear estimate is good to a few percent on LV feeders; aiming 5 % plus a small absolute
# margin past the limit makes the next power flow land inside the limit nearly always.
CURTAIL_MARGIN = 0.05
VOLTAGE_MARGIN_PU = 0.0005
LOADING_MARGIN_PERCENT = 0.2
# System strength is linear in the exports: one watt past the limit lands inside it.
STRENGTH_MARGIN_KW = 0.001
_STRENGTH_TOLERANCE_KW = 1e-6
# Below this an entry's effect on a violated quantity is numerical noise (p.u. or % per kW).
_SENSITIVITY_EPS = 1e-9
# Curtailment smaller than this (kW) is not worth a line on a member's statement.
_MIN_CURTAIL_KW = 1e-6


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a meter point is on the network and which of its elements it stands for."""

    meter_point: str
    bus: int
    elements: tuple[str, ...] = ()  # "load <index>" / "sgen <index>"; empty: a share of its bus's
    share: float = 1.0  # with no elements named: the part of its bus's loads and sgens it is
    power_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One part of a meter point's scheduled net power in the interval."""

    key: str  # the caller's name for it (for curtailments and tie-breaks): stable, not a db id
    meter_point: str
    kw: float  # > 0 exported into the grid, < 0 imported from it
    flexible: bool  # may be curtailed (exports, and purchases declared flexible)
    submitted_at: datetime | None = None  # for "last on, first off"


@dataclass(frozen=True, slots=True)
class Schedule:
    """What every placed meter point does in the interval starting ``when``."""

    when: datetime
    placements: tuple[Placement, ...]
    entries: tuple[ScheduleEntry, ...]


@dataclass(frozen=True, slots=True)
class GridLimits:
    """The community's operating limits (EN 50160 voltage band by default). Elements with their
    own ``max_loading_percent`` use it instead of the loading limits here."""

    v_min_pu: float = 0.90
    v_max_pu: float = 1.10
    max_line_loading_percent: float = 100.0
    max_trafo_loading_percent: float = 100.0
    min_short_circuit_ratio: float = DEFAULT_MIN_SCR


@dataclass(frozen=True, slots=True)
class GridNetwork:
    """A network ready for grid checks: the compiled power flow and its elements' profiles."""

    compiled: CompiledNetwork
    profiles: NetworkProfiles

    @classmethod
    def from_pandapower(cls, net: Any, profiles: NetworkProfiles | None = None) -> GridNetwork:
        compiled = CompiledNetwork.from_pandapower(net)
        return cls(compiled, profiles or standard_profiles(compiled))


@dataclass(frozen=True, slots=True)
class Violation:
    """A limit broken in the scheduled (uncurtailed) state."""

    # "overvoltage" | "undervoltage" | "line_overload" | "trafo_overload" | "trafo3w_overload"
    # | "system_strength" | "not_converged"
    kind: str
    element: str  # e.g. "bus 17", "line 3", "trafo 0", "network"
    # p.u. for voltages, percent for loadings, the short-circuit ratio for system strength, nan
    # for not_converged
    value: float
    limit: float  # the limit that applies to the element (system strength: the minimum ratio)
    caused_by_trades: bool  # the flexible entries push it past what curtailment can reach
    needs_grid_action: bool  # broken even with every export and flexible purchase curtailed


@dataclass(frozen=True, slots=True)
class Curtailment:
    """Power taken off one schedule entry, with the reasons (merged over iterations)."""

    key: str
    curtailed_kw: float
    reason: str
    strength_kw: float = 0.0  # the part curtailed for system strength


@dataclass(frozen=True, slots=True)
class StateSummary:
    """One power flow's figures, by pandapower element index (empty when not converged)."""

    converged: bool
    min_vm_pu: float
    max_vm_pu: float
    max_line_loading_percent: float
    max_trafo_loading_percent: float
    losses_kw: float
    bus_vm_pu: dict[int, float]
    line_loading_percent: dict[int, float]
    branch_loading_percent: dict[str, float]  # "line 3", "trafo 0", "trafo3w 1"


@dataclass(frozen=True, slots=True)
class GridCheckOutcome:
    """What the check found and did. ``final`` is what flows once the curtailments apply;
    ``state`` is its converged power flow (voltages, currents) for the modules that build on the
    check (loss allocation, network charges, system strength), and ``injection_kw`` the final
    net power per meter point. ``strength_events`` are the buses whose scheduled export broke
    the minimum short-circuit ratio (before curtailment, like ``violations``)."""

    feasible: bool
    held_reason: str  # why an infeasible interval is held; "" when feasible
    power_flows: int
    violations: tuple[Violation, ...]
    curtailments: tuple[Curtailment, ...]
    scheduled: StateSummary
    final: StateSummary
    state: PowerFlowState
    injection_kw: dict[str, float]
    duration_s: float
    strength_events: tuple[StrengthEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class _Finding:
    kind: str
    element_type: str  # "bus" | "line" | "trafo" | "trafo3w" | "network"
    index: int  # pandapower index
    position: int  # the solver's bus, or the position in CompiledNetwork.branches
    value: float
    limit: float
    target: float  # what curtailment aims at
    caused: bool
    needs_grid_action: bool
    short_circuit_mva: float = math.nan  # system strength only
    min_ratio: float = math.nan  # system strength only

    @property
    def is_strength(self) -> bool:
        return self.kind == "system_strength"

    @property
    def ratio(self) -> float:
        """System strength: the short-circuit ratio of the bus's export (value, in kW)."""
        return self.short_circuit_mva * 1000.0 / self.value if self.value > 0 else math.inf

    def strength_event(self) -> StrengthEvent:
        return StrengthEvent(
            self.index, self.short_circuit_mva, self.value, self.ratio, self.min_ratio, self.limit
        )

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
            return "power flow did not converge with the schedule"
        if self.is_strength:
            return self.strength_event().describe()
        unit = " p.u." if self.element_type == "bus" else " %"
        digits = 3 if self.element_type == "bus" else 1
        op = "<" if self.direction < 0 else ">"
        text = f"{self.kind.replace('_', ' ')} at {self.element}: {self.value:.{digits}f}{unit} "
        text += f"{op} {self.limit:.{digits}f}"
        if abs(self.target - self.limit) > 1e-12:
            text += f" (without the curtailable part {self.target:.{digits}f})"
        return text


class _Model:
    """The schedule as arrays over the solver's buses, and what each power flow found."""

    def __init__(
        self,
        network: GridNetwork,
        schedule: Schedule,
        limits: GridLimits,
        short_circuit: Mapping[int, float] | None = None,
    ) -> None:
        compiled = network.compiled
        self.compiled = compiled
        self.limits = limits
        placements: dict[str, Placement] = {}
        for placement in schedule.placements:
            if placement.meter_point in placements:
                raise ValueError(f"meter point {placement.meter_point} is placed twice")
            if compiled.ppci_bus(placement.bus) < 0:
                raise ValueError(
                    f"meter point {placement.meter_point}: bus {placement.bus} is not an "
                    "in-service bus"
                )
            if not 0.0 < placement.power_factor <= 1.0:
                raise ValueError(f"meter point {placement.meter_point}: power factor out of (0, 1]")
            placements[placement.meter_point] = placement
        entries = sorted(schedule.entries, key=lambda e: e.key)
        keys = [e.key for e in entries]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate schedule entry keys")
        for entry in entries:
            if entry.meter_point not in placements:
                raise ValueError(
                    f"entry {entry.key}: meter point {entry.meter_point} is not placed"
                )
            if not math.isfinite(entry.kw):
                raise ValueError(f"entry {entry.key}: power is not a number")
        self.entries = entries
        active = sorted({e.meter_point for e in entries})
        self.meter_points = active
        mp_position = {mp: i for i, mp in enumerate(active)}
        self.entry_mp = np.asarray([mp_position[e.meter_point] for e in entries], dtype=np.int64)
        self.mp_bus = np.asarray(
            [compiled.ppci_bus(placements[mp].bus) for mp in active], dtype=np.int64
        )
        self.mp_tan = np.asarray(
            [math.tan(math.acos(placements[mp].power_factor)) for mp in active], dtype=float
        )
        self.kw = np.asarray([e.kw for e in entries], dtype=float)
        self.flexible = np.asarray([e.flexible for e in entries], dtype=bool)
        self.curtailed = np.zeros(len(entries))
        self.strength_curtailed = np.zeros(len(entries))
        self.reasons: list[list[str]] = [[] for _ in entries]
        self._strength_setup(placements, short_circuit)

        # Elements represented by meter points that have entries: their profile power is removed.
        load_share = np.zeros(len(compiled.loads.index))
        sgen_share = np.zeros(len(compiled.sgens.index))
        loads = compiled.load_position
        sgens = compiled.sgen_position
        bus_share: dict[int, float] = {}  # meter points sharing their bus's elements
        for mp in active:
            placement = placements[mp]
            if placement.elements:
                for name in placement.elements:
                    kind, _, index = name.partition(" ")
                    table, share = (
                        ((loads, load_share) if kind == "load" else (sgens, sgen_share))
                        if kind in ("load", "sgen")
                        else (None, None)
                    )
                    if (
                        table is None
                        or share is None
                        or not index.isdigit()
                        or int(index) not in table
                    ):
                        raise ValueError(f"meter point {mp}: no network element {name!r}")
                    share[table[int(index)]] += 1.0
            else:
                bus_share[placement.bus] = bus_share.get(placement.bus, 0.0) + placement.share
        for bus, share_of_bus in bus_share.items():
            load_share[compiled.loads.bus == bus] += share_of_bus
            sgen_share[compiled.sgens.bus == bus] += share_of_bus
        powers = network.profiles.at(schedule.when)
        load_keep = 1.0 - np.clip(load_share, 0.0, 1.0)
        sgen_keep = 1.0 - np.clip(sgen_share, 0.0, 1.0)
        p = np.zeros(compiled.n_bus)
        q = np.zeros(compiled.n_bus)
        live_l = compiled.loads.ppci_bus >= 0
        live_s = compiled.sgens.ppci_bus >= 0
        np.add.at(p, compiled.loads.ppci_bus[live_l], -(powers.load_mw * load_keep)[live_l])
        np.add.at(q, compiled.loads.ppci_bus[live_l], -(powers.load_mvar * load_keep)[live_l])
        np.add.at(p, compiled.sgens.ppci_bus[live_s], (powers.sgen_mw * sgen_keep)[live_s])
        np.add.at(q, compiled.sgens.ppci_bus[live_s], (powers.sgen_mvar * sgen_keep)[live_s])
        self.background_mw = p
        self.background_mvar = q
        self.power_flows = 0

        # Limits per monitored branch: its own, else the community's.
        own = compiled.branch_own_limit
        default = np.where(
            compiled.branch_is_line,
            limits.max_line_loading_percent,
            limits.max_trafo_loading_percent,
        )
        self.branch_limit = np.where(np.isfinite(own) & (own > 0), own, default)

    def _strength_setup(
        self, placements: dict[str, Placement], short_circuit: Mapping[int, float] | None
    ) -> None:
        """The buses whose exports are held to the minimum short-circuit ratio."""
        self.strength_on = short_circuit is not None
        min_ratio = self.limits.min_short_circuit_ratio
        if self.strength_on and not (math.isfinite(min_ratio) and min_ratio > 0):
            raise ValueError(f"the minimum short-circuit ratio must be positive, got {min_ratio}")
        mp_buses = [placements[mp].bus for mp in self.meter_points]
        buses = sorted({b for b in mp_buses if short_circuit and b in short_circuit})
        position = {b: i for i, b in enumerate(buses)}
        # Meter point -> its bus's position (-1: a bus without a short-circuit power).
        self.mp_strength_bus = np.asarray([position.get(b, -1) for b in mp_buses], dtype=np.int64)
        self.strength_buses = buses
        self.strength_sc_mva = np.asarray(
            [short_circuit[b] for b in buses] if short_circuit else [], dtype=float
        )
        self.strength_hostable_kw = np.asarray(
            [hostable_export_kw(s, min_ratio) for s in self.strength_sc_mva], dtype=float
        )
        self.entry_export = (self.kw > 0) & self.flexible  # what system strength may curtail

    def bus_export_kw(self, entry_kw: np.ndarray) -> np.ndarray:
        """The inverter-connected export at each strength bus: its meter points' net exports."""
        export = np.zeros(len(self.strength_buses))
        mp_kw = self.meter_point_kw(entry_kw)
        on = self.mp_strength_bus >= 0
        np.add.at(export, self.mp_strength_bus[on], np.maximum(mp_kw[on], 0.0))
        return export

    def strength_findings(self, entry_kw: np.ndarray) -> list[_Finding]:
        """Every bus whose export ``entry_kw`` puts above what it can take (module docstring)."""
        if not self.strength_on or not self.strength_buses:
            return []
        export = self.bus_export_kw(entry_kw)
        hostable = self.strength_hostable_kw
        over = np.flatnonzero(export > hostable)
        if not len(over):
            return []
        base = self.bus_export_kw(self.uncontrollable_kw())
        found = []
        for i in over.tolist():
            target = max(float(hostable[i]), float(base[i]))
            found.append(
                _Finding(
                    "system_strength",
                    "bus",
                    self.strength_buses[i],
                    i,
                    float(export[i]),
                    float(hostable[i]),
                    target,
                    float(export[i]) > target + _STRENGTH_TOLERANCE_KW,
                    target > float(hostable[i]),
                    float(self.strength_sc_mva[i]),
                    self.limits.min_short_circuit_ratio,
                )
            )
        return found

    def curtail_strength(self, caused: list[_Finding], policy: CurtailmentPolicy) -> bool:
        """Take each weak bus's excess export off its flexible exports (module docstring)."""
        progressed = False
        entry_bus = self.mp_strength_bus[self.entry_mp]
        for finding in sorted(caused, key=lambda f: f.index):
            remaining = np.where(self.entry_export, np.abs(self.kw) - self.curtailed, 0.0)
            candidates = [
                i
                for i in np.flatnonzero(entry_bus == finding.position).tolist()
                if remaining[i] > _MIN_CURTAIL_KW
            ]
            need = finding.excess + STRENGTH_MARGIN_KW
            total = float(remaining[candidates].sum()) if candidates else 0.0
            if total <= 0:
                continue
            reason = finding.describe()
            if policy is CurtailmentPolicy.SENSITIVITY:
                # Every export at the bus moves its ratio alike: each gives up the same share.
                share = min(1.0, need / total)
                takes = [(i, float(remaining[i]) * share) for i in candidates]
            else:
                takes = []
                for i in self.order(candidates, remaining, policy):
                    if need <= 0:
                        break
                    take = min(float(remaining[i]), need)
                    takes.append((i, take))
                    need -= take
            for i, take in takes:
                before = self.curtailed[i]
                if self.curtail(i, take, reason):
                    self.strength_curtailed[i] += self.curtailed[i] - before
                    progressed = True
        return progressed

    def remaining_kw(self) -> np.ndarray:
        remaining: np.ndarray = np.sign(self.kw) * np.maximum(np.abs(self.kw) - self.curtailed, 0.0)
        return remaining

    def meter_point_kw(self, entry_kw: np.ndarray) -> np.ndarray:
        total = np.zeros(len(self.meter_points))
        np.add.at(total, self.entry_mp, entry_kw)
        return total

    def solve(self, entry_kw: np.ndarray, start: PowerFlowState | None = None) -> PowerFlowState:
        mp_kw = self.meter_point_kw(entry_kw)
        p = self.background_mw.copy()
        q = self.background_mvar.copy()
        np.add.at(p, self.mp_bus, mp_kw / 1000.0)
        np.add.at(q, self.mp_bus, -np.abs(mp_kw) * self.mp_tan / 1000.0)
        self.power_flows += 1
        return self.compiled.solve(self.compiled.sbus(p, q), start)

    def uncontrollable_kw(self) -> np.ndarray:
        return np.where(self.flexible, 0.0, self.kw)

    def findings(self, state: PowerFlowState, base: PowerFlowState | None) -> list[_Finding]:
        """Every limit broken in ``state``; classified against the uncontrollable ``base``."""
        if not state.converged:
            return [
                _Finding(
                    "not_converged",
                    "network",
                    0,
                    0,
                    math.nan,
                    math.nan,
                    math.nan,
                    base is None or base.converged,
                    False,
                )
            ]
        limits = self.limits
        vm = np.abs(state.v)
        base_vm = np.abs(base.v) if base is not None and base.converged else None
        found: list[_Finding] = []

        def add(
            kind: str,
            etype: str,
            index: int,
            position: int,
            value: float,
            limit: float,
            upper: bool,
            base_value: float | None,
        ) -> None:
            if not (value > limit if upper else value < limit):
                return
            target = limit
            if base_value is not None:
                target = max(limit, base_value) if upper else min(limit, base_value)
            # The tolerance only shields a violation the uncontrollable state has anyway from
            # power-flow noise; where that state is inside the limit, any violation is caused.
            tol = 0.0
            if target != limit:
                tol = VOLTAGE_TOLERANCE_PU if etype == "bus" else LOADING_TOLERANCE_PERCENT
            caused = (value > target + tol) if upper else (value < target - tol)
            needs_action = target != limit
            found.append(
                _Finding(kind, etype, index, position, value, limit, target, caused, needs_action)
            )

        compiled = self.compiled
        solver_vm = vm[compiled.solver_buses]
        broken = (solver_vm > limits.v_max_pu) | (solver_vm < limits.v_min_pu)
        for i in np.flatnonzero(broken).tolist():
            ppci, bus = int(compiled.solver_buses[i]), int(compiled.solver_bus_names[i])
            b = None if base_vm is None else float(base_vm[ppci])
            add("overvoltage", "bus", bus, ppci, float(vm[ppci]), limits.v_max_pu, True, b)
            add("undervoltage", "bus", bus, ppci, float(vm[ppci]), limits.v_min_pu, False, b)
        loading = state.loading_percent()
        base_loading = base.loading_percent() if base is not None and base.converged else None
        for position in np.flatnonzero(loading > self.branch_limit).tolist():
            branch = compiled.branches[position]
            b = None if base_loading is None else float(base_loading[position])
            add(
                f"{branch.element_type}_overload",
                branch.element_type,
                branch.index,
                position,
                float(loading[position]),
                float(self.branch_limit[position]),
                True,
                b,
            )
        return found

    def summary(self, state: PowerFlowState) -> StateSummary:
        if not state.converged:
            return StateSummary(False, math.nan, math.nan, math.nan, math.nan, math.nan, {}, {}, {})
        compiled = self.compiled
        vm = np.abs(state.v)
        # Every pandapower bus gets its solver bus's voltage (fused buses share one).
        bus_vm = dict(
            zip(compiled.live_bus_index.tolist(), vm[compiled.live_ppci].tolist(), strict=True)
        )
        loading = state.loading_percent()
        values = loading.tolist()
        branches = dict(zip(compiled.branch_names, values, strict=True))
        lines = {
            b.index: value
            for b, value, is_line in zip(
                compiled.branches, values, compiled.branch_is_line, strict=True
            )
            if is_line
        }
        trafos = loading[~compiled.branch_is_line]
        solver_vm = vm[compiled.solver_buses]
        return StateSummary(
            converged=True,
            min_vm_pu=float(solver_vm.min()) if len(solver_vm) else math.nan,
            max_vm_pu=float(solver_vm.max()) if len(solver_vm) else math.nan,
            max_line_loading_percent=max(lines.values(), default=0.0),
            max_trafo_loading_percent=float(trafos.max()) if len(trafos) else 0.0,
            losses_kw=state.losses_mw() * 1000.0,
            bus_vm_pu=bus_vm,
            line_loading_percent=lines,
            branch_loading_percent=branches,
        )

    # --- curtailment ------------------------------------------------------------------------

    def curtail(self, i: int, kw: float, reason: str) -> bool:
        left = abs(self.kw[i]) - self.curtailed[i]
        take = min(kw, left)
        if left <= _MIN_CURTAIL_KW or take <= 0:
            return False
        # Never leave a sliver behind that no meter would see.
        if left - take < _MIN_CURTAIL_KW:
            take = left
        self.curtailed[i] += take
        if reason not in self.reasons[i]:
            self.reasons[i].append(reason)
        return True

    def order(
        self, candidates: list[int], weight: np.ndarray, policy: CurtailmentPolicy
    ) -> list[int]:
        if policy is CurtailmentPolicy.LAST_ON_FIRST_OFF:

            def latest_first(i: int) -> tuple[float, str]:
                at = self.entries[i].submitted_at
                return (-(at.timestamp() if at is not None else -math.inf), self.entries[i].key)

            return sorted(candidates, key=latest_first)
        return sorted(candidates, key=lambda i: (-weight[i], self.entries[i].key))

    def curtail_half(self, policy: CurtailmentPolicy, reason: str) -> bool:
        """Half of the remaining flexible power: largest (SENSITIVITY: without a converged state
        the big injections are the likely cause) or latest entries first."""
        remaining = np.where(self.flexible, np.abs(self.kw) - self.curtailed, 0.0)
        live = [i for i in range(len(self.entries)) if remaining[i] > _MIN_CURTAIL_KW]
        need = float(remaining[live].sum()) / 2.0 if live else 0.0
        progressed = False
        for i in self.order(live, remaining, policy):
            if need <= 0:
                break
            take = min(float(remaining[i]), need)
            progressed = self.curtail(i, take, reason) or progressed
            need -= take
        return progressed

    def curtail_by_sensitivity(
        self, state: PowerFlowState, caused: list[_Finding], policy: CurtailmentPolicy
    ) -> bool:
        """One round of curtailment from the linearised model; False if nothing could be taken."""
        # One column per distinct bus, not per meter point: a thousand homes sit on a few dozen
        # buses, and the solve and the branch currents scale with the columns.
        buses, bus_of_mp = np.unique(self.mp_bus, return_inverse=True)
        sens = state.sensitivities(buses)
        entry_column = bus_of_mp[self.entry_mp]
        remaining = np.where(self.flexible, np.abs(self.kw) - self.curtailed, 0.0)
        planned = np.zeros(len(self.entries))
        sign = np.sign(self.kw)
        progressed = False
        # Worst first, relative to the size of the limit, so a 3 % overload outranks 0.01 p.u.
        for finding in sorted(
            caused, key=lambda f: (-f.excess / max(abs(f.target), 1e-9), f.element)
        ):
            if finding.element_type == "bus":
                per_bus = sens.voltage(finding.position)
                margin, unit = VOLTAGE_MARGIN_PU, "p.u./kW"
            else:
                per_bus = sens.loading(finding.position)
                margin, unit = LOADING_MARGIN_PERCENT, "%/kW"
            # Curtailing 1 kW of an export takes 1 kW of injection away at its bus; of a
            # flexible purchase, it adds 1 kW (less withdrawn).
            effect = finding.direction * per_bus[entry_column] * sign
            need = finding.excess * (1.0 + CURTAIL_MARGIN) + margin - float(planned @ effect)
            if need <= 0:
                continue
            candidates = [
                i
                for i in range(len(self.entries))
                if effect[i] > _SENSITIVITY_EPS and remaining[i] - planned[i] > _MIN_CURTAIL_KW
            ]
            for i in self.order(candidates, effect, policy):
                take = min(remaining[i] - planned[i], need / effect[i])
                planned[i] += take
                need -= take * effect[i]
                reason = f"{finding.describe()}; sensitivity {effect[i]:.3g} {unit}"
                progressed = self.curtail(i, take, reason) or progressed
                if need <= 0:
                    break
        return progressed


def grid_check(
    network: GridNetwork,
    schedule: Schedule,
    *,
    limits: GridLimits = GridLimits(),  # frozen, so one shared default is safe
    policy: CurtailmentPolicy = CurtailmentPolicy.SENSITIVITY,
    max_power_flows: int = 50,
    short_circuit: Mapping[int, float] | None = None,
) -> GridCheckOutcome:
    """Check the interval's schedule against the grid and curtail it until it is safe.

    See the module docstring for the rules. ``power_flows`` counts every power flow run,
    including the uncontrollable state, which runs only when the scheduled state breaks a limit.
    ``short_circuit`` (pandapower bus -> S''k in MVA) turns on the system-strength check at the
    buses it names. Raises ``ValueError`` for a placement on an unknown bus or element, an entry
    of an unplaced meter point, duplicate keys, a power that is not a number, or a minimum
    short-circuit ratio that is not positive.
    """
    started = time.perf_counter()
    model = _Model(network, schedule, limits, short_circuit)
    state = model.solve(model.kw)
    scheduled_state = state
    base: PowerFlowState | None = None
    findings = model.findings(state, None) + model.strength_findings(model.kw)
    held = ""
    if findings:
        base = model.solve(model.uncontrollable_kw(), state)
        if not base.converged:
            held = (
                "the power flow does not converge even with every export and flexible purchase "
                "curtailed: the network or the inflexible demand needs the manager"
            )
        else:
            findings = model.findings(state, base) + model.strength_findings(model.kw)
    first = findings
    if base is not None and not base.converged:
        # Nothing curtailment can reach is safe: report the schedule as it is.
        state = scheduled_state
    else:
        while any(f.caused for f in findings) and model.power_flows < max_power_flows:
            caused = [f for f in findings if f.caused and not f.is_strength]
            weak = [f for f in findings if f.caused and f.is_strength]
            if weak:
                # Exact in one round (linear in the exports); the flow violations are then
                # taken from the power flow of what is left.
                progressed = model.curtail_strength(weak, policy)
            elif not state.converged:
                progressed = model.curtail_half(policy, caused[0].describe())
            else:
                progressed = model.curtail_by_sensitivity(state, caused, policy)
                if not progressed:
                    # The linear model sees no entry that helps (strong non-linearity); halving
                    # always ends at the uncontrollable state.
                    progressed = model.curtail_half(policy, caused[0].describe())
            if not progressed:
                break
            remaining = model.remaining_kw()
            state = model.solve(remaining, state)
            findings = model.findings(state, base) + model.strength_findings(remaining)
        if any(f.caused for f in findings):
            held = (
                f"curtailment did not reach a safe state in {model.power_flows} power flows: "
                f"{next(f for f in findings if f.caused).describe()}"
            )
    feasible = not held and state.converged
    if not feasible and not held:
        held = "the power flow does not converge"
    violations = tuple(
        Violation(
            f.kind,
            f.element,
            f.ratio if f.is_strength else f.value,
            f.min_ratio if f.is_strength else f.limit,
            f.caused,
            f.needs_grid_action,
        )
        for f in first
    )
    curtailments = tuple(
        Curtailment(
            e.key,
            float(model.curtailed[i]),
            "; ".join(model.reasons[i]),
            float(model.strength_curtailed[i]),
        )
        for i, e in enumerate(model.entries)
        if model.curtailed[i] > 0
    )
    final_kw = model.meter_point_kw(model.remaining_kw())
    scheduled = model.summary(scheduled_state)
    return GridCheckOutcome(
        feasible=feasible,
        held_reason=held,
        power_flows=model.power_flows,
        violations=violations,
        curtailments=curtailments,
        scheduled=scheduled,
        final=scheduled if state is scheduled_state else model.summary(state),
        state=state,
        injection_kw={mp: float(kw) for mp, kw in zip(model.meter_points, final_kw, strict=True)},
        duration_s=time.perf_counter() - started,
        strength_events=tuple(f.strength_event() for f in first if f.is_strength),
    )
