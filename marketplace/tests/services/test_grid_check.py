"""The grid step on stored trades: schedule building, baselines, write-back, holds, determinism."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import meter_point_assign_bus
from grid.models import GridCheckResult
from grid.selectors import grid_check_result_get
from marketplace.ledger.models import MeterReading, ReadingSource
from marketplace.models import Interval, IntervalState, Trade
from marketplace.services.grid_check import interval_grid_check, trades_update_curtailments
from marketplace.services.pipeline import interval_advance, interval_retry, intervals_due
from marketplace.tests.pipeline.helpers import community_with_homes, interval_at, trade

pytestmark = pytest.mark.django_db
NOON = datetime(2026, 6, 21, 11, 0, tzinfo=UTC)
EVENING = datetime(2026, 1, 15, 18, 0, tzinfo=UTC)


def _on_buses(homes, buses):
    for home, bus in zip(homes, buses, strict=True):
        home.meter_point = meter_point_assign_bus(
            meter_point=home.meter_point, bus=bus, assigned_by=None
        )


def test_light_trades_pass_and_the_result_is_stored():
    community, homes = community_with_homes(homes=3)
    _on_buses(homes, [19, 12, 22])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    trade(interval, seller=homes[0], buyer=homes[1], kwh="1.000", sequence=1)
    trade(interval, seller=None, buyer=homes[2], kwh="0.500", sequence=2)

    result = interval_grid_check(interval=interval)

    assert result.feasible
    assert result.held_reason == ""
    assert result.power_flows == 1
    assert result.curtailments == []
    assert result.trades_checked == 2
    assert result.scheduled_kwh == Decimal("1.500")
    figures = (
        result.min_vm_pu,
        result.max_vm_pu,
        result.max_line_loading_percent,
        result.max_trafo_loading_percent,
        result.losses_kw,
    )
    min_vm, max_vm, line, trafo, losses = (float(v or 0) for v in figures)
    assert 0.9 < min_vm < max_vm < 1.1
    assert line > 0
    assert trafo > 0
    assert losses > 0
    assert set(result.bus_vm_pu) >= {"19", "12", "22"}
    assert result.baselines == {"readings": 0, "profile": 0}
    assert grid_check_result_get(interval=interval) == result
    assert not Trade.objects.filter(interval=interval, curtailed_kwh__gt=0).exists()


@pytest.mark.parametrize("policy", ["sensitivity", "last_on_first_off"])
def test_overvoltage_curtails_exports_and_the_buyer_gets_grid_energy(policy):
    community, homes = community_with_homes(homes=5, curtailment_policy=policy)
    _on_buses(homes, [19, 18, 17, 16, 12])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    # 60 kWh in a quarter-hour = 240 kW of PV export at each feeder end: far too much. The
    # first is sold to a peer near the transformer, the others to the grid.
    exports = [
        trade(interval, seller=home, buyer=homes[4] if i == 1 else None, kwh="60.000",
              sequence=i, minute=i)
        for i, home in enumerate(homes[:4], start=1)
    ]  # fmt: skip

    assert interval_advance(interval_id=interval.pk, to_state=IntervalState.GRID_CHECKED)
    result = GridCheckResult.objects.get(interval=interval)

    assert result.feasible
    assert any(v["kind"] == "overvoltage" and v["caused_by_trades"] for v in result.violations)
    assert float(result.max_vm_pu or 0) <= 1.10 + 1e-9
    curtailed = {c["trade"]: Decimal(c["curtailed_kwh"]) for c in result.curtailments}
    assert curtailed
    assert set(curtailed) <= {t.pk for t in exports}
    assert {c["side"] for c in result.curtailments} == {"sell"}
    assert result.curtailed_kwh == sum(curtailed.values())
    for row in Trade.objects.filter(interval=interval):
        assert row.curtailed_kwh == curtailed.get(row.pk, Decimal(0))
        assert bool(row.curtailment_reason) == (row.pk in curtailed)
    # Confirmation: what the peer buyer does not get from the seller is not delivered by them.
    assert interval_advance(interval_id=interval.pk, to_state=IntervalState.CONFIRMED)
    peer = Trade.objects.get(pk=exports[0].pk)
    assert peer.confirmed_kwh == peer.quantity_kwh - peer.curtailed_kwh


def test_evening_inflexible_demand_is_flagged_and_a_flexible_ev_is_curtailed():
    community, homes = community_with_homes(homes=5)
    _on_buses(homes, [19, 18, 17, 16, 12])
    interval = interval_at(community, EVENING, state=IntervalState.CLEARED)
    # 20 kWh a quarter-hour = 80 kW bought from the grid by each far-end home: household demand.
    for i, home in enumerate(homes[:4], start=1):
        trade(interval, seller=None, buyer=home, kwh="20.000", sequence=i)
    result = interval_grid_check(interval=interval)
    assert result.feasible
    assert result.curtailments == []
    low = [v for v in result.violations if v["kind"] == "undervoltage"]
    assert low
    assert all(v["needs_grid_action"] and not v["caused_by_trades"] for v in low)
    assert float(result.min_vm_pu or 1) < 0.90  # reported as it flows

    ev = trade(interval, seller=homes[4], buyer=homes[0], kwh="2.750", sequence=9,
               buyer_flexible=True)  # fmt: skip
    result = interval_grid_check(interval=interval)  # re-run replaces the stored result
    assert GridCheckResult.objects.filter(interval=interval).count() == 1
    assert [(c["trade"], c["side"]) for c in result.curtailments] == [(ev.pk, "buy")]
    assert Trade.objects.get(pk=ev.pk).curtailed_kwh > 0


def test_baseline_from_readings_of_past_weeks():
    community, homes = community_with_homes(homes=2)
    _on_buses(homes, [19, 12])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    for weeks, exported in ((1, "10.000"), (2, "14.000"), (5, "99.000")):
        past = interval_at(community, NOON - timedelta(weeks=weeks), state=IntervalState.SETTLED)
        MeterReading.objects.create(
            meter_point=homes[0].meter_point, interval=past, imported_kwh=Decimal(0),
            exported_kwh=Decimal(exported), source=ReadingSource.API,
        )  # fmt: skip
    result = interval_grid_check(interval=interval)
    # Weeks 1 and 2 count (48 kW on average), week 5 is beyond the four-week window.
    assert result.baselines == {"readings": 1, "profile": 1}
    without = interval_at(community, NOON + timedelta(days=1), state=IntervalState.CLEARED)
    plain = interval_grid_check(interval=without)
    assert result.bus_vm_pu["19"] > plain.bus_vm_pu["19"] + 0.005


def test_unmapped_meter_point_is_reported_not_placed():
    community, homes = community_with_homes(homes=2)
    homes[1].meter_point.bus = None
    homes[1].meter_point.save(update_fields=["bus"])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    trade(interval, seller=homes[0], buyer=homes[1], kwh="0.500", sequence=1)

    result = interval_grid_check(interval=interval)

    assert result.feasible
    issue = next(v for v in result.violations if v["kind"] == "unmapped_meter_point")
    assert issue["element"] == f"meter point {homes[1].meter_point.pk}"


def test_community_without_grid_model_passes_with_a_note():
    community, homes = community_with_homes(homes=2, network=None)
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    trade(interval, seller=homes[0], buyer=homes[1], kwh="0.500", sequence=1)

    result = interval_grid_check(interval=interval)

    assert result.feasible
    assert result.power_flows == 0
    assert result.violations[0]["kind"] == "no_grid_model"


def test_infeasible_interval_is_held_until_the_manager_retries():
    community, homes = community_with_homes(homes=1)
    _on_buses(homes, [19])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    # 2 MW of household demand at the feeder end: no power flow converges, nothing to curtail.
    trade(interval, seller=None, buyer=homes[0], kwh="500.000", sequence=1)

    assert not interval_advance(interval_id=interval.pk, to_state=IntervalState.GRID_CHECKED)
    interval.refresh_from_db()
    assert interval.state == IntervalState.CLEARED
    assert "does not converge" in interval.held_reason
    result = grid_check_result_get(interval=interval)
    assert result is not None
    assert not result.feasible
    assert result.held_reason
    assert not Trade.objects.filter(interval=interval, curtailed_kwh__gt=0).exists()
    assert interval.pk not in {s.interval_id for s in intervals_due(now=NOON)}

    # The manager fixes it (here: the trade is made a tenth), then retries.
    Trade.objects.filter(interval=interval).update(quantity_kwh=Decimal("5.000"))
    assert interval_retry(interval=interval)
    interval.refresh_from_db()
    assert interval.state == IntervalState.GRID_CHECKED
    assert interval.held_reason == ""


def _curtailments_of_a_fresh_community(extra_homes: int) -> list[tuple[str, str, str]]:
    # Other rows first, so every id of this community differs from the other run's.
    community_with_homes(homes=extra_homes)
    community, homes = community_with_homes(homes=5)
    _on_buses(homes, [19, 18, 17, 16, 12])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    for i, home in enumerate(homes[:4], start=1):
        trade(interval, seller=home, buyer=homes[4] if i == 2 else None, kwh="55.000",
              sequence=i, minute=i % 2)  # fmt: skip
    interval_grid_check(interval=interval)
    return [
        (f"{t.source}-{t.sequence}", str(t.curtailed_kwh), t.curtailment_reason)
        for t in Trade.objects.filter(interval=interval).order_by("source", "sequence")
    ]


def test_same_orders_give_identical_curtailments_whatever_the_ids():
    first = _curtailments_of_a_fresh_community(extra_homes=0)
    second = _curtailments_of_a_fresh_community(extra_homes=3)
    assert any(kwh != "0.000" for _, kwh, _ in first)
    assert first == second


def test_curtailments_are_written_in_one_statement():
    community, homes = community_with_homes(homes=2)
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    rows = [
        trade(interval, seller=homes[0], buyer=None, kwh="1.000", sequence=i) for i in range(1, 51)
    ]
    values = [(t.pk, Decimal("0.125"), f"reason {i}") for i, t in enumerate(rows)]
    with CaptureQueriesContext(connection) as queries:
        trades_update_curtailments(values)
    assert len(queries) == 1
    stored = {t.pk: (t.curtailed_kwh, t.curtailment_reason) for t in Trade.objects.all()}
    assert stored[rows[7].pk] == (Decimal("0.125"), "reason 7")
    assert Interval.objects.get(pk=interval.pk).state == IntervalState.CLEARED


def _trade_rows(interval):
    return [
        (t.source, t.sequence, t.curtailed_kwh, t.curtailment_reason, t.buyer_network_use,
         t.seller_network_use)
        for t in Trade.objects.filter(interval=interval).order_by("source", "sequence")
    ]  # fmt: skip


@pytest.mark.parametrize("policy", ["sensitivity", "last_on_first_off"])
def test_the_check_with_network_uses_writes_what_the_check_and_the_uses_write_in_two(policy):
    """The pipeline's grid step (curtailments and network uses in one UPDATE) leaves every
    trade as the check followed by ``trade_network_uses_set`` does, and the same result."""
    from django.db import transaction

    from marketplace.services.network_charges import trade_network_uses_set

    community, homes = community_with_homes(homes=5, curtailment_policy=policy)
    _on_buses(homes, [19, 18, 17, 16, 12])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    # Far too much PV export at the feeder ends (see above), a peer trade and a purchase: some
    # trades curtailed, some not, sides on and off the network.
    for i, home in enumerate(homes[:4], start=1):
        trade(interval, seller=home, buyer=homes[4] if i == 1 else None, kwh="60.000",
              sequence=i, minute=i)  # fmt: skip
    trade(interval, seller=None, buyer=homes[4], kwh="0.500", sequence=5)
    Trade.objects.filter(interval=interval, sequence=5).update(curtailment_reason="kept")

    def outcome(result):
        return (result.feasible, result.curtailed_kwh, result.curtailments, result.violations,
                result.bus_vm_pu, result.loss_allocation)  # fmt: skip

    with transaction.atomic():
        two_steps = outcome(interval_grid_check(interval=interval))
        trade_network_uses_set(interval=interval)
        expected = _trade_rows(interval)
        transaction.set_rollback(True)
    assert any(row[2] > 0 for row in expected)
    assert any(row[2] == 0 for row in expected)
    assert all(row[4] is not None or row[5] is not None for row in expected)

    with CaptureQueriesContext(connection) as queries:
        one_step = outcome(interval_grid_check(interval=interval, network_uses=True))
    assert one_step == two_steps
    assert _trade_rows(interval) == expected
    trade_writes = [q for q in queries if q["sql"].startswith('UPDATE "marketplace_trade"')]
    assert len(trade_writes) == 1
