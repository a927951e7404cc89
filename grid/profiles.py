"""What every load and static generator of a network does at a given quarter-hour (offline data).

A network's elements that no member represents follow a profile, never their rating around the
clock:

* SimBench grids use their own profiles (2016, a leap year: 366 days x 96 quarter-hours = 35,136
  steps): a load's active power is its ``<profile>_pload`` x ``p_mw``, its reactive power
  ``<profile>_qload`` x ``q_mvar``; a generator's active power is its renewables profile x
  ``p_mw`` (SimBench's own ``get_absolute_values`` rule).
* Every other network (CIGRE LV, Kerber, uploads without profiles) uses SimBench's standard
  household profile ``H0-A`` for its loads and the PV profile ``PV5`` for its static generators,
  both per unit of the element's rating, so each element is scaled to its own size; reactive
  power follows active power (the element's own power factor is kept).
* An upload can bring its own profiles as CSV (``profiles_from_csv``): per element, multiples of
  its rating; elements the file does not name follow the standard profiles.

Mapping time to a step: ``when`` is converted to UTC, and the step is
``(day_of_year - 1) * 96 + hour * 4 + minute // 15`` of that UTC day, wrapped at the profile's
length. So a given UTC quarter-hour maps to the same calendar position in any year; the 366th
day of a leap year uses SimBench's 31 December, and daylight saving plays no part because the
mapping is in UTC.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import simbench

from grid.networks import REFERENCE_NETWORKS, _reference_template
from grid.powerflow import CompiledNetwork, ElementTable

STEPS_PER_DAY = 96
STEPS_PER_YEAR = 366 * STEPS_PER_DAY  # SimBench's 2016
# SimBench's data set whose profile tables every SimBench grid's profiles come from.
STANDARD_PROFILE_DATA = "1-complete_data-mixed-all-0-sw"
HOUSEHOLD_PROFILE = "H0-A_pload"
PV_PROFILE = "PV5"
# A profile value is a multiple of the element's rating; beyond this it is a typo, not a load.
MAX_PROFILE_FACTOR = 10.0
MAX_PROFILE_CSV_CHARS = 20_000_000


class ProfilesInvalid(ValueError):  # noqa: N818 - the domain name reads better than "...Error"
    """An uploaded profile file cannot be used: the message says where and why, in one line."""


def year_step(when: datetime, steps: int) -> int:
    """The profile step for ``when`` (aware), by UTC day of year and quarter-hour (see module)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("when must be timezone-aware (times are UTC in PeerGrid)")
    utc = when.astimezone(UTC)
    day = utc.timetuple().tm_yday - 1
    return (day * STEPS_PER_DAY + utc.hour * 4 + utc.minute // 15) % steps


@functools.cache
def standard_shapes() -> tuple[np.ndarray, np.ndarray]:
    """SimBench's ``H0-A`` household and ``PV5`` PV shapes, per unit of rating, a year each.

    Read as two columns of SimBench's profile tables (about a second), not by building a
    SimBench grid (all of its CSV tables: ten times longer, for every worker that starts).
    """
    folder = Path(simbench.__file__).parent / "networks" / STANDARD_PROFILE_DATA
    household = pd.read_csv(folder / "LoadProfile.csv", sep=";", usecols=[HOUSEHOLD_PROFILE])
    pv = pd.read_csv(folder / "RESProfile.csv", sep=";", usecols=[PV_PROFILE])
    return household[HOUSEHOLD_PROFILE].to_numpy(dtype=float), pv[PV_PROFILE].to_numpy(dtype=float)


@dataclass(frozen=True, slots=True)
class ElementPowers:
    """Active and reactive power (MW, Mvar; consumption for loads, generation for static
    generators) of every load and static generator, in ``CompiledNetwork``'s table order."""

    load_mw: np.ndarray
    load_mvar: np.ndarray
    sgen_mw: np.ndarray
    sgen_mvar: np.ndarray


class NetworkProfiles:
    """A year of per-unit shapes and, per element, which shape scales its active and reactive
    power. ``source`` says where they came from (for the manager's page)."""

    def __init__(
        self,
        *,
        shapes: np.ndarray,
        load_p: np.ndarray,
        load_q: np.ndarray,
        sgen_p: np.ndarray,
        sgen_q: np.ndarray,
        network: CompiledNetwork,
        source: str,
    ) -> None:
        self.shapes = shapes  # steps x columns
        self._load_p, self._load_q, self._sgen_p, self._sgen_q = load_p, load_q, sgen_p, sgen_q
        self._loads = network.loads
        self._sgens = network.sgens
        self.source = source

    def at(self, when: datetime) -> ElementPowers:
        row = self.shapes[year_step(when, self.shapes.shape[0])]
        return ElementPowers(
            load_mw=row[self._load_p] * self._loads.p_mw,
            load_mvar=row[self._load_q] * self._loads.q_mvar,
            sgen_mw=row[self._sgen_p] * self._sgens.p_mw,
            sgen_mvar=row[self._sgen_q] * self._sgens.q_mvar,
        )


def standard_profiles(network: CompiledNetwork) -> NetworkProfiles:
    """Loads x ``H0-A``, static generators x ``PV5`` (reactive power with active power)."""
    household, pv = standard_shapes()
    shapes = np.column_stack([household, pv])
    loads = np.zeros(len(network.loads.index), dtype=np.int64)
    sgens = np.ones(len(network.sgens.index), dtype=np.int64)
    return NetworkProfiles(
        shapes=shapes,
        load_p=loads,
        load_q=loads,
        sgen_p=sgens,
        sgen_q=sgens,
        network=network,
        source=f"standard household {HOUSEHOLD_PROFILE.split('_')[0]} and PV {PV_PROFILE}",
    )


def simbench_profiles(code: str, network: CompiledNetwork) -> NetworkProfiles:
    """The SimBench grid's own profiles for the elements of ``network`` (built from that grid).

    An element whose profile name is missing from the tables follows the standard profiles.
    """
    profiles = _reference_template(code).profiles
    household, pv = standard_shapes()
    columns: list[np.ndarray] = [household, pv]
    position: dict[str, int] = {}

    def column(table: str, name: str, fallback: int) -> int:
        key = f"{table}/{name}"
        if key not in position:
            frame = profiles.get(table)
            if frame is None or name not in frame:
                return fallback
            position[key] = len(columns)
            columns.append(frame[name].to_numpy(dtype=float))
        return position[key]

    def pick(elements: ElementTable, table: str, suffix: str, fallback: int) -> np.ndarray:
        return np.asarray(
            [
                column(table, f"{name}{suffix}", fallback) if name else fallback
                for name in elements.profile
            ],
            dtype=np.int64,
        )

    load_p = pick(network.loads, "load", "_pload", 0)
    load_q = pick(network.loads, "load", "_qload", 0)
    sgen_p = pick(network.sgens, "renewables", "", 1)
    return NetworkProfiles(
        shapes=np.column_stack(columns),
        load_p=load_p,
        load_q=load_q,
        sgen_p=sgen_p,
        sgen_q=sgen_p,
        network=network,
        source=f"SimBench {code}'s own profiles",
    )


def profiles_from_csv(text: str, network: CompiledNetwork) -> NetworkProfiles:
    """Profiles uploaded beside a network, validated; elements not named follow the standard.

    Format (UTF-8, comma-separated, header required)::

        step,load 0,load 3,sgen 1
        0,0.210,0.180,0.000
        1,0.205,0.176,0.000

    ``step`` counts quarter-hours from 1 January 00:00 UTC, from 0 without gaps; 96 rows are one
    day repeated every day, 35,040 or 35,136 rows a year. Every other column is one in-service
    element (``load <index>`` or ``sgen <index>`` of the network) and holds multiples of its
    rating (``p_mw``; reactive power follows), from 0 to 10. Raises ``ProfilesInvalid`` naming
    the line and column of the first problem.
    """
    if len(text) > MAX_PROFILE_CSV_CHARS:
        raise ProfilesInvalid(f"the file is too large ({len(text):,} characters)")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows or not rows[0]:
        raise ProfilesInvalid("the file is empty")
    header = [cell.strip() for cell in rows[0]]
    if header[0].lower() != "step":
        raise ProfilesInvalid("line 1: the first column must be 'step'")
    loads = network.loads.position()
    sgens = network.sgens.position()
    targets: list[tuple[str, int]] = []
    for number, name in enumerate(header[1:], start=2):
        kind, _, index = name.partition(" ")
        table = {"load": loads, "sgen": sgens}.get(kind.lower())
        if table is None or not index.strip().isdigit():
            raise ProfilesInvalid(
                f"line 1, column {number}: {name!r} is not 'load <index>' or 'sgen <index>'"
            )
        if int(index) not in table:
            raise ProfilesInvalid(f"line 1, column {number}: the network has no {kind} {index}")
        target = (kind.lower(), int(index))
        if target in targets:
            raise ProfilesInvalid(f"line 1, column {number}: {name!r} appears twice")
        targets.append(target)
    if not targets:
        raise ProfilesInvalid("line 1: no element columns ('load <index>' or 'sgen <index>')")
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    if len(body) not in (STEPS_PER_DAY, 365 * STEPS_PER_DAY, STEPS_PER_YEAR):
        raise ProfilesInvalid(
            f"{len(body)} rows of values; expected 96 (one day), 35,040 or 35,136 (a year)"
        )
    values = np.zeros((len(body), len(targets)))
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ProfilesInvalid(
                f"line {number}: {len(row)} columns, the header has {len(header)}"
            )
        if row[0].strip() != str(number - 2):
            raise ProfilesInvalid(f"line {number}: step {row[0].strip()!r}, expected {number - 2}")
        for col, cell in enumerate(row[1:]):
            try:
                value = float(cell)
            except ValueError:
                raise ProfilesInvalid(
                    f"line {number}, column {col + 2}: {cell.strip()!r} is not a number"
                ) from None
            if not (math.isfinite(value) and 0.0 <= value <= MAX_PROFILE_FACTOR):
                raise ProfilesInvalid(
                    f"line {number}, column {col + 2}: {value} is outside 0 to "
                    f"{MAX_PROFILE_FACTOR:g} times the element's rating"
                )
            values[number - 2, col] = value
    standard = standard_profiles(network)
    # One year for every column: a day-long file repeats; a 365-day year wraps like SimBench's.
    year = np.resize(values, (STEPS_PER_YEAR, len(targets)))
    shapes = np.column_stack([standard.shapes, year])
    load_p = standard._load_p.copy()
    sgen_p = standard._sgen_p.copy()
    for col, (kind, element) in enumerate(targets):
        if kind == "load":
            load_p[loads[element]] = 2 + col
        else:
            sgen_p[sgens[element]] = 2 + col
    return NetworkProfiles(
        shapes=shapes,
        load_p=load_p,
        load_q=load_p,
        sgen_p=sgen_p,
        sgen_q=sgen_p,
        network=network,
        source=f"uploaded profiles for {len(targets)} elements, standard for the rest",
    )


def simbench_code(reference_name: str | None) -> str | None:
    """The SimBench code of a reference network name, or None for any other network."""
    ref = REFERENCE_NETWORKS.get(reference_name or "")
    return ref.name if ref is not None and ref.has_profiles else None
