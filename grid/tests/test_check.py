"""The grid check on CIGRE LV: members as the loads, profiles for the rest, curtailing only what
can be controlled (exports and flexible purchases), both policies, limits and holds."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta

import pandapower as pp
import pandapower.networks as pn
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.check import (
    CurtailmentPolicy,
    GridLimits,
    GridNetwork,
    Placement,
    Schedule,
    ScheduleEntry,
    grid_check,
)
from grid.networks import reference_network
from grid.profiles import standard_profiles

NOON = datetime(2025, 6, 21, 11, 0, tzinfo=UTC)
EVENING = datetime(2025, 1, 15, 18, 0, tzinfo=UTC)
# CIGRE LV residential feeder: buses 19 (R18) and 18 (R17) are its far ends, bus 12 (R11) sits
# close to the transformer; bus 22 is the industrial feeder behind its own 150 kVA transformer.
FAR_END = (19, 18, 17, 16)
NEAR_TRAFO = 12


@pytest.fixture(scope="module")
def cigre():
    return reference_network("cigre_lv")


@pytest.fixture(scope="module")
def network(cigre):
    return GridNetwork.from_pandapower(cigre)


def homes(*buses):
    return tuple(Placement(f"home{b}", b) for b in buses)


def entry(key, bus, kw, flexible=None, minute=0):
    # Exports are always curtailable; a purchase only when declared flexible.
    flexible = kw > 0 if flexible is None else flexible
    return ScheduleEntry(key, f"home{bus}", kw, flexible, NOON + timedelta(minutes=minute))


def check(network, entries, *, when=NOON, buses=None, **options):
    buses = buses or sorted({int(e.meter_point[4:]) for e in entries})
    return grid_check(network, Schedule(when, homes(*buses), tuple(entries)), **options)


def cuts(outcome):
    return {c.key: c.curtailed_kw for c in outcome.curtailments}


def assert_inside(summary, limits):
    assert limits.v_min_pu - 1e-9 <= summary.min_vm_pu
    assert summary.max_vm_pu <= limits.v_max_pu + 1e-9
    assert summary.max_line_loading_percent <= limits.max_line_loading_percent + 1e-9
    assert summary.max_trafo_loading_percent <= limits.max_trafo_loading_percent + 1e-9


def pv_exports():
    # 120 kW of PV export at each feeder-end home, far beyond what the feeder takes.
    return [entry(f"pv{i}", bus, 120.0, minute=i) for i, bus in enumerate((19, 18, 17, 16))]


def test_light_schedule_passes_in_one_power_flow(network, cigre):
    entries = [entry("a", 2, -3.0), entry("b", 12, 2.0), entry("c", 24, -1.0, flexible=True)]
    outcome = check(network, entries)
    assert outcome.feasible
    assert outcome.held_reason == ""
    assert outcome.power_flows == 1
    assert outcome.violations == ()
    assert outcome.curtailments == ()
    assert set(outcome.final.bus_vm_pu) == {int(b) for b in cigre.bus.index}
    assert outcome.final.losses_kw > 0
    assert outcome.injection_kw == {"home2": -3.0, "home12": 2.0, "home24": -1.0}
    assert outcome.state.converged


def test_caller_net_is_not_changed(cigre):
    loads_before = cigre.load.copy()
    network = GridNetwork.from_pandapower(cigre)
    check(network, pv_exports())
    assert cigre.load.equals(loads_before)


def test_members_replace_their_elements_and_the_rest_follow_profiles(cigre, network):
    # The same power at bus 19 as the home's own profile (CIGRE's loads have a power factor of
    # 0.95): the same state as no member at all.
    powers = network.profiles.at(NOON)
    position = network.compiled.loads.position()[5]  # load 5 sits at bus 19
    own_kw = -powers.load_mw[position] * 1000.0
    alone = grid_check(network, Schedule(NOON, (), ()))
    same = grid_check(
        network,
        Schedule(NOON, (Placement("home19", 19, power_factor=0.95),),
                 (entry("own", 19, own_kw, flexible=False),)),
    )  # fmt: skip
    assert same.final.bus_vm_pu[19] == pytest.approx(alone.final.bus_vm_pu[19], abs=1e-6)
    # An independent pandapower run of the profile state: every load at H0-A x its rating.
    net = copy.deepcopy(cigre)
    net.load["p_mw"] = powers.load_mw
    net.load["q_mvar"] = powers.load_mvar
    pp.runpp(net, numba=False)
    assert alone.final.bus_vm_pu[19] == pytest.approx(net.res_bus.vm_pu[19], abs=1e-6)
    # Two homes sharing bus 19 each stand for half of its load: 10 kW each is 20 kW there.
    shared = grid_check(
        network,
        Schedule(
            NOON,
            (Placement("a", 19, share=0.5), Placement("b", 19, share=0.5)),
            (ScheduleEntry("a", "a", -10.0, False), ScheduleEntry("b", "b", -10.0, False)),
        ),
    )
    explicit = grid_check(
        network,
        Schedule(NOON, (Placement("x", 19, elements=("load 5",)),),
                 (ScheduleEntry("x", "x", -20.0, False),)),
    )  # fmt: skip
    assert shared.final.bus_vm_pu[19] == pytest.approx(explicit.final.bus_vm_pu[19], abs=1e-9)


def test_power_factor_draws_reactive_power(network):
    unity = check(network, [entry("a", 19, -30.0, flexible=False)])
    lagging = grid_check(
        network,
        Schedule(NOON, (Placement("home19", 19, power_factor=0.9),),
                 (entry("a", 19, -30.0, flexible=False),)),
    )  # fmt: skip
    assert lagging.final.bus_vm_pu[19] < unity.final.bus_vm_pu[19] - 0.002


@pytest.mark.parametrize("policy", list(CurtailmentPolicy))
def test_pv_exports_at_feeder_end_are_curtailed(network, policy):
    outcome = check(network, pv_exports(), policy=policy)
    assert outcome.feasible
    assert outcome.power_flows <= 6  # sized from the linear estimate, not by small steps
    overvoltages = [v for v in outcome.violations if v.kind == "overvoltage"]
    assert overvoltages
    assert all(v.caused_by_trades and not v.needs_grid_action for v in overvoltages)
    assert all("overvoltage at bus" in c.reason for c in outcome.curtailments)
    assert outcome.scheduled.max_vm_pu > 1.10 >= outcome.final.max_vm_pu
    assert all(0 < kw <= 120.0 for kw in cuts(outcome).values())


def test_last_on_first_off_curtails_latest_first(network):
    entries = pv_exports()
    outcome = check(network, entries, policy=CurtailmentPolicy.LAST_ON_FIRST_OFF)
    cut = cuts(outcome)
    latest_first = sorted(entries, key=lambda e: e.submitted_at, reverse=True)
    amounts = [cut.get(e.key, 0.0) for e in latest_first]
    assert amounts[0] == pytest.approx(120.0)  # the last order on is the first off
    touched = [i for i, kw in enumerate(amounts) if kw > 0]
    assert touched == list(range(len(touched)))


def test_sensitivity_curtails_the_feeder_end_first(network):
    entries = [entry("near", NEAR_TRAFO, 200.0, minute=5), entry("far", 19, 200.0)]
    outcome = check(network, entries)
    assert outcome.feasible
    cut = cuts(outcome)
    assert cut["far"] > cut.get("near", 0.0)
    # Last on, first off takes the later order (near the transformer) first, far less helpful.
    lofo = check(network, entries, policy=CurtailmentPolicy.LAST_ON_FIRST_OFF)
    assert cuts(lofo)["near"] > cut.get("near", 0.0)


def test_evening_inflexible_demand_below_the_band_curtails_nothing(network):
    demand = [entry(f"home{b}", b, -80.0, flexible=False) for b in FAR_END]
    outcome = check(network, demand, when=EVENING)
    assert outcome.feasible
    assert outcome.curtailments == ()
    low = [v for v in outcome.violations if v.kind == "undervoltage"]
    assert low
    assert all(v.needs_grid_action and not v.caused_by_trades for v in low)
    # What is reported is what flows: the household consumes the same whoever it buys from.
    assert outcome.final.min_vm_pu < 0.90
    assert outcome.final.min_vm_pu == outcome.scheduled.min_vm_pu


def test_evening_flexible_ev_purchase_is_curtailed(network):
    demand = [entry(f"home{b}", b, -80.0, flexible=False) for b in FAR_END]
    ev = entry("ev", 19, -11.0, flexible=True)
    outcome = check(network, [*demand, ev], when=EVENING)
    assert outcome.feasible
    assert set(cuts(outcome)) == {"ev"}
    assert cuts(outcome)["ev"] > 0
    assert any(v.caused_by_trades for v in outcome.violations)


def test_base_case_breaking_a_tighter_band_curtails_nothing(network):
    limits = GridLimits(v_min_pu=0.95, v_max_pu=1.05)
    # Members' evening consumption takes the feeder end below 0.95; a PV export elsewhere only
    # lifts voltages, so neither is curtailed.
    entries = [entry(f"d{b}", b, -50.0, flexible=False) for b in FAR_END]
    entries.append(entry("pv", NEAR_TRAFO, 3.0))
    outcome = check(network, entries, when=EVENING, limits=limits)
    assert outcome.feasible
    assert outcome.violations
    assert all(v.needs_grid_action for v in outcome.violations)
    assert outcome.curtailments == ()
    assert outcome.final.min_vm_pu < 0.95


@pytest.mark.parametrize("policy", list(CurtailmentPolicy))
def test_trafo_overload_from_flexible_purchases_is_curtailed(network, policy):
    entries = [entry(f"ev{i}", 22, -50.0, flexible=True, minute=i) for i in range(4)]
    outcome = check(network, entries, policy=policy)
    assert any(v.kind == "trafo_overload" and v.caused_by_trades for v in outcome.violations)
    assert outcome.feasible
    assert outcome.final.max_trafo_loading_percent <= 100.0
    assert any("trafo overload at trafo" in c.reason for c in outcome.curtailments)


def test_element_own_loading_limit_applies(cigre):
    net = copy.deepcopy(cigre)
    net.trafo["max_loading_percent"] = [100.0, 30.0, 100.0]  # trafo 1 feeds bus 22
    network = GridNetwork.from_pandapower(net)
    entries = [entry("ev", 22, -60.0, flexible=True)]
    outcome = check(network, entries)
    found = next(v for v in outcome.violations if v.element == "trafo 1")
    assert found.limit == 30.0
    assert outcome.final.branch_loading_percent["trafo 1"] <= 30.0
    plain = check(GridNetwork.from_pandapower(cigre), entries)
    assert plain.curtailments == ()


def test_three_winding_transformer_is_checked():
    net = pn.example_multivoltage()
    network = GridNetwork.from_pandapower(net)
    assert any(b.element_type == "trafo3w" for b in network.compiled.branches)
    outcome = grid_check(network, Schedule(NOON, (), ()), limits=GridLimits(0.8, 1.2))
    assert outcome.final.branch_loading_percent["trafo3w 0"] > 0


def test_non_convergence_is_curtailed(network):
    entries = [entry("huge", 19, -5000.0, flexible=True), entry("pv", 2, 1.0)]
    outcome = check(network, entries)
    assert outcome.violations[0].kind == "not_converged"
    assert outcome.feasible
    assert_inside(outcome.final, GridLimits())


def test_infeasible_when_even_the_uncontrollable_state_fails(network):
    entries = [entry("huge", 19, -5000.0, flexible=False)]
    outcome = check(network, entries)
    assert not outcome.feasible
    assert "does not converge" in outcome.held_reason


def test_infeasible_when_power_flows_run_out(network):
    outcome = check(network, pv_exports(), max_power_flows=2)
    assert not outcome.feasible
    assert "did not reach a safe state" in outcome.held_reason


def test_rejects_unknown_bus_element_and_duplicates(network):
    with pytest.raises(ValueError, match="bus 999"):
        grid_check(network, Schedule(NOON, (Placement("x", 999),), ()))
    with pytest.raises(ValueError, match="no network element"):
        grid_check(network, Schedule(NOON, (Placement("x", 19, ("load 99",)),),
                                     (ScheduleEntry("e", "x", 1.0, True),)))  # fmt: skip
    with pytest.raises(ValueError, match="duplicate"):
        check(network, [entry("a", 19, 1.0), entry("a", 19, 2.0)])
    with pytest.raises(ValueError, match="not placed"):
        grid_check(network, Schedule(NOON, (), (ScheduleEntry("e", "x", 1.0, True),)))


def test_same_schedule_in_any_order_gives_the_same_curtailments(network):
    entries = [*pv_exports(), entry("ev", 17, -20.0, flexible=True)]
    first = check(network, entries)
    shuffled = entries[:]
    random.Random(7).shuffle(shuffled)
    again = grid_check(network, Schedule(NOON, tuple(reversed(homes(*FAR_END))), tuple(shuffled)))
    assert again.curtailments == first.curtailments


def test_standard_profiles_scale_each_element(cigre):
    network = GridNetwork.from_pandapower(cigre)
    profiles = standard_profiles(network.compiled)
    noon, night = profiles.at(NOON), profiles.at(NOON.replace(hour=1))
    rated = network.compiled.loads.p_mw
    assert (noon.load_mw <= rated + 1e-12).all()
    assert noon.load_mw[0] / rated[0] == pytest.approx(noon.load_mw[1] / rated[1])
    assert (noon.load_mw != night.load_mw).any()


_BUSES = (2, 12, 16, 17, 18, 19, 22, 24, 35, 40)
_entries = st.lists(
    st.tuples(st.sampled_from(_BUSES), st.floats(-150, 150), st.booleans(), st.integers(0, 600)),
    max_size=8,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_entries, policy=st.sampled_from(list(CurtailmentPolicy)))
def test_property_only_flexible_entries_are_curtailed_within_their_power(network, rows, policy):
    entries = [
        ScheduleEntry(f"e{i}", f"home{bus}", kw, flexible or kw > 0,
                      NOON + timedelta(seconds=sec))
        for i, (bus, kw, flexible, sec) in enumerate(rows)
    ]  # fmt: skip
    outcome = grid_check(network, Schedule(NOON, homes(*_BUSES), tuple(entries)), policy=policy)
    by_key = {e.key: e for e in entries}
    for c in outcome.curtailments:
        assert by_key[c.key].flexible
        assert 0 < c.curtailed_kw <= abs(by_key[c.key].kw) + 1e-9
    if outcome.feasible and not any(v.needs_grid_action for v in outcome.violations):
        assert_inside(outcome.final, GridLimits())
