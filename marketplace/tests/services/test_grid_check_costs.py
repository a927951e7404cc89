"""The grid step's losses and system strength, stored, and the losses settled through the ledger."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.services import meter_point_assign_bus
from config import formatting
from grid.models import GridCheckResult
from grid.strength import STRENGTH_REASON
from marketplace.ledger.models import (
    AccountKind,
    EntryKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    MeterReading,
    ReadingSource,
)
from marketplace.ledger.selectors import account_balance, member_statement
from marketplace.ledger.services import interval_settle, ledger_verify
from marketplace.models import IntervalState, Trade
from marketplace.selectors.prosumer import my_loss_shares
from marketplace.services.grid_check import interval_grid_check
from marketplace.services.pipeline import interval_advance
from marketplace.tests.pipeline.helpers import community_with_homes, interval_at, trade

pytestmark = pytest.mark.django_db
NOON = datetime(2026, 6, 21, 11, 0, tzinfo=UTC)
KWH = Decimal("0.001")
CENT = Decimal("0.01")
# SimBench 1-LV-rural1--0-sw: bus 4 ends the longest feeder (S''k about 2.0 MVA), bus 6 is the
# first bus after the transformer's busbar (about 3.5 MVA).
WEAK, STRONG = 4, 6


def _on_buses(homes, buses):
    for home, bus in zip(homes, buses, strict=True):
        home.meter_point = meter_point_assign_bus(
            meter_point=home.meter_point, bus=bus, assigned_by=None
        )


def test_the_intervals_losses_are_shared_by_the_meter_points_that_traded():
    community, homes = community_with_homes(homes=3)
    _on_buses(homes, [19, 12, 22])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    trade(interval, seller=homes[0], buyer=homes[1], kwh="2.000", sequence=1)
    trade(interval, seller=None, buyer=homes[2], kwh="1.500", sequence=2)

    result = interval_grid_check(interval=interval)

    assert result.losses_kwh == (Decimal(repr(result.losses_kw)) / 4).quantize(KWH)
    assert set(result.loss_allocation) == {str(h.meter_point.pk) for h in homes}
    shares = {mp: Decimal(kwh) for mp, kwh in result.loss_allocation.items()}
    assert all(share == share.quantize(KWH) for share in shares.values())
    # The members' part of the losses; the rest is that of the loads no member stands for.
    assert result.losses_kwh is not None
    assert abs(sum(shares.values(), Decimal(0))) <= result.losses_kwh


def _settle_with_readings(interval, homes):
    for home in homes:
        sold = sum(
            (
                t.confirmed_kwh
                for t in Trade.objects.filter(interval=interval, seller=home.membership)
            ),
            Decimal(0),
        )
        bought = sum(
            (
                t.confirmed_kwh
                for t in Trade.objects.filter(interval=interval, buyer=home.membership)
            ),
            Decimal(0),
        )
        MeterReading.objects.create(
            meter_point=home.meter_point,
            interval=interval,
            imported_kwh=bought,
            exported_kwh=sold,
            source=ReadingSource.CSV,
        )
    return interval_settle(interval=interval, now=interval.end + timedelta(minutes=5))


def test_losses_are_settled_to_the_losses_account_balanced_and_once():
    community, homes = community_with_homes(homes=3)
    _on_buses(homes, [19, 12, 22])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    trade(interval, seller=homes[0], buyer=homes[1], kwh="6.000", sequence=1)
    trade(interval, seller=None, buyer=homes[2], kwh="4.000", sequence=2)
    assert interval_advance(interval_id=interval.pk, to_state=IntervalState.GRID_CHECKED)
    assert interval_advance(interval_id=interval.pk, to_state=IntervalState.CONFIRMED)
    shares = GridCheckResult.objects.get(interval=interval).loss_allocation

    first = _settle_with_readings(interval, homes)
    again = interval_settle(interval=interval, now=interval.end + timedelta(hours=2))

    assert first.created
    assert not again.created
    assert again.transaction_id == first.transaction_id
    price = interval.rules.retail_tariff  # no loss price set: the retail tariff
    entries = LedgerEntry.objects.filter(kind=EntryKind.LOSSES, account__kind=AccountKind.MEMBER)
    meter_point_of = {h.membership.pk: h.meter_point.pk for h in homes}
    booked = {meter_point_of[e.account.membership_id or 0]: e for e in entries}
    nonzero = {int(mp): Decimal(kwh) for mp, kwh in shares.items() if Decimal(kwh)}
    assert set(booked) == set(nonzero)
    for mp, entry in booked.items():
        assert entry.energy_kwh == nonzero[mp]
        assert entry.amount == (-price * nonzero[mp]).quantize(CENT)
    losses = LedgerAccount.objects.get(community=community, kind=AccountKind.LOSSES)
    assert account_balance(account=losses) == -sum(e.amount for e in booked.values())
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for transaction_id, amount in LedgerEntry.objects.values_list("transaction_id", "amount"):
        totals[transaction_id] += amount
    assert set(totals.values()) == {Decimal(0)}
    assert LedgerTransaction.objects.count() == 1
    assert ledger_verify().ok
    # Statements and My trades show each member's share.
    far = homes[0]
    statement = member_statement(membership=far.membership, year=2026, month=6)
    row = next(r for r in statement.rows if r.interval_start == interval.start)
    assert row.losses_kwh == nonzero[far.meter_point.pk]
    assert [s.kwh for s in my_loss_shares(membership=far.membership)] == [row.losses_kwh]


def test_a_pv_heavy_weak_bus_is_curtailed_for_system_strength_a_strong_one_is_not():
    community, homes = community_with_homes(
        homes=2, network="1-LV-rural1--0-sw", min_short_circuit_ratio=Decimal("30")
    )
    _on_buses(homes, [WEAK, STRONG])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    # 80 kW and 60 kW of PV export for a quarter-hour, sold to the grid.
    weak = trade(interval, seller=homes[0], buyer=None, kwh="20.000", sequence=1)
    strong = trade(interval, seller=homes[1], buyer=None, kwh="15.000", sequence=2)

    result = interval_grid_check(interval=interval)

    assert result.feasible
    (event,) = result.strength_events
    assert event["bus"] == WEAK
    assert event["ratio"] < 30 == event["min_ratio"]
    assert event["hostable_kw"] == pytest.approx(event["short_circuit_mva"] * 1000 / 30, abs=1e-3)
    assert any(v["kind"] == "system_strength" for v in result.violations)
    weak.refresh_from_db()
    strong.refresh_from_db()
    assert strong.curtailed_kwh == 0
    # 80 kW down to what the bus can take, as energy in the quarter-hour.
    expected = (Decimal(repr(80 - event["hostable_kw"])) / 4).quantize(KWH)
    assert abs(weak.curtailed_kwh - expected) <= KWH
    assert result.strength_curtailed_kwh == weak.curtailed_kwh
    assert weak.curtailment_reason.startswith(STRENGTH_REASON)
    plain = formatting.curtailment_reason(weak.curtailment_reason).plain
    assert "too weak for more inverter power" in plain


def test_the_default_minimum_ratio_leaves_the_same_exports_alone():
    community, homes = community_with_homes(homes=2, network="1-LV-rural1--0-sw")
    _on_buses(homes, [WEAK, STRONG])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    trade(interval, seller=homes[0], buyer=None, kwh="20.000", sequence=1)
    trade(interval, seller=homes[1], buyer=None, kwh="15.000", sequence=2)
    result = interval_grid_check(interval=interval)
    assert result.strength_events == []
    assert result.strength_curtailed_kwh == 0
    assert not Trade.objects.filter(interval=interval, curtailed_kwh__gt=0).exists()


def test_the_api_shows_the_intervals_losses_and_system_strength_events():
    from rest_framework.test import APIClient

    community, homes = community_with_homes(
        homes=2, network="1-LV-rural1--0-sw", min_short_circuit_ratio=Decimal("30")
    )
    _on_buses(homes, [WEAK, STRONG])
    interval = interval_at(community, NOON, state=IntervalState.CLEARED)
    trade(interval, seller=homes[0], buyer=homes[1], kwh="20.000", sequence=1)
    result = interval_grid_check(interval=interval)
    client = APIClient()
    client.force_authenticate(user=homes[1].membership.user)

    body = client.get(f"/api/v1/intervals/{interval.pk}/grid-check/").json()

    assert Decimal(body["losses_kwh"]) == result.losses_kwh
    assert [e["bus"] for e in body["strength_events"]] == [WEAK]
    assert Decimal(body["strength_curtailed_kwh"]) == result.strength_curtailed_kwh > 0
    assert "loss_allocation" not in body  # who bears which share is not for the board
