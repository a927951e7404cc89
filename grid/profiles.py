"""Demo load and PV profiles per connection bus, from SimBench's year of 15-minute values (offline).

A SimBench LV grid carries its own profiles (2016, a leap year: 366 days x 96 quarter-hours =
35,136 steps). Networks without profiles (CIGRE LV, Kerber, uploads) get their own loads scaled
by SimBench's standard household profile ``H0-A`` and their static generators by the PV profile
``PV5`` (both per unit of the element's rated power, as SimBench defines them).

Mapping time to a step: ``when`` is converted to UTC, and the step is
``(day_of_year - 1) * 96 + hour * 4 + minute // 15`` of that UTC day, wrapped at the profile's
length. So a given UTC quarter-hour maps to the same calendar position in any year; the 366th
day of a leap year uses SimBench's 31 December, and daylight saving plays no part because the
mapping is in UTC.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import simbench

from grid.networks import (
    REFERENCE_NETWORKS,
    _reference_template,
    connection_buses,
    reference_network,
)

STEPS_PER_DAY = 96
KW_STEP = Decimal("0.001")
# Any SimBench LV grid carries the standard profiles; rural1 is the smallest to load.
STANDARD_PROFILE_SOURCE = "1-LV-rural1--0-sw"
HOUSEHOLD_PROFILE = "H0-A_pload"
PV_PROFILE = "PV5"


@dataclass(frozen=True, slots=True)
class BusProfile:
    """Power at one connection bus for one quarter-hour, summed over the bus's loads and PV."""

    bus: int
    load_kw: Decimal
    pv_kw: Decimal


@dataclass(frozen=True, slots=True)
class _Profiles:
    load_bus: np.ndarray  # bus of each load column
    load_kw: np.ndarray  # steps x loads
    pv_bus: np.ndarray
    pv_kw: np.ndarray  # steps x PV sgens
    buses: tuple[int, ...]


def year_step(when: datetime, steps: int) -> int:
    """The profile step for ``when`` (aware), by UTC day of year and quarter-hour (see module)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("when must be timezone-aware (times are UTC in PeerGrid)")
    utc = when.astimezone(UTC)
    day = utc.timetuple().tm_yday - 1
    return (day * STEPS_PER_DAY + utc.hour * 4 + utc.minute // 15) % steps


@functools.cache
def _simbench_profiles(code: str) -> _Profiles:
    net = _reference_template(code)
    absolute = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
    loads = absolute[("load", "p_mw")]
    sgens = absolute[("sgen", "p_mw")]
    pv = net.sgen.index[net.sgen.type.astype(str).str.upper().str.contains("PV")]
    return _Profiles(
        load_bus=net.load.bus.loc[loads.columns].to_numpy(dtype=np.int64),
        load_kw=loads.to_numpy(dtype=float) * 1000.0,
        pv_bus=net.sgen.bus.loc[pv].to_numpy(dtype=np.int64),
        pv_kw=sgens[pv].to_numpy(dtype=float) * 1000.0,
        buses=tuple(connection_buses(net)),
    )


@functools.cache
def _standard_shapes() -> tuple[np.ndarray, np.ndarray]:
    profiles = _reference_template(STANDARD_PROFILE_SOURCE).profiles
    household = profiles["load"][HOUSEHOLD_PROFILE].to_numpy(dtype=float)
    pv = profiles["renewables"][PV_PROFILE].to_numpy(dtype=float)
    return household, pv


def _kw(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(KW_STEP)


def _snapshot(
    buses: list[int] | tuple[int, ...],
    load_bus: np.ndarray,
    load_kw: np.ndarray,
    pv_bus: np.ndarray,
    pv_kw: np.ndarray,
) -> dict[int, BusProfile]:
    load_sum = dict.fromkeys(buses, 0.0)
    pv_sum = dict.fromkeys(buses, 0.0)
    for bus, kw in zip(load_bus.tolist(), load_kw.tolist(), strict=True):
        if bus in load_sum:
            load_sum[bus] += kw
    for bus, kw in zip(pv_bus.tolist(), pv_kw.tolist(), strict=True):
        # PV at a bus no meter point can connect to is not part of any prosumer's profile.
        if bus in pv_sum:
            pv_sum[bus] += kw
    return {bus: BusProfile(bus, _kw(load_sum[bus]), _kw(pv_sum[bus])) for bus in buses}


def profile_snapshot_for_net(net: Any, when: datetime) -> dict[int, BusProfile]:
    """Fallback for a net without profiles: its loads x ``H0-A`` and its sgens x ``PV5``."""
    household, pv_shape = _standard_shapes()
    step = year_step(when, len(household))
    loads = net.load[net.load.in_service.astype(bool)]
    sgens = net.sgen[net.sgen.in_service.astype(bool)]
    load_kw = loads.p_mw.to_numpy(dtype=float) * loads.scaling.to_numpy(dtype=float) * 1000.0
    pv_kw = sgens.p_mw.to_numpy(dtype=float) * sgens.scaling.to_numpy(dtype=float) * 1000.0
    return _snapshot(
        connection_buses(net),
        loads.bus.to_numpy(dtype=np.int64),
        load_kw * household[step],
        sgens.bus.to_numpy(dtype=np.int64),
        pv_kw * pv_shape[step],
    )


def profile_snapshot(code: str, when: datetime) -> dict[int, BusProfile]:
    """Load and PV kW per connection bus of a reference network at ``when``'s quarter-hour.

    SimBench grids use their own profiles; the other reference networks use the fallback of
    ``profile_snapshot_for_net``. Unknown names raise ``NetworkInvalid`` (via the network lookup).
    """
    if code in REFERENCE_NETWORKS and REFERENCE_NETWORKS[code].has_profiles:
        profiles = _simbench_profiles(code)
        step = year_step(when, profiles.load_kw.shape[0])
        return _snapshot(
            profiles.buses,
            profiles.load_bus,
            profiles.load_kw[step],
            profiles.pv_bus,
            profiles.pv_kw[step],
        )
    if code not in REFERENCE_NETWORKS:
        reference_network(code)  # raises NetworkInvalid with the list of known names
    # The fallback only reads the net, so the cached template needs no copy.
    return profile_snapshot_for_net(_reference_template(code), when)
