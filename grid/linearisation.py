"""The Newton-Raphson Jacobian of a converged pandapower net, factorised once for sensitivities.

Loss factors (``grid.losses``) and network use (``grid.network_use``) are both linear responses
of a converged AC power flow to a small change of active power injected at one bus, the slack
(external grid) taking up the difference. Both come from the same matrix: with the state
``x = [Va(pv, pq); Vm(pq)]`` and the mismatch ``[P(pv, pq); Q(pq)]`` the power flow's Jacobian
``J = d mismatch / dx`` gives ``dx = J^-1 e_i dP`` for an injection ``dP`` at bus ``i`` (one
sparse LU, reused for every right-hand side and for the transposed solves of adjoint methods).

Pure numerics over the solver's arrays: no Django, no database. ``linearise`` takes a net that
``pandapower.runpp`` has just solved (its ``_ppc`` holds that solution).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from pandapower.pypower.dSbus_dV import dSbus_dV
from pandapower.pypower.idx_brch import BR_R, BR_X, F_BUS
from scipy.sparse.linalg import SuperLU, splu


@dataclass(frozen=True, slots=True)
class Linearisation:
    """One converged operating point, ready for sensitivity solves.

    ``row_of_bus[b]`` is the Jacobian row of the active-power equation of pandapower bus ``b``,
    or -1 for a slack (reference) bus; ``internal_bus[b]`` is its solver bus. Branch arrays are
    in the solver's branch order: ``yf`` gives from-side currents, ``f_bus`` the from-side bus and
    ``branch_z`` the series impedance magnitude (p.u. of ``base_mva``).
    """

    lu: SuperLU
    ybus: sp.csr_matrix
    v: np.ndarray  # complex bus voltages of the solution, internal order
    pvpq: np.ndarray
    pq: np.ndarray
    row_of_bus: dict[int, int]
    internal_bus: dict[int, int]
    base_mva: float
    # Branch data, for flow sensitivities (network use); None where the source has none.
    yf: sp.csr_matrix | None = None
    f_bus: np.ndarray | None = None
    branch_z: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        *,
        ybus: sp.spmatrix,
        v: np.ndarray,
        pv: np.ndarray,
        pq: np.ndarray,
        base_mva: float,
        internal_bus: dict[int, int],
        yf: sp.spmatrix | None = None,
        f_bus: np.ndarray | None = None,
        branch_z: np.ndarray | None = None,
        jacobian: sp.spmatrix | None = None,
    ) -> Linearisation:
        """Factorise the Jacobian at the solved voltages ``v`` (solver arrays, any source);
        ``jacobian`` is the power flow's own at ``v`` when the caller has it."""
        pv = np.asarray(pv, dtype=np.int64)
        pq = np.asarray(pq, dtype=np.int64)
        pvpq = np.r_[pv, pq]
        ybus = sp.csr_matrix(ybus)
        if jacobian is None:
            ds_dvm, ds_dva = dSbus_dV(ybus, v)
            jacobian = sp.vstack(
                [
                    sp.hstack([ds_dva[pvpq][:, pvpq].real, ds_dvm[pvpq][:, pq].real]),
                    sp.hstack([ds_dva[pq][:, pvpq].imag, ds_dvm[pq][:, pq].imag]),
                ],
                format="csc",
            )
        row_of_internal = np.full(len(v), -1, dtype=np.int64)
        row_of_internal[pvpq] = np.arange(len(pvpq))
        return cls(
            lu=splu(sp.csc_matrix(jacobian)),
            ybus=ybus,
            v=v,
            pvpq=pvpq,
            pq=pq,
            row_of_bus={b: int(row_of_internal[i]) for b, i in internal_bus.items()},
            internal_bus=dict(internal_bus),
            base_mva=float(base_mva),
            yf=None if yf is None else sp.csr_matrix(yf),
            f_bus=None if f_bus is None else np.asarray(f_bus, dtype=np.int64),
            branch_z=None if branch_z is None else np.asarray(branch_z, dtype=float),
        )

    @property
    def size(self) -> int:
        return len(self.pvpq) + len(self.pq)

    def injection_rhs(self, buses: list[int]) -> np.ndarray:
        """Right-hand sides for 1 kW injected at each of ``buses`` (one column each)."""
        rhs = np.zeros((self.size, len(buses)))
        for col, bus in enumerate(buses):
            row = self.row_of_bus.get(bus, -1)
            if row >= 0:
                # 1 kW = 1e-3 MW = 1e-3 / baseMVA p.u.
                rhs[row, col] = 1e-3 / self.base_mva
        return rhs

    def total_injection_gradient(self) -> np.ndarray:
        """d(sum of all bus active injections)/dx over ``x = [Va(pv, pq); Vm(pq)]``.

        The column sums of ``Re(dSbus/dVa)`` and ``Re(dSbus/dVm)`` (pypower's ``dSbus_dV``),
        in closed form: with ``I = Ybus V``, ``u = conj(Ybus)^T V`` and ``n = V / |V|``,
        ``1^T dS/dVa = j (V conj(I) - u conj(V))`` and ``1^T dS/dVm = u conj(n) + conj(I) n``.
        """
        v = self.v
        current = self.ybus @ v
        u = self.ybus.conj().T @ v
        unit = v / np.abs(v)
        d_va = np.real(1j * (v * np.conj(current) - u * np.conj(v)))
        d_vm = np.real(u * np.conj(unit) + np.conj(current) * unit)
        gradient: np.ndarray = np.r_[d_va[self.pvpq], d_vm[self.pq]]
        return gradient

    def state_change(self, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dVa, dVm) at every internal bus for each right-hand side column."""
        n_bus = len(self.v)
        columns = rhs.shape[1]
        dva = np.zeros((n_bus, columns))
        dvm = np.zeros((n_bus, columns))
        if columns:
            solution = self.lu.solve(rhs)
            dva[self.pvpq] = solution[: len(self.pvpq)]
            dvm[self.pq] = solution[len(self.pvpq) :]
        return dva, dvm


def linearise(net: Any) -> Linearisation:
    """Factorise the Jacobian of the power flow ``net`` has just converged to (pandapower).

    Raises ``ValueError`` if the net has no converged solution.
    """
    if not getattr(net, "converged", False) or "_ppc" not in net or net._ppc is None:
        raise ValueError("the net has no converged power flow (run pandapower.runpp first)")
    internal = net._ppc["internal"]
    v = np.asarray(internal["V"])
    bus_lookup = np.asarray(net._pd2ppc_lookups["bus"])
    internal_bus: dict[int, int] = {}
    for bus in net.bus.index[net.bus.in_service.astype(bool)]:
        ppc_bus = int(bus_lookup[int(bus)])
        if 0 <= ppc_bus < len(v):
            internal_bus[int(bus)] = ppc_bus
    branch = internal["branch"]
    return Linearisation.build(
        ybus=internal["Ybus"],
        v=v,
        pv=internal["pv"],
        pq=internal["pq"],
        base_mva=float(internal["baseMVA"]),
        internal_bus=internal_bus,
        yf=internal["Yf"],
        f_bus=np.real(branch[:, F_BUS]).astype(np.int64),
        branch_z=np.hypot(np.real(branch[:, BR_R]), np.real(branch[:, BR_X])),
    )
