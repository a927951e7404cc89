"""Demo profiles: time-to-step mapping, SimBench snapshots and the household/PV fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from grid.networks import NetworkInvalid, connection_buses, reference_network
from grid.profiles import _standard_shapes, profile_snapshot, year_step

STEPS_2016 = 35136


@pytest.mark.parametrize(
    ("when", "step"),
    [
        (datetime(2025, 1, 1, 0, 0, tzinfo=UTC), 0),
        (datetime(2025, 1, 1, 0, 14, 59, tzinfo=UTC), 0),
        (datetime(2025, 1, 1, 0, 15, tzinfo=UTC), 1),
        (datetime(2025, 1, 2, 0, 0, tzinfo=UTC), 96),
        (datetime(2024, 12, 31, 23, 45, tzinfo=UTC), STEPS_2016 - 1),
        # 01:00 at UTC+1 is midnight UTC: the mapping is by UTC, whatever the display zone.
        (datetime(2025, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))), 0),
    ],
)
def test_year_step(when, step):
    assert year_step(when, STEPS_2016) == step


def test_year_step_needs_aware_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        year_step(datetime(2025, 1, 1), STEPS_2016)  # naive on purpose


def test_simbench_snapshot_per_connection_bus():
    code = "1-LV-rural1--0-sw"
    noon = profile_snapshot(code, datetime(2025, 6, 21, 11, 0, tzinfo=UTC))
    night = profile_snapshot(code, datetime(2025, 6, 21, 1, 0, tzinfo=UTC))
    assert set(noon) == set(connection_buses(reference_network(code)))
    assert all(p.load_kw >= 0 and p.pv_kw >= 0 for p in noon.values())
    assert sum(p.load_kw for p in noon.values()) > 0
    assert sum(p.pv_kw for p in noon.values()) > 0
    assert sum(p.pv_kw for p in night.values()) == 0
    assert all(p.load_kw.as_tuple().exponent == -3 for p in noon.values())


def test_fallback_scales_own_loads_by_household_shape():
    when = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)
    snapshot = profile_snapshot("cigre_lv", when)
    net = reference_network("cigre_lv")
    household, _ = _standard_shapes()
    factor = household[year_step(when, len(household))]
    bus = 19
    expected = float(net.load.p_mw[net.load.bus == bus].sum()) * 1000.0 * factor
    assert set(snapshot) == set(connection_buses(net))
    assert abs(float(snapshot[bus].load_kw) - expected) < 0.001
    assert snapshot[bus].pv_kw == Decimal("0.000")  # CIGRE LV has no PV of its own


def test_unknown_network():
    with pytest.raises(NetworkInvalid):
        profile_snapshot("nope", datetime(2025, 1, 1, tzinfo=UTC))
