"""The grid check on CIGRE LV: clean schedules, curtailment by both policies, base-case rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.check import (
    CurtailmentPolicy,
    GridLimits,
    ScheduledTrade,
    grid_check,
)
from grid.networks import connection_buses, reference_network

T0 = datetime(2025, 6, 21, 10, 0, tzinfo=UTC)
QUARTER = Decimal("0.25")
# CIGRE LV residential feeder: bus 19 (R18) and 18 (R17) are its far ends, bus 12 (R11) sits
# close to the transformer; bus 16 (R15) and the commercial buses 35/36 are the base case's
# lowest voltages (about 0.91 p.u.).
FAR_END = (19, 18)
NEAR_TRAFO = 12


@pytest.fixture(scope="module")
def cigre():
    return reference_network("cigre_lv")


def trade(trade_id, seller, buyer, kwh, minute=0):
    return ScheduledTrade(trade_id, seller, buyer, Decimal(kwh), T0 + timedelta(minutes=minute))


def pv_exports():
    # 30 kWh in a quarter-hour = 120 kW of PV export each, far beyond what the feeder end takes.
    buses = [19, 18, 17, 16, 19, 18]
    return [trade(f"pv{i}", bus, None, "30.000", minute=i) for i, bus in enumerate(buses)]


def assert_balanced(outcome, trades):
    curtailed = {c.trade_id: c.curtailed_kwh for c in outcome.curtailments}
    for t in trades:
        cut = curtailed.get(t.trade_id, Decimal(0))
        assert Decimal(0) <= cut <= t.quantity_kwh
        assert outcome.confirmed_kwh[t.trade_id] + cut == t.quantity_kwh
        assert outcome.confirmed_kwh[t.trade_id].as_tuple().exponent >= -3


def assert_inside(outcome, limits):
    assert limits.v_min_pu - 1e-9 <= outcome.min_vm_pu
    assert outcome.max_vm_pu <= limits.v_max_pu + 1e-9
    assert outcome.max_line_loading_percent <= limits.max_line_loading_percent + 1e-9
    assert outcome.max_trafo_loading_percent <= limits.max_trafo_loading_percent + 1e-9


def test_light_schedule_passes_in_one_power_flow(cigre):
    trades = [
        trade("a", 2, 12, "1.000"),
        trade("b", None, 17, "0.500"),
        trade("c", 24, None, "2.000"),
    ]
    outcome = grid_check(cigre, trades, interval_hours=QUARTER)
    assert outcome.feasible
    assert outcome.power_flows == 1
    assert outcome.violations == ()
    assert outcome.curtailments == ()
    assert outcome.confirmed_kwh == {t.trade_id: t.quantity_kwh for t in trades}
    assert set(outcome.bus_vm_pu) == {int(b) for b in cigre.bus.index}
    assert outcome.losses_kw > 0
    assert outcome.duration_s > 0


def test_caller_net_is_not_changed(cigre):
    loads_before = cigre.load.copy()
    grid_check(cigre, pv_exports(), interval_hours=QUARTER)
    assert cigre.load.equals(loads_before)


@pytest.mark.parametrize("policy", list(CurtailmentPolicy))
def test_pv_exports_at_feeder_end_are_curtailed(cigre, policy):
    trades = pv_exports()
    outcome = grid_check(cigre, trades, interval_hours=QUARTER, policy=policy)
    assert outcome.feasible
    assert outcome.power_flows <= 5  # sized from the linear estimate, not by small steps
    overvoltages = [v for v in outcome.violations if v.kind == "overvoltage"]
    assert overvoltages
    assert all(v.caused_by_trades and v.value > 1.10 for v in overvoltages)
    assert outcome.curtailments
    assert all("overvoltage at bus" in c.reason for c in outcome.curtailments)
    assert outcome.max_vm_pu <= 1.10
    assert_balanced(outcome, trades)


def test_last_on_first_off_curtails_latest_first(cigre):
    trades = pv_exports()
    outcome = grid_check(
        cigre, trades, interval_hours=QUARTER, policy=CurtailmentPolicy.LAST_ON_FIRST_OFF
    )
    curtailed = {c.trade_id: c.curtailed_kwh for c in outcome.curtailments}
    latest_first = sorted(trades, key=lambda t: t.submitted_at, reverse=True)
    cuts = [curtailed.get(t.trade_id, Decimal(0)) for t in latest_first]
    assert cuts[0] == latest_first[0].quantity_kwh  # the last order on is the first off
    # The curtailed trades are a run of the latest ones, all but the earliest of them in full.
    touched = [i for i, cut in enumerate(cuts) if cut > 0]
    assert touched == list(range(len(touched)))
    for i in touched[:-1]:
        assert cuts[i] == latest_first[i].quantity_kwh


def test_sensitivity_curtails_the_feeder_end_first(cigre):
    trades = [
        trade("near", NEAR_TRAFO, None, "100.000", minute=5),
        trade("far", FAR_END[0], None, "100.000", minute=0),
    ]
    outcome = grid_check(cigre, trades, interval_hours=QUARTER)
    assert outcome.feasible
    curtailed = {c.trade_id: c.curtailed_kwh for c in outcome.curtailments}
    assert curtailed["far"] > curtailed.get("near", Decimal(0))
    assert "p.u./kW" in next(c.reason for c in outcome.curtailments if c.trade_id == "far")
    # LOFO on the same schedule takes the later order (near the transformer) first.
    lofo = grid_check(
        cigre, trades, interval_hours=QUARTER, policy=CurtailmentPolicy.LAST_ON_FIRST_OFF
    )
    assert lofo.feasible
    lofo_cut = {c.trade_id: c.curtailed_kwh for c in lofo.curtailments}
    assert lofo_cut["near"] == Decimal("100.000")


@pytest.mark.parametrize("policy", list(CurtailmentPolicy))
def test_trafo_overload_is_curtailed(cigre, policy):
    # The industrial feeder's transformer carries about 85 % in the base case.
    trades = [trade(f"buy{i}", None, 22, "10.000", minute=i) for i in range(4)]
    outcome = grid_check(cigre, trades, interval_hours=QUARTER, policy=policy)
    assert any(v.kind == "trafo_overload" and v.caused_by_trades for v in outcome.violations)
    assert outcome.feasible
    assert outcome.max_trafo_loading_percent <= 100.0
    assert any("trafo overload at trafo" in c.reason for c in outcome.curtailments)
    assert_balanced(outcome, trades)


def test_non_convergence_is_curtailed(cigre):
    trades = [trade("huge", None, 19, "20000.000"), trade("small", 2, None, "1.000")]
    outcome = grid_check(cigre, trades, interval_hours=QUARTER)
    assert outcome.violations[0].kind == "not_converged"
    assert outcome.violations[0].caused_by_trades
    assert outcome.feasible
    assert_inside(outcome, GridLimits())
    assert_balanced(outcome, trades)


def test_pre_existing_violation_is_recorded_not_curtailed(cigre):
    limits = GridLimits(v_min_pu=0.92)
    outcome = grid_check(cigre, [], interval_hours=QUARTER, limits=limits)
    assert outcome.feasible
    assert outcome.violations
    assert all(v.kind == "undervoltage" and not v.caused_by_trades for v in outcome.violations)
    assert outcome.curtailments == ()
    assert outcome.min_vm_pu < 0.92


def test_light_trade_that_does_not_worsen_is_kept(cigre):
    limits = GridLimits(v_min_pu=0.92)
    # PV at the low-voltage bus 16 sold to the outside grid only lifts the voltage there.
    trades = [trade("pv", 16, None, "1.000"), trade("ind", None, 22, "0.500")]
    outcome = grid_check(cigre, trades, interval_hours=QUARTER, limits=limits)
    assert outcome.feasible
    assert outcome.curtailments == ()
    assert outcome.violations
    assert not any(v.caused_by_trades for v in outcome.violations)


def test_worsened_pre_existing_violation_is_curtailed_to_base_level(cigre):
    limits = GridLimits(v_min_pu=0.92)
    base = grid_check(cigre, [], interval_hours=QUARTER, limits=limits)
    # 12 kW bought and 8 kW of PV sold at bus 16: a net 4 kW more load where the base case is
    # already below the band.
    trades = [trade("buy", None, 16, "3.000"), trade("pv", 16, None, "2.000")]
    outcome = grid_check(cigre, trades, interval_hours=QUARTER, limits=limits)
    worse = [v for v in outcome.violations if v.caused_by_trades]
    assert "bus 16" in {v.element for v in worse}
    assert any(not v.caused_by_trades for v in outcome.violations)  # e.g. bus 35, untouched
    assert outcome.feasible
    cuts = {c.trade_id: c for c in outcome.curtailments}
    assert set(cuts) == {"buy"}  # the PV sale helps, so it stays
    assert Decimal(0) < cuts["buy"].curtailed_kwh < Decimal("3.000")
    assert "base case 0.917" in cuts["buy"].reason
    # Curtailed only back to the base level, not up to the (unreachable) nominal limit.
    assert outcome.bus_vm_pu[16] >= base.bus_vm_pu[16] - 0.001
    assert outcome.bus_vm_pu[16] < 0.92
    assert_balanced(outcome, trades)


def test_rejects_unknown_bus_and_duplicates(cigre):
    with pytest.raises(ValueError, match="bus 999"):
        grid_check(cigre, [trade("x", 999, None, "1")], interval_hours=QUARTER)
    with pytest.raises(ValueError, match="duplicate"):
        grid_check(cigre, [trade("x", 2, None, "1")] * 2, interval_hours=QUARTER)
    with pytest.raises(ValueError, match="interval_hours"):
        grid_check(cigre, [], interval_hours=0)


_CIGRE_BUSES = connection_buses(reference_network("cigre_lv"))
_side = st.one_of(st.none(), st.sampled_from(_CIGRE_BUSES))
_trades = st.lists(
    st.tuples(
        _side,
        _side,
        st.decimals(min_value=0, max_value=40, places=3, allow_nan=False),
        st.integers(0, 600),
    ),
    max_size=8,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_trades, policy=st.sampled_from(list(CurtailmentPolicy)))
def test_property_balanced_and_inside_limits(cigre, rows, policy):
    trades = [
        ScheduledTrade(f"t{i}", s, b, q, T0 + timedelta(seconds=sec))
        for i, (s, b, q, sec) in enumerate(rows)
    ]
    limits = GridLimits()
    outcome = grid_check(cigre, trades, interval_hours=QUARTER, limits=limits, policy=policy)
    assert_balanced(outcome, trades)
    assert {c.trade_id for c in outcome.curtailments} <= {t.trade_id for t in trades}
    if outcome.feasible:
        # CIGRE LV's base case is inside the default limits, so feasible means inside them.
        assert_inside(outcome, limits)
