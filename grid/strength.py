"""System strength: short-circuit power per bus, and the short-circuit ratio check of exports.

Pure functions over a pandapower net and plain data; no Django, no database.

Short-circuit power. ``short_circuit_mva`` runs pandapower's IEC 60909 short-circuit calculation
(``pandapower.shortcircuit.calc_sc``, three-phase fault, maximum case: voltage factor c_max,
minimum impedances) and returns the initial symmetrical short-circuit power ``S''k`` at every
in-service bus. It measures the strength of the network itself, so the static generators
(members' inverters) are taken out first: a short-circuit ratio compares the network's strength
with the inverters connected to it, and an inverter's own fault current (about its rated current)
adds little strength. An external grid without short-circuit data (SimBench's have none) is given
``DEFAULT_EXT_GRID_SC_MVA`` with ``DEFAULT_EXT_GRID_RX``, a medium-voltage network's typical
maximum (IEC 60909-4 examples, 20 kV, a few hundred MVA); it sits behind the LV transformer, whose
impedance dominates at LV buses either way. The result depends only on the network, so callers
cache it per network version.

Short-circuit ratio. In an interval, the inverter-connected export scheduled at bus ``b`` is
``E_b`` kW (every member export is inverter-connected: PV and batteries), and its short-circuit
ratio is ``SCR_b = S''k_b / E_b``. Where it is below the community's minimum, the export the bus
can take is ``H_b = S''k_b / minimum`` and ``E_b - H_b`` is curtailed from that bus's exports,
with the reason "system strength": in equal proportion (the sensitivity rule: every export at a
bus moves the ratio alike) or latest submitted first (last on, first off).
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import pandapower.shortcircuit as sc

from grid.policy import CurtailmentPolicy

K = TypeVar("K", bound=Hashable)

DEFAULT_MIN_SCR = 3.0
DEFAULT_EXT_GRID_SC_MVA = 300.0
DEFAULT_EXT_GRID_RX = 0.1
STRENGTH_REASON = "system strength"


def short_circuit_mva(net: Any) -> dict[int, float]:
    """IEC 60909 maximum three-phase short-circuit power (MVA) at every in-service bus.

    Works on a copy; raises ``ValueError`` when the calculation fails (no external grid, a
    table pandapower cannot use), with pandapower's reason in one line.
    """
    work = copy.deepcopy(net)
    if len(work.sgen):
        work.sgen["in_service"] = False
    ext = work.ext_grid
    for column, default in (
        ("s_sc_max_mva", DEFAULT_EXT_GRID_SC_MVA),
        ("rx_max", DEFAULT_EXT_GRID_RX),
    ):
        if column not in ext:
            ext[column] = default
        ext[column] = ext[column].astype(float).fillna(default)
    try:
        sc.calc_sc(work, case="max", fault="3ph", ip=False, ith=False)
    except Exception as exc:  # pandapower raises anything from KeyError to its own errors
        raise ValueError(
            f"short-circuit calculation failed: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    in_service = work.bus.index[work.bus.in_service.astype(bool)]
    result = work.res_bus_sc.skss_mw  # named _mw by pandapower; it is S''k in MVA
    return {
        int(bus): float(result.at[bus])
        for bus in in_service
        if bus in result.index and math.isfinite(result.at[bus])
    }


@dataclass(frozen=True, slots=True)
class Export(Generic[K]):
    """One inverter-connected export scheduled in the interval."""

    key: K
    bus: int
    kw: float
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class StrengthEvent:
    """A bus whose scheduled export broke the minimum short-circuit ratio."""

    bus: int
    short_circuit_mva: float
    export_kw: float
    ratio: float
    min_ratio: float
    hostable_kw: float

    def describe(self) -> str:
        return (
            f"{STRENGTH_REASON}: short-circuit ratio {self.ratio:.2f} < {self.min_ratio:g} at "
            f"bus {self.bus} (S''k {self.short_circuit_mva:.3f} MVA, export "
            f"{self.export_kw:.1f} kW, the bus can take {self.hostable_kw:.1f} kW)"
        )


@dataclass(frozen=True, slots=True)
class StrengthOutcome(Generic[K]):
    events: tuple[StrengthEvent, ...]
    curtailed_kw: dict[K, float]  # only the exports that were cut
    reasons: dict[K, str]


def hostable_export_kw(short_circuit: float, min_ratio: float = DEFAULT_MIN_SCR) -> float:
    """The most inverter export (kW) a bus of ``short_circuit`` MVA takes at ``min_ratio``."""
    return short_circuit * 1000.0 / min_ratio


def strength_check(
    short_circuit: Mapping[int, float],
    exports: Sequence[Export[K]],
    *,
    min_ratio: float = DEFAULT_MIN_SCR,
    policy: CurtailmentPolicy = CurtailmentPolicy.SENSITIVITY,
) -> StrengthOutcome[K]:
    """Curtail exports so that every bus keeps ``S''k / export >= min_ratio``.

    Raises ``ValueError`` for a non-positive minimum, a negative export or an export on a bus
    without a short-circuit power.
    """
    if not min_ratio > 0:
        raise ValueError(f"the minimum short-circuit ratio must be positive, got {min_ratio}")
    at_bus: dict[int, list[Export[K]]] = defaultdict(list)
    for export in exports:
        if export.kw < 0:
            raise ValueError(f"export {export.key!r}: negative power {export.kw}")
        if export.bus not in short_circuit:
            raise ValueError(f"export {export.key!r}: bus {export.bus} has no short-circuit power")
        at_bus[export.bus].append(export)
    events: list[StrengthEvent] = []
    curtailed: dict[K, float] = {}
    reasons: dict[K, str] = {}
    for bus in sorted(at_bus):
        total = sum(e.kw for e in at_bus[bus])
        s_sc = short_circuit[bus]
        hostable = hostable_export_kw(s_sc, min_ratio)
        if total <= hostable:
            continue
        event = StrengthEvent(bus, s_sc, total, s_sc * 1000.0 / total, min_ratio, hostable)
        events.append(event)
        excess = total - hostable
        if policy is CurtailmentPolicy.SENSITIVITY:
            # Every export at the bus moves its ratio alike: each gives up the same share.
            cuts = {e.key: e.kw * excess / total for e in at_bus[bus]}
        else:
            cuts = {}
            latest_first = sorted(at_bus[bus], key=lambda e: (e.submitted_at, str(e.key)))
            for export in reversed(latest_first):
                if excess <= 0:
                    break
                take = min(export.kw, excess)
                cuts[export.key] = take
                excess -= take
        for key, kw in cuts.items():
            if kw > 0:
                curtailed[key] = curtailed.get(key, 0.0) + kw
                reasons[key] = event.describe()
    return StrengthOutcome(tuple(events), curtailed, reasons)
