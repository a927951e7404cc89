"""System strength inside the grid check: a weak bus's exports are curtailed like any violation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.check import (
    STRENGTH_MARGIN_KW,
    CurtailmentPolicy,
    GridLimits,
    GridNetwork,
    Placement,
    Schedule,
    ScheduleEntry,
    grid_check,
)
from grid.networks import reference_network
from grid.strength import STRENGTH_REASON, hostable_export_kw, short_circuit_mva

NOON = datetime(2025, 6, 21, 11, 0, tzinfo=UTC)
# SimBench 1-LV-rural1--0-sw: bus 3 is the transformer's LV busbar (S''k about 4.2 MVA); bus 4
# ends the longest feeder (3 -> 6 -> 11 -> 13 -> 5 -> 4, S''k about 2.0 MVA).
STRONG, WEAK = 3, 4
# An LV connection rule far stricter than the default 3, which no LV bus here reaches before its
# 160 kVA transformer overloads: 30 lets the weak bus take about 67 kW, the strong one 142 kW.
STRICT = GridLimits(min_short_circuit_ratio=30.0)


@pytest.fixture(scope="module")
def rural():
    net = reference_network("1-LV-rural1--0-sw")
    # The short-circuit study is the slow part: once for the module, as a worker caches it.
    return GridNetwork.from_pandapower(net), short_circuit_mva(net)


def _schedule(*entries: ScheduleEntry) -> Schedule:
    placements = (Placement("weak", WEAK), Placement("strong", STRONG))
    return Schedule(NOON, placements, entries)


def _export(key: str, meter_point: str, kw: float, minute: int = 0, flexible: bool = True):
    return ScheduleEntry(key, meter_point, kw, flexible, NOON - timedelta(minutes=60 - minute))


def test_a_pv_heavy_weak_bus_is_curtailed_a_strong_one_near_the_transformer_is_not(rural):
    network, short_circuit = rural
    schedule = _schedule(_export("far", "weak", 80.0), _export("near", "strong", 60.0))

    outcome = grid_check(network, schedule, limits=STRICT, short_circuit=short_circuit)

    assert outcome.feasible
    hostable = hostable_export_kw(short_circuit[WEAK], 30.0)
    (event,) = outcome.strength_events
    assert (event.bus, event.export_kw) == (WEAK, pytest.approx(80.0))
    assert event.ratio == pytest.approx(short_circuit[WEAK] * 1000 / 80.0)
    assert event.ratio < 30 < short_circuit[STRONG] * 1000 / 60.0
    (violation,) = outcome.violations
    assert (violation.kind, violation.element) == ("system_strength", f"bus {WEAK}")
    assert (violation.value, violation.limit) == (pytest.approx(event.ratio), 30.0)
    assert violation.caused_by_trades
    assert not violation.needs_grid_action
    (cut,) = outcome.curtailments
    assert cut.key == "far"
    assert cut.curtailed_kw == pytest.approx(80.0 - hostable + STRENGTH_MARGIN_KW)
    assert cut.strength_kw == pytest.approx(cut.curtailed_kw)
    assert cut.reason.startswith(STRENGTH_REASON)
    # What is left is what the bus can take, and the strong bus keeps its whole export.
    assert outcome.injection_kw["weak"] == pytest.approx(hostable - STRENGTH_MARGIN_KW)
    assert short_circuit[WEAK] * 1000 / outcome.injection_kw["weak"] >= 30
    assert outcome.injection_kw["strong"] == pytest.approx(60.0)


def test_the_default_minimum_of_three_lets_an_lv_feeder_export_what_it_carries(rural):
    network, short_circuit = rural
    schedule = _schedule(_export("far", "weak", 80.0), _export("near", "strong", 60.0))
    outcome = grid_check(network, schedule, short_circuit=short_circuit)
    assert GridLimits().min_short_circuit_ratio == 3
    assert outcome.strength_events == ()
    assert outcome.curtailments == ()


def test_without_short_circuit_power_system_strength_is_not_checked(rural):
    network, _ = rural
    schedule = _schedule(_export("far", "weak", 80.0))
    outcome = grid_check(network, schedule, limits=STRICT)
    assert outcome.strength_events == ()
    assert outcome.curtailments == ()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # Equal shares: each export at the bus gives up the same fraction.
        (CurtailmentPolicy.SENSITIVITY, {"early", "late"}),
        # Last on, first off: the later export goes first, and alone covers the excess.
        (CurtailmentPolicy.LAST_ON_FIRST_OFF, {"late"}),
    ],
)
def test_the_policy_chooses_among_the_exports_at_the_weak_bus(rural, policy, expected):
    network, short_circuit = rural
    placements = (Placement("weak", WEAK), Placement("neighbour", WEAK))
    entries = (
        _export("early", "weak", 40.0, minute=1),
        _export("late", "neighbour", 40.0, minute=2),
    )
    outcome = grid_check(
        network,
        Schedule(NOON, placements, entries),
        limits=STRICT,
        policy=policy,
        short_circuit=short_circuit,
    )
    cuts = {c.key: c.curtailed_kw for c in outcome.curtailments}
    assert set(cuts) == expected
    hostable = hostable_export_kw(short_circuit[WEAK], 30.0)
    assert sum(cuts.values()) == pytest.approx(80.0 - hostable + STRENGTH_MARGIN_KW)
    if policy is CurtailmentPolicy.SENSITIVITY:
        assert cuts["early"] == pytest.approx(cuts["late"])


def test_a_baseline_export_above_the_limit_needs_the_manager_and_curtails_nothing(rural):
    network, short_circuit = rural
    schedule = _schedule(_export("baseline", "weak", 80.0, flexible=False))
    outcome = grid_check(network, schedule, limits=STRICT, short_circuit=short_circuit)
    (violation,) = outcome.violations
    assert violation.kind == "system_strength"
    assert violation.needs_grid_action
    assert not violation.caused_by_trades
    assert outcome.curtailments == ()
    assert outcome.feasible


def test_a_trade_on_top_of_a_baseline_above_the_limit_is_curtailed_to_the_baseline(rural):
    network, short_circuit = rural
    schedule = _schedule(
        _export("baseline", "weak", 70.0, flexible=False), _export("sale", "weak", 10.0)
    )
    outcome = grid_check(network, schedule, limits=STRICT, short_circuit=short_circuit)
    (cut,) = outcome.curtailments
    assert cut.key == "sale"
    assert cut.curtailed_kw == pytest.approx(10.0)
    assert outcome.injection_kw["weak"] == pytest.approx(70.0)


def test_a_minimum_ratio_that_is_not_positive_is_refused(rural):
    network, short_circuit = rural
    with pytest.raises(ValueError, match="short-circuit ratio"):
        grid_check(
            network,
            _schedule(_export("far", "weak", 1.0)),
            limits=GridLimits(min_short_circuit_ratio=0.0),
            short_circuit=short_circuit,
        )


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([WEAK, STRONG, 5, 13]),
            st.floats(min_value=0.0, max_value=60.0),
            st.booleans(),
            st.integers(min_value=0, max_value=59),
        ),
        min_size=1,
        max_size=6,
    ),
    policy=st.sampled_from(list(CurtailmentPolicy)),
)
def test_property_every_bus_ends_within_its_ratio_or_at_its_uncontrollable_export(
    rural, rows, policy
):
    network, short_circuit = rural
    placements = tuple(Placement(f"mp{i}", bus) for i, (bus, *_) in enumerate(rows))
    entries = tuple(
        ScheduleEntry(f"e{i}", f"mp{i}", kw, flexible, NOON - timedelta(minutes=minute))
        for i, (_, kw, flexible, minute) in enumerate(rows)
    )
    outcome = grid_check(
        network,
        Schedule(NOON, placements, entries),
        # System strength binds first: the voltage band and the community's loadings are opened
        # wide (SimBench's own element limits still apply, so other curtailment may add up).
        limits=GridLimits(
            v_min_pu=0.5,
            v_max_pu=1.5,
            max_line_loading_percent=1e4,
            max_trafo_loading_percent=1e4,
            min_short_circuit_ratio=30.0,
        ),
        policy=policy,
        short_circuit=short_circuit,
    )
    assert outcome.feasible
    cut = {c.key: c for c in outcome.curtailments}
    for i, (_, kw, flexible, _) in enumerate(rows):
        if f"e{i}" in cut:
            assert flexible
            assert 0 < cut[f"e{i}"].curtailed_kw <= kw + 1e-9
            assert 0 <= cut[f"e{i}"].strength_kw <= cut[f"e{i}"].curtailed_kw + 1e-9
    for bus in {bus for bus, *_ in rows}:
        export = sum(
            max(outcome.injection_kw.get(f"mp{i}", 0.0), 0.0)
            for i, (b, *_) in enumerate(rows)
            if b == bus
        )
        fixed = sum(kw for b, kw, flexible, _ in rows if b == bus and not flexible)
        allowed = max(hostable_export_kw(short_circuit[bus], 30.0), fixed)
        assert export <= allowed + 1e-6
