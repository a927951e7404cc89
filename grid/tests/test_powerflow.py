"""The compiled power flow equals pandapower's own results on the reference networks."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from grid.networks import reference_network
from grid.powerflow import CompiledNetwork

RESULTS = {"line": "res_line", "trafo": "res_trafo", "trafo3w": "res_trafo3w"}


def _rated_injections(compiled, pv_factor):
    p = np.zeros(compiled.n_bus)
    q = np.zeros(compiled.n_bus)
    loads, sgens = compiled.loads, compiled.sgens
    live_l, live_s = loads.ppci_bus >= 0, sgens.ppci_bus >= 0
    np.add.at(p, loads.ppci_bus[live_l], -loads.p_mw[live_l])
    np.add.at(q, loads.ppci_bus[live_l], -loads.q_mvar[live_l])
    np.add.at(p, sgens.ppci_bus[live_s], pv_factor * sgens.p_mw[live_s])
    np.add.at(q, sgens.ppci_bus[live_s], pv_factor * sgens.q_mvar[live_s])
    return compiled.sbus(p, q)


@pytest.mark.parametrize(
    "make",
    [
        lambda: reference_network("cigre_lv"),
        lambda: reference_network("1-LV-rural1--0-sw"),
        lambda: reference_network("kerber_landnetz_kabel_1"),
        pn.example_multivoltage,  # three-winding transformer, generators, shunts, switches
    ],
    ids=["cigre_lv", "simbench_rural1", "kerber", "multivoltage"],
)
def test_matches_pandapower(make):
    net = make()
    net.pop("profiles", None)
    for column in ("const_z_percent", "const_i_percent", "const_z_p_percent",
                   "const_i_p_percent", "const_z_q_percent", "const_i_q_percent"):  # fmt: skip
        if column in net.load:
            net.load[column] = 0.0
    compiled = CompiledNetwork.from_pandapower(net)
    state = compiled.solve(_rated_injections(compiled, 3.0))
    assert state.converged
    reference = copy.deepcopy(net)
    reference.sgen["p_mw"] *= 3.0
    reference.sgen["q_mvar"] *= 3.0
    pp.runpp(reference, numba=False)
    loading = state.loading_percent()
    for position, branch in enumerate(compiled.branches):
        expected = reference[RESULTS[branch.element_type]].loading_percent[branch.index]
        assert loading[position] == pytest.approx(expected, rel=1e-5, abs=1e-6), branch
    vm = state.vm_pu()
    for bus, value in vm.items():
        assert value == pytest.approx(reference.res_bus.vm_pu[bus], abs=1e-7)
    losses = sum(
        float(reference[table].pl_mw.sum())
        for table in ("res_line", "res_trafo", "res_trafo3w", "res_impedance")
        if table in reference and len(reference[table])
    )
    assert state.losses_mw() == pytest.approx(losses, rel=1e-4, abs=1e-9)


def test_warm_start_needs_fewer_iterations():
    compiled = CompiledNetwork.from_pandapower(reference_network("cigre_lv"))
    sbus = _rated_injections(compiled, 1.0)
    cold = compiled.solve(sbus)
    warm = compiled.solve(sbus * 1.001, cold)
    assert warm.converged
    assert warm.iterations < cold.iterations


def test_divergence_is_reported_not_raised():
    compiled = CompiledNetwork.from_pandapower(reference_network("cigre_lv"))
    state = compiled.solve(_rated_injections(compiled, 0.0) * 500.0)
    assert not state.converged
    assert np.isnan(state.loading_percent()).all()
