"""Loss allocation on the grid check's own converged state, on CIGRE LV and SimBench LV rural 1."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.check import GridNetwork, Placement, Schedule, ScheduleEntry, grid_check
from grid.losses import allocate_state_losses, linearise_state, loss_factors_at
from grid.networks import reference_network

NOON = datetime(2025, 6, 21, 11, 0, tzinfo=UTC)
KWH = Decimal("0.001")
HOURS = Decimal("0.25")


@pytest.fixture(scope="module")
def cigre():
    return GridNetwork.from_pandapower(reference_network("cigre_lv"))


@pytest.fixture(scope="module")
def rural():
    return GridNetwork.from_pandapower(reference_network("1-LV-rural1--0-sw"))


def _outcome(network, rows):
    """Meter point ``mp<i>`` on bus ``rows[i][0]`` with net power ``rows[i][1]`` kW."""
    placements = tuple(Placement(f"mp{i}", bus) for i, (bus, _) in enumerate(rows))
    entries = tuple(ScheduleEntry(f"e{i}", f"mp{i}", kw, False) for i, (_, kw) in enumerate(rows))
    outcome = grid_check(network, Schedule(NOON, placements, entries))
    assert outcome.feasible
    return outcome, {
        p.meter_point: (p.bus, outcome.injection_kw[p.meter_point]) for p in placements
    }


def _assert_exact(outcome, allocation):
    assert allocation.losses_kw == pytest.approx(outcome.final.losses_kw, rel=1e-12)
    assert sum(allocation.allocated_kw.values()) == pytest.approx(allocation.losses_kw, rel=1e-9)
    kwh = allocation.allocated_kwh(HOURS)
    assert sum(kwh.values()) == (Decimal(repr(outcome.final.losses_kw)) * HOURS).quantize(KWH)


@pytest.mark.parametrize(
    ("fixture", "rows"),
    [
        ("cigre", [(19, 6.0), (12, -4.0), (22, -3.0), (41, 2.5), (36, -7.0)]),
        ("rural", [(4, 8.0), (3, -5.0), (13, -2.0), (9, 3.0)]),
    ],
)
def test_allocations_sum_to_the_check_states_losses_exactly(fixture, rows, request):
    network = request.getfixturevalue(fixture)
    outcome, members = _outcome(network, rows)
    allocation = allocate_state_losses(outcome.state, members)
    assert allocation.method == "marginal"
    _assert_exact(outcome, allocation)
    # The elements that follow profiles bear their own share, bus by bus.
    rest = [key for key in allocation.allocated_kw if key.startswith("bus ")]
    assert rest
    assert set(allocation.allocated_kw) == set(members) | set(rest)


def test_loss_factors_of_the_state_match_a_second_power_flow(cigre):
    outcome, _ = _outcome(cigre, [(19, 6.0), (12, -4.0), (36, -7.0)])
    state = outcome.state
    compiled = state.network
    factors = loss_factors_at(linearise_state(state))
    sbus = state.v * np.conj(compiled.ybus @ state.v)
    base = state.losses_mw() * 1000
    for bus in (19, 12, 36, 41):
        again = sbus.copy()
        again[compiled.ppci_bus(bus)] += 1e-3 / compiled.base_mva  # 1 kW more at the bus
        moved = compiled.solve(again, state)
        assert moved.converged
        assert factors[bus] == pytest.approx(moved.losses_mw() * 1000 - base, abs=2e-3, rel=0.05)


def test_a_far_end_load_bears_more_than_the_same_load_near_the_transformer(cigre):
    outcome, members = _outcome(cigre, [(19, -10.0), (2, -10.0)])
    allocation = allocate_state_losses(outcome.state, members)
    assert allocation.allocated_kw["mp0"] > allocation.allocated_kw["mp1"] > 0


def test_a_member_on_a_bus_out_of_service_or_a_state_not_converged_is_refused(cigre):
    outcome, members = _outcome(cigre, [(19, 1.0)])
    with pytest.raises(ValueError, match="not an in-service bus"):
        allocate_state_losses(outcome.state, {"ghost": (10_000, 1.0)})
    diverged = cigre.compiled.solve(cigre.compiled.sbus_fixed * 0 - 1e3, None)
    assert not diverged.converged
    with pytest.raises(ValueError, match="converged"):
        allocate_state_losses(diverged, members)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from([3, 4, 5, 9, 12, 13]), st.floats(-25, 25)),
        min_size=1,
        max_size=8,
    )
)
def test_property_the_shares_always_sum_to_the_losses_exactly(rural, rows):
    outcome, members = _outcome(rural, rows)
    _assert_exact(outcome, allocate_state_losses(outcome.state, members))
