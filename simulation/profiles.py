"""Profiles for simulated households and plants: SimBench's year of 15-minute values (offline).

Household demand comes from SimBench's standard load profiles (``H0-A``, ``H0-B``, ``H0-C``,
per unit of a household's peak), PV from ``PV5`` (per unit of kWp), wind from ``WP4`` and a
biomass CHP from ``BM1`` (per unit of rated power, from SimBench's MV rural grid). Hot water has
no SimBench profile: draws follow a fixed daily pattern (a morning and an evening peak, the
shape of the household tapping cycles of EN 16147, scaled to the household's litres a day).
Times map to profile steps as in ``grid.profiles.year_step`` (UTC quarter-hour of the year).

Reading the profiles out of SimBench's CSV files takes tens of seconds (it parses a whole grid
with all its tables), so the few columns used here are kept in a compressed NumPy file under
``var/profiles/``, named by the SimBench code and version; a new SimBench version makes a new
file, and a file that cannot be read is rebuilt from SimBench.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import simbench
from django.conf import settings

from grid.profiles import year_step

logger = logging.getLogger(__name__)

HOUSEHOLD_SOURCE = "1-LV-rural1--0-sw"  # carries H0-A/B/C and PV5
PLANT_SOURCE = "1-MV-rural--0-sw"  # carries the wind (WP*) and biomass (BM*) profiles
HOUSEHOLD_PROFILES = ("H0-A", "H0-B", "H0-C")
PLANT_PROFILES = {"wind": "WP4", "chp": "BM1", "pv": "PV5"}

# Share of a day's hot water drawn in each hour (local time): showers in the morning, washing up
# and baths in the evening, a little through the day. Sums to 1.
HOT_WATER_SHARE_BY_HOUR = (
    0.00, 0.00, 0.00, 0.00, 0.00, 0.01, 0.08, 0.16, 0.08, 0.04, 0.03, 0.03,
    0.05, 0.03, 0.02, 0.02, 0.03, 0.04, 0.07, 0.10, 0.10, 0.06, 0.03, 0.02,
)  # fmt: skip


def cache_path(code: str) -> Path:
    """Where the columns taken from SimBench grid ``code`` are kept (by SimBench's version)."""
    return Path(settings.VAR_DIR) / "profiles" / f"simbench-{simbench.__version__}-{code}.npz"


def _cached(code: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The table from its file under var/, or built from SimBench and written there."""
    path = cache_path(code)
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        pass
    except (OSError, ValueError, zipfile.BadZipFile):
        logger.warning("profile cache %s is unreadable; rebuilding it from SimBench", path)
    table = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written next to its place and renamed: a reader in another process never sees half a file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez_compressed(out, **table)  # type: ignore[arg-type]  # names are str
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return table


def _household_columns() -> dict[str, np.ndarray]:
    profiles = simbench.get_simbench_net(HOUSEHOLD_SOURCE).profiles
    load, renewables = profiles["load"], profiles["renewables"]
    table = {name: load[f"{name}_pload"].to_numpy(dtype=float) for name in HOUSEHOLD_PROFILES}
    table["PV5"] = renewables["PV5"].to_numpy(dtype=float)
    return table


def _plant_columns() -> dict[str, np.ndarray]:
    renewables = simbench.get_simbench_net(PLANT_SOURCE).profiles["renewables"]
    return {
        code: np.clip(renewables[code].to_numpy(dtype=float), 0.0, 1.0) for code in ("WP4", "BM1")
    }


@functools.cache
def _household_table() -> dict[str, np.ndarray]:
    return _cached(HOUSEHOLD_SOURCE, _household_columns)


@functools.cache
def _plant_table() -> dict[str, np.ndarray]:
    return _cached(PLANT_SOURCE, _plant_columns)


def household_profile(name: str) -> np.ndarray:
    """Per-unit household demand for a year of quarter-hours (``H0-A``, ``H0-B``, ``H0-C``)."""
    if name not in HOUSEHOLD_PROFILES:
        raise ValueError(f"unknown household profile {name!r}; choose {list(HOUSEHOLD_PROFILES)}")
    return _household_table()[name]


def plant_profile(kind: str) -> np.ndarray:
    """Per-unit output of a community plant: ``wind``, ``chp`` or ``pv``."""
    if kind not in PLANT_PROFILES:
        raise ValueError(f"unknown plant kind {kind!r}; choose {sorted(PLANT_PROFILES)}")
    code = PLANT_PROFILES[kind]
    return _household_table()["PV5"] if code == "PV5" else _plant_table()[code]


def pv_profile() -> np.ndarray:
    return _household_table()["PV5"]


def values_at(profile: np.ndarray, start: datetime, steps: int, minutes: int) -> np.ndarray:
    """The profile's mean over each of ``steps`` intervals of ``minutes`` from ``start``."""
    per = max(minutes // 15, 1)
    first = year_step(start, len(profile))
    index = (first + np.arange(steps * per)) % len(profile)
    return profile[index].reshape(steps, per).mean(axis=1)


# Outdoor air temperature: SimBench has no weather, so a standard year of the shape of the German
# test reference years (DWD TRY 2015, region 4, Potsdam): annual mean 9.5 °C, monthly means from
# about 0 °C in mid-January to 19 °C in mid-July, a daily swing of ±4 °C with its minimum at 05:00
# and its maximum at 15:00 local time. A smooth profile, not measured weather: it drives the
# heat pumps' COP and heat loss, not a weather study.
OUTDOOR_MEAN_C = 9.5
OUTDOOR_ANNUAL_AMPLITUDE_C = 9.5
OUTDOOR_COLDEST_DAY = 15  # day of the year (mid-January)
OUTDOOR_DAILY_AMPLITUDE_C = 4.0
OUTDOOR_WARMEST_HOUR = 15.0


def outdoor_temperature(day_of_year: np.ndarray, local_hour: np.ndarray) -> np.ndarray:
    """Outdoor air temperature (°C) at fractional days of the year and local hours of the day."""
    annual = -np.cos(2 * np.pi * (day_of_year - OUTDOOR_COLDEST_DAY) / 365.0)
    daily = np.cos(2 * np.pi * (local_hour - OUTDOOR_WARMEST_HOUR) / 24.0)
    return OUTDOOR_MEAN_C + OUTDOOR_ANNUAL_AMPLITUDE_C * annual + OUTDOOR_DAILY_AMPLITUDE_C * daily


def hot_water_draws(litres_per_day: float, local_hours: np.ndarray, minutes: int) -> np.ndarray:
    """Litres drawn in each interval (by its local hour of day) for ``litres_per_day``."""
    share = np.asarray(HOT_WATER_SHARE_BY_HOUR)[local_hours.astype(int) % 24]
    return litres_per_day * share * (minutes / 60.0)
