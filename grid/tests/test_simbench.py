"""SimBench 1-LV-rural1--0-sw with its PV tripled, at the high-PV step of its own profile.

Every load bus is a member whose meter point stands for the bus's load and PV; their net
positions (PV x 3 - load, from SimBench's own absolute values) are the schedule, exports sold
(curtailable), imports inflexible. The check must see what an independent pandapower run of
those net positions sees, and curtail close to the least a uniform cut of all exports needs.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import numpy as np
import pandapower as pp
import pytest
import simbench

from grid.check import GridLimits, GridNetwork, Placement, Schedule, ScheduleEntry, grid_check
from grid.networks import reference_network
from grid.powerflow import CompiledNetwork
from grid.profiles import simbench_profiles

CODE = "1-LV-rural1--0-sw"
PV_FACTOR = 3.0
YEAR_START = datetime(2016, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def case():
    net = reference_network(CODE)
    absolute = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
    pv = absolute[("sgen", "p_mw")] * PV_FACTOR
    step = int(np.argmax(pv.sum(axis=1).to_numpy()))
    load = absolute[("load", "p_mw")].iloc[step]
    pv_now = pv.iloc[step]
    net.pop("profiles", None)
    net.sgen["p_mw"] *= PV_FACTOR  # the network's PV tripled: its profiles scale with it
    compiled = CompiledNetwork.from_pandapower(net)
    network = GridNetwork(compiled, simbench_profiles(CODE, compiled))
    buses = sorted({int(b) for b in net.load.bus} | {int(b) for b in net.sgen.bus})
    positions = {}
    placements = []
    for bus in buses:
        loads = net.load.index[net.load.bus == bus]
        sgens = net.sgen.index[net.sgen.bus == bus]
        elements = tuple(f"load {i}" for i in loads) + tuple(f"sgen {i}" for i in sgens)
        placements.append(Placement(f"m{bus}", bus, elements))
        positions[bus] = float(pv_now[sgens].sum() - load[loads].sum())  # MW, > 0 exports
    when = YEAR_START + timedelta(minutes=15 * step)
    return net, network, placements, positions, when


def _entries(positions, export_scale=1.0):
    return tuple(
        ScheduleEntry(f"m{bus}", f"m{bus}", mw * 1000.0 * (export_scale if mw > 0 else 1.0),
                      mw > 0)
        for bus, mw in positions.items()
    )  # fmt: skip


def _pandapower_run(net, positions, export_scale=1.0):
    run = copy.deepcopy(net)
    run.load["p_mw"] = 0.0
    run.load["q_mvar"] = 0.0
    run.sgen["p_mw"] = 0.0
    run.sgen["q_mvar"] = 0.0
    for bus, mw in positions.items():
        pp.create_sgen(run, bus, p_mw=mw * (export_scale if mw > 0 else 1.0), q_mvar=0.0)
    pp.runpp(run, numba=False)
    return run


def _feasible(run, limits):
    vm = run.res_bus.vm_pu[run.bus.in_service]
    return (
        vm.min() >= limits.v_min_pu
        and vm.max() <= limits.v_max_pu
        and run.res_line.loading_percent.max() <= limits.max_line_loading_percent
        and run.res_trafo.loading_percent.max() <= limits.max_trafo_loading_percent
    )


def test_loadings_equal_an_independent_pandapower_run(case):
    net, network, placements, positions, when = case
    outcome = grid_check(network, Schedule(when, tuple(placements), _entries(positions)))
    reference = _pandapower_run(net, positions)
    scheduled = outcome.scheduled.branch_loading_percent
    assert reference.res_trafo.loading_percent[0] > 100.0  # the tripled PV overloads it
    for idx, loading in reference.res_trafo.loading_percent.items():
        assert scheduled[f"trafo {idx}"] == pytest.approx(loading, rel=0.005)
    for idx, loading in reference.res_line.loading_percent.items():
        assert scheduled[f"line {idx}"] == pytest.approx(loading, rel=0.005, abs=0.01)


def test_curtailment_stays_near_the_minimum_uniform_curtailment(case):
    net, network, placements, positions, when = case
    limits = GridLimits()
    outcome = grid_check(network, Schedule(when, tuple(placements), _entries(positions)))
    assert outcome.feasible
    assert outcome.final.max_trafo_loading_percent <= 100.0
    curtailed_kw = sum(c.curtailed_kw for c in outcome.curtailments)
    # The least uniform cut of every export that pandapower finds feasible, by bisection.
    low, high = 0.0, 1.0
    for _ in range(30):
        middle = (low + high) / 2
        if _feasible(_pandapower_run(net, positions, 1.0 - middle), limits):
            high = middle
        else:
            low = middle
    exports_kw = sum(mw for mw in positions.values() if mw > 0) * 1000.0
    uniform_kw = high * exports_kw
    assert uniform_kw > 1.0
    assert curtailed_kw <= 1.2 * uniform_kw
    # What the check reports as final is what pandapower sees for the curtailed schedule.
    remaining = dict(positions)
    for c in outcome.curtailments:
        bus = int(c.key[1:])
        remaining[bus] -= c.curtailed_kw / 1000.0
    after = _pandapower_run(net, remaining)
    assert _feasible(after, limits)
    assert outcome.final.max_trafo_loading_percent == pytest.approx(
        float(after.res_trafo.loading_percent.max()), rel=0.005
    )
