"""Loss allocation by normalised marginal loss factors, on CIGRE LV and SimBench LV rural 1."""

from __future__ import annotations

import copy
from decimal import Decimal

import pandapower as pp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.losses import (
    allocate_losses,
    apportion,
    element_injections,
    marginal_loss_factors,
    network_losses_kw,
)
from grid.networks import reference_network


def solved(name: str):
    net = reference_network(name)
    pp.runpp(net, numba=False)
    return net


@pytest.fixture(scope="module")
def cigre():
    return solved("cigre_lv")


@pytest.fixture(scope="module")
def rural():
    return solved("1-LV-rural1--0-sw")


@pytest.mark.parametrize("name", ["cigre_lv", "1-LV-rural1--0-sw"])
def test_loss_factors_match_a_second_power_flow(name):
    net = solved(name)
    factors = marginal_loss_factors(net)
    base = network_losses_kw(net)
    slack = {int(b) for b in net.ext_grid.bus}
    for bus in [b for b in factors if b not in slack][::3]:
        again = copy.deepcopy(net)
        pp.create_sgen(again, bus, p_mw=0.001)  # 1 kW more injected at the bus
        pp.runpp(again, numba=False)
        finite_difference = network_losses_kw(again) - base
        assert factors[bus] == pytest.approx(finite_difference, abs=2e-3, rel=0.05)
    assert all(factors[b] == 0.0 for b in slack)


@pytest.mark.parametrize("fixture", ["cigre", "rural"])
def test_allocations_sum_to_the_power_flows_losses(fixture, request):
    net = request.getfixturevalue(fixture)
    allocation = allocate_losses(net, element_injections(net))
    assert allocation.method == "marginal"
    assert allocation.losses_kw == pytest.approx(
        1000 * (net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()), rel=1e-12
    )
    assert sum(allocation.allocated_kw.values()) == pytest.approx(allocation.losses_kw, rel=1e-12)
    kwh = allocation.allocated_kwh(Decimal("0.25"))
    assert sum(kwh.values()) == (Decimal(repr(allocation.losses_kw)) / 4).quantize(Decimal("0.001"))


def test_a_load_far_down_the_feeder_bears_more_than_one_near_the_transformer(cigre):
    # Two equal 10 kW withdrawals on the residential feeder: far end (bus 19) and near (bus 3).
    net = copy.deepcopy(cigre)
    far = pp.create_load(net, 19, p_mw=0.01)
    near = pp.create_load(net, 3, p_mw=0.01)
    pp.runpp(net, numba=False)
    allocation = allocate_losses(net, element_injections(net))
    assert allocation.allocated_kw[("load", far)] > 2 * allocation.allocated_kw[("load", near)]


def test_an_export_that_relieves_the_feeder_is_credited(cigre):
    # The base case draws power down every feeder; PV at a loaded feeder's end reduces losses.
    net = copy.deepcopy(cigre)
    pv = pp.create_sgen(net, 19, p_mw=0.005)
    pp.runpp(net, numba=False)
    allocation = allocate_losses(net, element_injections(net))
    assert allocation.allocated_kw[("sgen", pv)] < 0
    assert sum(allocation.allocated_kw.values()) == pytest.approx(allocation.losses_kw)


def test_no_flow_falls_back_to_proportional_shares(cigre):
    net = copy.deepcopy(cigre)
    pp.runpp(net, numba=False)
    injections = {"a": (19, 0.0), "b": (3, 0.0)}
    allocation = allocate_losses(net, injections)
    assert allocation.method == "proportional"
    assert allocation.allocated_kw == {"a": 0.0, "b": 0.0}


def test_an_injection_on_an_unknown_bus_is_refused(cigre):
    with pytest.raises(ValueError, match="bus 999"):
        allocate_losses(cigre, {"x": (999, 1.0)})


def test_an_unsolved_net_is_refused():
    with pytest.raises(ValueError, match="converged"):
        marginal_loss_factors(reference_network("cigre_lv"))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from([3, 8, 12, 16, 19, 24, 31, 36, 41]), st.floats(-30, 30)),
        min_size=1,
        max_size=8,
    )
)
def test_allocations_always_sum_to_the_losses(cigre, members):
    net = copy.deepcopy(cigre)
    for bus, kw in members:
        pp.create_sgen(net, bus, p_mw=kw / 1000)
    pp.runpp(net, numba=False)
    allocation = allocate_losses(net, element_injections(net))
    assert sum(allocation.allocated_kw.values()) == pytest.approx(allocation.losses_kw, rel=1e-9)
    hours = Decimal("0.25")
    kwh = allocation.allocated_kwh(hours)
    assert sum(kwh.values()) == (Decimal(repr(allocation.losses_kw)) * hours).quantize(
        Decimal("0.001")
    )


@given(
    st.dictionaries(
        st.integers(0, 50), st.floats(-100, 100, allow_nan=False), min_size=1, max_size=30
    )
)
def test_apportion_sums_exactly_and_moves_each_share_less_than_a_step(shares):
    total = Decimal(repr(sum(shares.values())))
    rounded = apportion(total, shares)
    assert sum(rounded.values()) == total.quantize(Decimal("0.001"))
    for key, share in shares.items():
        assert abs(float(rounded[key]) - share) < 0.001 + 1e-9
        assert rounded[key] == rounded[key].quantize(Decimal("0.001"))
