"""AC power flow on a network prepared once: admittance matrices built by pandapower, then a
Newton-Raphson of our own for each schedule, so one interval costs a millisecond or two instead of
pandapower's 40 ms of table handling.

``CompiledNetwork.from_pandapower(net)`` runs pandapower once on a copy of the net with every load
and static generator at zero. What that run leaves in ``net._ppc["internal"]`` is all a power flow
needs: the bus admittance matrix ``Ybus``, the branch matrices ``Yf``/``Yt`` (from-side and
to-side currents ``I = Y V``), the bus types (slack, PV, PQ), the per-unit base and the bus
injections of everything we do not set ourselves (generators, wards, storage). Bus-bus switches
are already fused there, out-of-service elements are gone, so the solver never sees them.

``solve(sbus, start)`` is the standard polar Newton-Raphson (the mismatch
``S = V conj(Ybus V) - Sbus``, the Jacobian as pandapower's ``dSbus_dV`` defines it, on a
sparsity pattern built once), started from the given voltages (a warm start: a curtailment
round changes a few injections, so one or two iterations) or from the empty network's voltages.
The compiled network holds no state between calls, so results never depend on what ran before,
and threads may share it.

Results follow pandapower's own definitions exactly (``pandapower.results_branch``):

* bus voltage ``vm_pu = |V|``;
* branch current in kA ``|I| * baseMVA / (sqrt(3) * vn_kv)`` on each side;
* line loading ``max(i_from, i_to) / (max_i_ka * df * parallel) * 100``;
* two-winding transformer loading ``max(i_hv * vn_hv_kv, i_lv * vn_lv_kv) * sqrt(3) / sn_mva *
  100 / (parallel * df)`` (pandapower's default ``trafo_loading="current"``);
* three-winding transformer loading: the largest of its three windings, each against its own
  ``sn_*_mva``;
* losses: the sum over all branches of ``Re(V_f conj(I_f) + V_t conj(I_t))``.

Sensitivities (``PowerFlowState.sensitivities``) linearise voltages and loadings around a
converged state: ``J [dVa; dVm] = [dP; dQ]`` for one kW more injected at a bus gives ``dV`` at
every bus, and ``dI = Y dV`` on every branch.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandapower as pp
import scipy.sparse as sp
from pandapower.pypower.idx_brch import F_BUS, T_BUS
from pandapower.pypower.idx_bus import BASE_KV
from scipy.sparse.linalg import splu

SQRT3 = math.sqrt(3.0)
# Mismatch tolerance in p.u. of baseMVA (pandapower's default tolerance_mva is 1e-8 MVA).
TOLERANCE = 1e-8
MAX_ITERATIONS = 20


class PowerFlowError(ValueError):
    """The network cannot be prepared (its empty case does not converge, or it has no slack)."""


@dataclass(frozen=True, slots=True)
class Branch:
    """A line, transformer or three-winding transformer whose loading has a limit."""

    element_type: str  # "line" | "trafo" | "trafo3w"
    index: int  # pandapower index
    own_limit_percent: float  # the element's max_loading_percent, NaN when the net has none


@dataclass(frozen=True, slots=True)
class ElementTable:
    """Loads or static generators of the net: where they are and what they are rated."""

    index: np.ndarray  # pandapower indices
    bus: np.ndarray  # pandapower bus of each element
    ppci_bus: np.ndarray  # the solver's bus of each element (-1: out of service)
    p_mw: np.ndarray  # rated active power (p_mw * scaling), 0 when out of service
    q_mvar: np.ndarray
    type: tuple[str, ...]
    profile: tuple[str, ...]  # SimBench's profile name, "" where the net has none

    def position(self) -> dict[int, int]:
        return {int(idx): pos for pos, idx in enumerate(self.index)}


def _elements(net: Any, table: str, bus_lookup: np.ndarray, n_ppci: int) -> ElementTable:
    frame = net[table]
    if len(frame) == 0:
        empty = np.zeros(0)
        return ElementTable(
            empty.astype(np.int64),
            empty.astype(np.int64),
            empty.astype(np.int64),
            empty,
            empty,
            (),
            (),
        )
    buses = frame.bus.to_numpy(dtype=np.int64)
    bus_ok = net.bus.in_service.reindex(buses).fillna(False).to_numpy(dtype=bool)
    live = frame.in_service.to_numpy(dtype=bool) & bus_ok
    ppci = np.where(live, bus_lookup[buses], -1)
    ppci = np.where(ppci < n_ppci, ppci, -1)
    scaling = frame.scaling.to_numpy(dtype=float) if "scaling" in frame else 1.0
    p = np.where(ppci >= 0, frame.p_mw.to_numpy(dtype=float) * scaling, 0.0)
    q = np.where(ppci >= 0, frame.q_mvar.to_numpy(dtype=float) * scaling, 0.0)

    def text(column: str) -> tuple[str, ...]:
        if column not in frame:
            return ("",) * len(frame)
        return tuple("" if v is None or v != v else str(v) for v in frame[column])  # NaN != NaN

    return ElementTable(
        index=frame.index.to_numpy(dtype=np.int64),
        bus=buses,
        ppci_bus=ppci.astype(np.int64),
        p_mw=np.nan_to_num(p),
        q_mvar=np.nan_to_num(q),
        type=text("type"),
        profile=text("profile"),
    )


def _own_limits(frame: Any) -> np.ndarray:
    if "max_loading_percent" not in frame:
        return np.full(len(frame), math.nan)
    return np.asarray(frame.max_loading_percent.to_numpy(dtype=float), dtype=float)


class CompiledNetwork:
    """A pandapower net prepared for many power flows (see the module docstring).

    Never changes the caller's net. Build it once per network (``from_pandapower``) and reuse it:
    the grid check of every interval shares it, and ``solve`` only reads it.
    """

    def __init__(self, net: Any) -> None:
        work = copy.deepcopy(net)
        work.pop("profiles", None)
        for table in ("load", "sgen"):
            if len(work[table]):
                work[table]["p_mw"] = 0.0
                work[table]["q_mvar"] = 0.0
        try:
            pp.runpp(work, numba=False)
        except pp.LoadflowNotConverged:
            raise PowerFlowError(
                "the network does not converge even with every load and generator at zero"
            ) from None
        internal = work._ppc["internal"]
        self.net = net  # the caller's net, read only (for pandapower runs of a final state)
        self.base_mva = float(internal["baseMVA"])
        self.ybus = sp.csr_matrix(internal["Ybus"])
        self.yf = sp.csr_matrix(internal["Yf"])
        self.yt = sp.csr_matrix(internal["Yt"])
        self.ref = np.asarray(internal["ref"], dtype=np.int64)
        self.pv = np.asarray(internal["pv"], dtype=np.int64)
        self.pq = np.asarray(internal["pq"], dtype=np.int64)
        self.pvpq = np.r_[self.pv, self.pq]
        self.v0 = np.asarray(internal["V"], dtype=complex).copy()
        self.sbus_fixed = np.asarray(internal["Sbus"], dtype=complex).copy()
        self.n_bus = len(self.v0)
        branch = internal["branch"]
        self.f_bus = branch[:, F_BUS].real.astype(np.int64)
        self.t_bus = branch[:, T_BUS].real.astype(np.int64)
        base_kv = internal["bus"][:, BASE_KV].real
        lookups = work._pd2ppc_lookups
        bus_lookup = np.asarray(lookups["bus"], dtype=np.int64)
        self.bus_index = net.bus.index.to_numpy(dtype=np.int64)
        self.bus_in_service = net.bus.in_service.to_numpy(dtype=bool)
        ppci_of_bus = np.where(self.bus_in_service, bus_lookup[self.bus_index], -1)
        self.ppci_of_bus = np.where(ppci_of_bus < self.n_bus, ppci_of_bus, -1)
        self._ppci_by_bus = {
            int(b): int(p) for b, p in zip(self.bus_index, self.ppci_of_bus, strict=True)
        }
        self.loads = _elements(net, "load", bus_lookup, self.n_bus)
        self.sgens = _elements(net, "sgen", bus_lookup, self.n_bus)
        self.load_position = self.loads.position()
        self.sgen_position = self.sgens.position()
        # One pandapower bus per solver bus (the first, where bus-bus switches fused some), and
        # every in-service pandapower bus with its solver bus.
        live = self.ppci_of_bus >= 0
        self.live_bus_index = self.bus_index[live]
        self.live_ppci = self.ppci_of_bus[live]
        first: dict[int, int] = {}
        for bus, ppci in zip(self.live_bus_index.tolist(), self.live_ppci.tolist(), strict=True):
            first.setdefault(ppci, bus)
        self.solver_buses = np.asarray(sorted(first), dtype=np.int64)
        self.solver_bus_names = np.asarray([first[p] for p in self.solver_buses], dtype=np.int64)

        # ppc branch row -> ppci branch row (out-of-service branches are not in the ppci).
        branch_is = np.asarray(internal["branch_is"], dtype=bool)
        ppci_branch = np.where(branch_is, np.cumsum(branch_is) - 1, -1)
        branches: list[Branch] = []
        rows: list[tuple[int, int, int, float]] = []  # (monitored, ppci branch, side, factor)

        def add(
            element_type: str, index: int, own: float, parts: list[tuple[int, int, float]]
        ) -> None:
            live = [(ppci_branch[r], side, k) for r, side, k in parts if ppci_branch[r] >= 0]
            if not live:
                return
            position = len(branches)
            branches.append(Branch(element_type, int(index), float(own)))
            rows.extend((position, int(b), side, float(k)) for b, side, k in live)

        ranges = lookups["branch"]
        if "line" in ranges:
            start, _ = ranges["line"]
            line = net.line
            rating = (line.max_i_ka * line.df * line.parallel).to_numpy(dtype=float)
            for pos, (idx, own) in enumerate(zip(line.index, _own_limits(line), strict=True)):
                row = start + pos
                kv = base_kv[self.f_bus[ppci_branch[row]]] if ppci_branch[row] >= 0 else 1.0
                k = 100.0 * self.base_mva / (SQRT3 * kv) / rating[pos] if rating[pos] > 0 else 0.0
                add("line", idx, own, [(row, 0, k), (row, 1, k)])
        if "trafo" in ranges:
            start, _ = ranges["trafo"]
            trafo = net.trafo
            for pos, idx in enumerate(trafo.index):
                row = start + pos
                b = ppci_branch[row]
                sn = (
                    float(trafo.sn_mva.iat[pos])
                    * float(trafo.parallel.iat[pos])
                    * float(trafo.df.iat[pos])
                )
                k_hv = k_lv = 0.0
                if b >= 0 and sn > 0:
                    k_hv = (
                        100.0
                        * self.base_mva
                        * float(trafo.vn_hv_kv.iat[pos])
                        / (base_kv[self.f_bus[b]] * sn)
                    )
                    k_lv = (
                        100.0
                        * self.base_mva
                        * float(trafo.vn_lv_kv.iat[pos])
                        / (base_kv[self.t_bus[b]] * sn)
                    )
                add("trafo", idx, _own_limits(trafo)[pos], [(row, 0, k_hv), (row, 1, k_lv)])
        if "trafo3w" in ranges and len(net.trafo3w):
            start, _ = ranges["trafo3w"]
            t3 = net.trafo3w
            n3 = len(t3)
            for pos, idx in enumerate(t3.index):
                parts = []
                # pandapower lays out a trafo3w as three branches to a star point: hv (from
                # side at the hv bus), then mv and lv (to side at their buses).
                for offset, side, vn, sn in (
                    (0, 0, t3.vn_hv_kv.iat[pos], t3.sn_hv_mva.iat[pos]),
                    (n3, 1, t3.vn_mv_kv.iat[pos], t3.sn_mv_mva.iat[pos]),
                    (2 * n3, 1, t3.vn_lv_kv.iat[pos], t3.sn_lv_mva.iat[pos]),
                ):
                    row = start + offset + pos
                    b = ppci_branch[row]
                    if b < 0 or not sn > 0:
                        continue
                    end = self.f_bus[b] if side == 0 else self.t_bus[b]
                    parts.append(
                        (row, side, 100.0 * self.base_mva * float(vn) / (base_kv[end] * float(sn)))
                    )
                add("trafo3w", idx, _own_limits(t3)[pos], parts)
        self.branches = tuple(branches)
        self.branch_names = tuple(f"{b.element_type} {b.index}" for b in branches)
        self.branch_is_line = np.asarray([b.element_type == "line" for b in branches], dtype=bool)
        self.branch_own_limit = np.asarray([b.own_limit_percent for b in branches], dtype=float)
        row_table = np.asarray(rows, dtype=float).reshape(-1, 4)
        self._row_branch = row_table[:, 0].astype(np.int64)
        self._row_ppci = row_table[:, 1].astype(np.int64)
        self._row_side = row_table[:, 2].astype(np.int64)
        self._row_factor = row_table[:, 3]
        self._jacobian_pattern()

    @classmethod
    def from_pandapower(cls, net: Any) -> CompiledNetwork:
        return cls(net)

    # --- injections ---------------------------------------------------------------------------

    def ppci_bus(self, bus: int) -> int:
        """The solver's bus for a pandapower bus; -1 if it is out of service or unknown."""
        return self._ppci_by_bus.get(int(bus), -1)

    def sbus(self, bus_injection_mw: np.ndarray, bus_injection_mvar: np.ndarray) -> np.ndarray:
        """Per-unit bus injections: the fixed part plus ``P + jQ`` (MW, Mvar) per solver bus."""
        return self.sbus_fixed + (bus_injection_mw + 1j * bus_injection_mvar) / self.base_mva

    # --- the power flow -----------------------------------------------------------------------

    def _jacobian_pattern(self) -> None:
        """The Jacobian's sparsity, fixed by Ybus: each iteration only computes its values.

        Building it with sparse slicing and stacking costs ten times the solve on an LV net, so
        the entries of ``dS/dVa`` and ``dS/dVm`` (pandapower's ``dSbus_dV``, written out per
        Ybus entry) are computed as flat arrays and dropped into a CSC matrix whose structure is
        computed here once.
        """
        ybus = sp.coo_matrix(self.ybus + sp.eye(self.n_bus, format="csr") * 0.0)
        ybus.sum_duplicates()
        # Every diagonal entry is needed (dS/dV has the bus's own current on it).
        diagonal = sp.coo_matrix(sp.eye(self.n_bus))
        rows = np.r_[ybus.row, diagonal.row]
        cols = np.r_[ybus.col, diagonal.col]
        data = np.r_[ybus.data, np.zeros(self.n_bus, dtype=complex)]
        merged = sp.coo_matrix((data, (rows, cols)), shape=ybus.shape).tocsr()
        merged.sum_duplicates()
        coo = merged.tocoo()
        self._y_row, self._y_col, self._y_val = coo.row, coo.col, coo.data
        self._y_diag = self._y_row == self._y_col
        npvpq = len(self.pvpq)
        p_row = np.full(self.n_bus, -1, dtype=np.int64)
        p_row[self.pvpq] = np.arange(npvpq)
        q_row = np.full(self.n_bus, -1, dtype=np.int64)
        q_row[self.pq] = npvpq + np.arange(len(self.pq))
        va_col = p_row  # the angle of every PV and PQ bus is an unknown
        vm_col = q_row  # the magnitude of every PQ bus is an unknown
        blocks = []  # (selection of Ybus entries, J rows, J cols, which part)
        for part, row_of, col_of in (
            ("dP/dVa", p_row, va_col),
            ("dP/dVm", p_row, vm_col),
            ("dQ/dVa", q_row, va_col),
            ("dQ/dVm", q_row, vm_col),
        ):
            r, c = row_of[self._y_row], col_of[self._y_col]
            keep = (r >= 0) & (c >= 0)
            blocks.append((part, np.flatnonzero(keep), r[keep], c[keep]))
        self._blocks = [(part, sel) for part, sel, _, _ in blocks]
        j_rows = np.concatenate([r for _, _, r, _ in blocks])
        j_cols = np.concatenate([c for _, _, _, c in blocks])
        size = npvpq + len(self.pq)
        order = sp.csc_matrix(
            (np.arange(1, len(j_rows) + 1, dtype=float), (j_rows, j_cols)), shape=(size, size)
        )
        self._j_perm = order.data.astype(np.int64) - 1
        self._j_indices = order.indices
        self._j_indptr = order.indptr
        self._j_shape = (size, size)

    def _jacobian(self, v: np.ndarray) -> sp.csc_matrix:
        current = self.ybus @ v
        vm = np.abs(v)
        v_norm = v / np.where(vm > 0, vm, 1.0)
        r, c, y = self._y_row, self._y_col, self._y_val
        # dS/dVm = diag(V) conj(Ybus diag(Vnorm)) + conj(diag(I)) diag(Vnorm)
        ds_dvm = v[r] * np.conj(y * v_norm[c]) + np.where(
            self._y_diag, np.conj(current[r]) * v_norm[r], 0.0
        )
        # dS/dVa = 1j diag(V) conj(diag(I) - Ybus diag(V))
        ds_dva = 1j * v[r] * (np.where(self._y_diag, np.conj(current[r]), 0.0) - np.conj(y * v[c]))
        parts = {
            "dP/dVa": ds_dva.real,
            "dP/dVm": ds_dvm.real,
            "dQ/dVa": ds_dva.imag,
            "dQ/dVm": ds_dvm.imag,
        }
        values = np.concatenate([parts[part][sel] for part, sel in self._blocks])
        return sp.csc_matrix(
            (values[self._j_perm], self._j_indices, self._j_indptr), shape=self._j_shape
        )

    def solve(self, sbus: np.ndarray, start: PowerFlowState | None = None) -> PowerFlowState:
        """Newton-Raphson for the injections ``sbus`` (p.u.), from ``start``'s voltages if it
        converged, else from the empty network's; never raises for divergence."""
        v = (start.v if start is not None and start.converged else self.v0).copy()
        vm = np.abs(v)
        va = np.angle(v)
        # PV and slack buses hold their set point magnitude.
        vm[self.ref] = np.abs(self.v0[self.ref])
        vm[self.pv] = np.abs(self.v0[self.pv])
        v = vm * np.exp(1j * va)
        npvpq = len(self.pvpq)
        converged = False
        iterations = 0
        for iterations in range(MAX_ITERATIONS + 1):
            mismatch = v * np.conj(self.ybus @ v) - sbus
            f = np.r_[mismatch[self.pvpq].real, mismatch[self.pq].imag]
            if not np.all(np.isfinite(f)):
                break
            if np.max(np.abs(f), initial=0.0) < TOLERANCE:
                converged = True
                break
            if iterations == MAX_ITERATIONS:
                break
            try:
                dx = splu(self._jacobian(v)).solve(-f)
            except RuntimeError:  # a singular Jacobian: voltage collapse
                break
            va[self.pvpq] += dx[:npvpq]
            vm[self.pq] += dx[npvpq:]
            v = vm * np.exp(1j * va)
        return PowerFlowState(self, v, converged, iterations)


