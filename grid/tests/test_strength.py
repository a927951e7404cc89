"""System strength: short-circuit power per bus (IEC 60909) and the short-circuit ratio check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandapower.shortcircuit as sc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grid.check import CurtailmentPolicy
from grid.networks import reference_network
from grid.strength import (
    DEFAULT_MIN_SCR,
    STRENGTH_REASON,
    Export,
    hostable_export_kw,
    short_circuit_mva,
    strength_check,
)

T0 = datetime(2025, 6, 21, 10, 0, tzinfo=UTC)
# SimBench 1-LV-rural1--0-sw: bus 3 is the transformer's LV busbar; bus 4 ends the longest
# feeder (3 -> 6 -> 11 -> 13 -> 5 -> 4, about 0.25 km of cable away).
RURAL_STRONG, RURAL_WEAK = 3, 4


@pytest.fixture(scope="module")
def rural_sc():
    return short_circuit_mva(reference_network("1-LV-rural1--0-sw"))


def test_short_circuit_power_falls_along_the_feeder(rural_sc):
    assert rural_sc[42] == pytest.approx(300.0)  # the MV connection: the documented default
    assert rural_sc[RURAL_STRONG] > 2 * rural_sc[RURAL_WEAK]
    # Behind a 160 kVA, 4 % transformer: S''k at its LV busbar cannot exceed 1.1 * 0.16 / 0.04.
    assert rural_sc[RURAL_STRONG] < 1.1 * 0.16 / 0.04


def test_short_circuit_power_is_the_networks_own_without_inverters():
    net = reference_network("cigre_lv")
    ours = short_circuit_mva(net)
    net.sgen["in_service"] = False
    sc.calc_sc(net, case="max", ip=False)
    assert ours == pytest.approx({int(b): float(v) for b, v in net.res_bus_sc.skss_mw.items()})


def test_a_pv_heavy_bus_on_the_weak_feeder_is_curtailed_a_strong_one_is_not(rural_sc):
    # 120 kW of PV export at each end; a manager's minimum ratio of 20 (an LV connection rule
    # is far stricter than the transmission-level 3, which no LV bus here can reach before its
    # transformer overloads).
    exports = [
        Export("weak", RURAL_WEAK, 120.0, T0),
        Export("strong", RURAL_STRONG, 120.0, T0),
    ]
    outcome = strength_check(rural_sc, exports, min_ratio=20)
    assert [e.bus for e in outcome.events] == [RURAL_WEAK]
    assert set(outcome.curtailed_kw) == {"weak"}
    left = 120.0 - outcome.curtailed_kw["weak"]
    assert left == pytest.approx(hostable_export_kw(rural_sc[RURAL_WEAK], 20))
    assert rural_sc[RURAL_WEAK] * 1000 / left == pytest.approx(20)
    assert outcome.reasons["weak"].startswith(STRENGTH_REASON)


def test_the_default_minimum_is_three():
    assert DEFAULT_MIN_SCR == 3
    outcome = strength_check({1: 0.3}, [Export("a", 1, 150.0, T0)])
    assert outcome.curtailed_kw == {"a": pytest.approx(50.0)}  # 0.3 MVA / 3 = 100 kW hostable


def test_last_on_first_off_takes_the_latest_exports_at_the_bus():
    exports = [
        Export("early", 1, 60.0, T0),
        Export("late", 1, 60.0, T0 + timedelta(minutes=1)),
        Export("elsewhere", 2, 60.0, T0 + timedelta(minutes=2)),
    ]
    outcome = strength_check({1: 0.3, 2: 3.0}, exports, policy=CurtailmentPolicy.LAST_ON_FIRST_OFF)
    assert outcome.curtailed_kw == {"late": pytest.approx(20.0)}


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="positive"):
        strength_check({1: 1.0}, [], min_ratio=0)
    with pytest.raises(ValueError, match="short-circuit power"):
        strength_check({1: 1.0}, [Export("a", 2, 1.0, T0)])
    with pytest.raises(ValueError, match="negative"):
        strength_check({1: 1.0}, [Export("a", 1, -1.0, T0)])


@given(
    st.lists(st.tuples(st.integers(0, 3), st.floats(0, 500)), max_size=12),
    st.floats(1, 30),
    st.sampled_from(list(CurtailmentPolicy)),
)
def test_after_curtailment_every_bus_keeps_the_minimum_ratio(items, min_ratio, policy):
    short_circuit = {0: 0.5, 1: 1.0, 2: 2.0, 3: 4.0}
    exports = [
        Export(f"e{i}", bus, kw, T0 + timedelta(seconds=i)) for i, (bus, kw) in enumerate(items)
    ]
    outcome = strength_check(short_circuit, exports, min_ratio=min_ratio, policy=policy)
    left: dict[int, float] = {}
    for export in exports:
        cut = outcome.curtailed_kw.get(export.key, 0.0)
        assert 0 <= cut <= export.kw + 1e-9
        left[export.bus] = left.get(export.bus, 0.0) + export.kw - cut
    for bus, kw in left.items():
        assert kw <= hostable_export_kw(short_circuit[bus], min_ratio) + 1e-6
        # Nothing is taken from a bus that was within its limit.
        before = sum(e.kw for e in exports if e.bus == bus)
        if before <= hostable_export_kw(short_circuit[bus], min_ratio):
            assert kw == pytest.approx(before)
