"""How much of the network a transfer between two buses uses: impedance-weighted flow factors.

For network charges that follow the network (a community's "by use" rule). Pure numerics over a
solved pandapower net; no Django, no database.

Method:

1. Flow factors. From the Jacobian of the solved power flow (``grid.linearisation``), 1 kW more
   injected at bus ``i`` and taken by the slack (the external grid, i.e. the feeder head) changes
   the active power entering every line and transformer by ``F[l, i]`` kW: the AC counterpart of
   a power transfer distribution factor (PTDF). A transfer from bus ``s`` to bus ``b`` is an
   injection at ``s`` and a withdrawal at ``b``, so by superposition its factors are
   ``F[:, s] - F[:, b]`` and the slack drops out. On a radial LV feeder a factor is about 1 on
   every branch of the path between the two buses and 0 elsewhere; in a meshed net the transfer
   splits over the parallel paths.
2. Use. Each branch is weighted by its series impedance ``|z_l|`` in per unit of the system base
   (a line's grows with its length, a transformer counts with its short-circuit impedance), so a
   transfer's use ``sum_l |z_l| * |F[l, s] - F[l, b]|`` is its impedance-weighted distance in the
   spirit of the MW-mile method (Shirmohammadi et al., "Evaluation of transmission network
   capacity use for wheeling transactions", IEEE Trans. Power Systems 4(4), 1989, where the
   weight of a branch is its length). Two meter points on one bus use nothing, a neighbour one
   short cable, a transfer across a transformer the transformer and both feeders.
3. Unit. Uses are divided by the mean use from the feeder head to the network's connection buses
   (``grid.networks.connection_buses``), so one unit of use is what the average meter point uses
   to take energy from the outside grid. A community's tariff per kWh per unit of use then costs
   the average grid purchase the same as a flat fee of that size.

The factors are taken once per network version at its base-case power flow, not per interval,
so the charge a bidder is shown before bidding is the charge booked when the trade is confirmed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandapower as pp

from grid.linearisation import Linearisation, linearise
from grid.networks import connection_buses


@dataclass(frozen=True, slots=True)
class NetworkUse:
    """Use factors of one network version; ``pair_use``/``head_use`` are in units of use."""

    position: dict[int, int]  # bus -> its column in ``weighted``
    # Impedance-weighted flow factors: column of bus ``buses[j]`` = |z_l| * F[l, j], per branch.
    weighted: np.ndarray
    unit: float  # the mean feeder-head use (p.u. impedance) that counts as one unit
    head: np.ndarray  # each bus's use from the feeder head, in units, by position

    def _column(self, bus: int | None) -> np.ndarray:
        if bus is None:
            return np.zeros(self.weighted.shape[0])  # the feeder head (the outside grid)
        try:
            column: np.ndarray = self.weighted[:, self.position[bus]]
        except KeyError:
            raise ValueError(f"bus {bus} is not an in-service bus of the network") from None
        return column

    def pair_use(self, seller_bus: int | None, buyer_bus: int | None) -> float:
        """Units of use of a transfer from ``seller_bus`` to ``buyer_bus`` (None = outside grid)."""
        if seller_bus == buyer_bus:
            return 0.0
        delta = self._column(seller_bus) - self._column(buyer_bus)
        return float(np.abs(delta).sum()) / self.unit

    def pair_uses(self, pairs: list[tuple[int | None, int | None]]) -> np.ndarray:
        """``pair_use`` of many transfers at once (the bench's 1,000 prosumers in one product)."""
        padded = np.c_[self.weighted, np.zeros(self.weighted.shape[0])]
        head = padded.shape[1] - 1
        pos = self.position
        sellers = np.array([head if s is None else pos[s] for s, _ in pairs], dtype=np.int64)
        buyers = np.array([head if b is None else pos[b] for _, b in pairs], dtype=np.int64)
        if not len(pairs):
            return np.zeros(0)
        uses: np.ndarray = np.abs(padded[:, sellers] - padded[:, buyers]).sum(axis=0) / self.unit
        return uses

    def head_use(self, bus: int | None) -> float:
        """Units of use of a transfer between ``bus`` and the feeder head (pool trades)."""
        if bus is None:
            return 0.0
        try:
            return float(self.head[self.position[bus]])
        except KeyError:
            raise ValueError(f"bus {bus} is not an in-service bus of the network") from None


def network_use(net: Any) -> NetworkUse:
    """The use factors of ``net`` at its base-case power flow (run on a copy).

    Raises ``ValueError`` if the base case does not converge or the net has no connection bus.
    """
    work = copy.deepcopy(net)
    try:
        pp.runpp(work, numba=False)
    except pp.LoadflowNotConverged:
        raise ValueError("the base case power flow does not converge") from None
    return network_use_at(linearise(work), connection_buses(net))


def network_use_at(linear: Linearisation, connection: list[int]) -> NetworkUse:
    """The use factors at the solved state ``linear`` (see the module docstring)."""
    if linear.yf is None or linear.f_bus is None or linear.branch_z is None:
        raise ValueError("network use needs the branch data of the solved state")
    buses = sorted(linear.row_of_bus)
    dva, dvm = linear.state_change(linear.injection_rhs(buses))
    v = linear.v
    # dV = V (j dVa + dVm / |V|) for each column; branch power S_f = V_f conj(Yf V).
    dv = v[:, None] * (1j * dva + dvm / np.abs(v)[:, None])
    f_bus, yf = linear.f_bus, linear.yf
    i_from = yf @ v
    di_from = yf @ dv
    ds_from = dv[f_bus] * np.conj(i_from)[:, None] + v[f_bus][:, None] * np.conj(di_from)
    # Per kW injected: the RHS was 1 kW, the flow change is in p.u. of baseMVA.
    factors = np.real(ds_from) * linear.base_mva * 1000.0
    weighted = linear.branch_z[:, None] * factors
    position = {bus: j for j, bus in enumerate(buses)}
    heads = [float(np.abs(weighted[:, position[b]]).sum()) for b in connection if b in position]
    unit = float(np.mean(heads)) if heads else 0.0
    if not unit > 0:
        raise ValueError("the network has no connection bus behind any branch")
    head = np.abs(weighted).sum(axis=0) / unit
    return NetworkUse(position=position, weighted=weighted, unit=unit, head=head)