@dataclass(frozen=True, slots=True, eq=False)
class PowerFlowState:
    """One power flow's result: complex bus voltages and what follows from them.

    Indexed by the solver's buses and branches; ``vm_pu``, ``loading_percent`` and ``losses_mw``
    translate to pandapower's indices and definitions. Modules that need more than the check does
    (loss allocation, network charges, short-circuit strength) read ``v`` together with the
    network's ``ybus``/``yf``/``yt``/``f_bus``/``t_bus`` (solver indices; ``ppci_bus`` maps a
    pandapower bus) and ``sensitivities``; ``network.net`` is the pandapower net itself.
    """

    network: CompiledNetwork
    v: np.ndarray
    converged: bool
    iterations: int
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def vm_pu(self) -> dict[int, float]:
        """Voltage magnitude per in-service pandapower bus."""
        if not self.converged:
            return {}
        net = self.network
        vm = np.abs(self.v)
        return {
            int(b): float(vm[p])
            for b, p in zip(net.bus_index, net.ppci_of_bus, strict=True)
            if p >= 0
        }

    def branch_currents(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-unit currents (from side, to side) of every solver branch."""
        if "currents" not in self._cache:
            self._cache["currents"] = (self.network.yf @ self.v, self.network.yt @ self.v)
        result: tuple[np.ndarray, np.ndarray] = self._cache["currents"]
        return result

    def loading_percent(self) -> np.ndarray:
        """Loading of each ``network.branches`` entry, in percent."""
        if not self.converged:
            return np.full(len(self.network.branches), math.nan)
        net = self.network
        i_from, i_to = self.branch_currents()
        magnitude = np.where(
            net._row_side == 0, np.abs(i_from[net._row_ppci]), np.abs(i_to[net._row_ppci])
        )
        loading = np.zeros(len(net.branches))
        np.maximum.at(loading, net._row_branch, magnitude * net._row_factor)
        return loading

    def losses_mw(self) -> float:
        if not self.converged:
            return math.nan
        net = self.network
        i_from, i_to = self.branch_currents()
        s = self.v[net.f_bus] * np.conj(i_from) + self.v[net.t_bus] * np.conj(i_to)
        return float(np.sum(s.real)) * net.base_mva

    def jacobian(self) -> sp.csc_matrix:
        """The Newton-Raphson Jacobian at this state: rows ``[P(pv, pq); Q(pq)]``, columns
        ``[Va(pv, pq); Vm(pq)]`` (``network.pv``, ``network.pq``), as ``grid.linearisation``."""
        return self.network._jacobian(self.v)

    def bus_injection_kw(self) -> np.ndarray:
        """Active power injected at each solver bus in this state, kW (the slack's included)."""
        injection: np.ndarray = (self.v * np.conj(self.network.ybus @ self.v)).real
        return injection * self.network.base_mva * 1000.0

    def sensitivities(self, buses: np.ndarray) -> Sensitivities:
        """Linearised effect of 1 kW more injected at each solver bus in ``buses``."""
        return Sensitivities(self, buses)


class Sensitivities:
    """d vm / dP and d loading / dP around a converged state, one column per injection bus.

    The slack and PV buses hold their voltage magnitude; an injection at the slack has no effect.
    """

    def __init__(self, state: PowerFlowState, buses: np.ndarray) -> None:
        net = state.network
        v = state.v
        npvpq = len(net.pvpq)
        row_of_bus = np.full(net.n_bus, -1, dtype=np.int64)
        row_of_bus[net.pvpq] = np.arange(npvpq)
        rhs = np.zeros((npvpq + len(net.pq), len(buses)))
        for col, bus in enumerate(buses):
            row = row_of_bus[bus] if bus >= 0 else -1
            if row >= 0:
                rhs[row, col] = 1e-3 / net.base_mva  # 1 kW in p.u.
        solution = splu(net._jacobian(v)).solve(rhs) if len(buses) else rhs
        dva = np.zeros((net.n_bus, len(buses)))
        dvm = np.zeros((net.n_bus, len(buses)))
        dva[net.pvpq] = solution[:npvpq]
        dvm[net.pq] = solution[npvpq:]
        self.dvm = dvm
        vm = np.abs(v)
        dv = v[:, None] * (1j * dva + dvm / np.maximum(vm, 1e-9)[:, None])
        i_from, i_to = state.branch_currents()
        di_from = net.yf @ dv
        di_to = net.yt @ dv
        # d|I| = Re(conj(I) dI) / |I| on the side of each monitored row, scaled like the loading;
        # the branch's loading follows its largest side.
        current = np.where(net._row_side == 0, i_from[net._row_ppci], i_to[net._row_ppci])
        delta = np.where(
            (net._row_side == 0)[:, None], di_from[net._row_ppci], di_to[net._row_ppci]
        )
        magnitude = np.abs(current)
        d_mag = np.real(np.conj(current)[:, None] * delta) / np.maximum(magnitude, 1e-12)[:, None]
        value = magnitude * net._row_factor
        best = np.full(len(net.branches), -1)
        best_value = np.full(len(net.branches), -np.inf)
        for row, branch in enumerate(net._row_branch):
            if value[row] > best_value[branch]:
                best_value[branch] = value[row]
                best[branch] = row
        self.dloading = np.zeros((len(net.branches), len(buses)))
        has = best >= 0
        self.dloading[has] = d_mag[best[has]] * net._row_factor[best[has]][:, None]

    def voltage(self, ppci_bus: int) -> np.ndarray:
        result: np.ndarray = self.dvm[ppci_bus]
        return result

    def loading(self, branch: int) -> np.ndarray:
        result: np.ndarray = self.dloading[branch]
        return result
