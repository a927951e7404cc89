"""The autopilot: its settings are checked, and it posts the forecast within the member's limits,
once per interval, never where the member posted or bid, and never when it is off."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from accounts.services import membership_suspend, meter_point_register
from config.errors import ErrorCode
from marketplace.ledger.models import MeterReading, ReadingSource
from marketplace.models import Autopilot, Interval, IntervalState, Posting, PostingStatus
from marketplace.services.autopilot import (
    AutopilotSettings,
    autopilot_post_due,
    autopilot_switch_off,
    autopilot_switch_on,
)
from marketplace.services.postings import posting_cancel, posting_create
from marketplace.tasks import autopilot_tick_task
from marketplace.tests.factories import Member
from marketplace.tests.fixtures import bid, post, refused

D = Decimal
# The community's default rules: 15-minute intervals, prices 0 to 0.50, feed-in 0.08, retail
# 0.32 (midpoint 0.20); the members' meter points carry 20 kW each way (5 kWh an interval).
GOOD = AutopilotSettings(
    strategy="between-tariffs",
    max_buy_kwh="1.500",
    max_sell_kwh="1.500",
    sell_floor_per_kwh="0.1000",
    buy_ceiling_per_kwh="0.3000",
)


def _replace(**changes: str) -> AutopilotSettings:
    values = {
        "strategy": GOOD.strategy,
        "max_buy_kwh": GOOD.max_buy_kwh,
        "max_sell_kwh": GOOD.max_sell_kwh,
        "sell_floor_per_kwh": GOOD.sell_floor_per_kwh,
        "buy_ceiling_per_kwh": GOOD.buy_ceiling_per_kwh,
    }
    values.update(changes)
    return AutopilotSettings(**values)  # type: ignore[arg-type]


def history(who: Member, interval: Interval, *, exported: str = "0", imported: str = "0",
            weeks: tuple[int, ...] = (1, 2)) -> None:  # fmt: skip
    """Metered readings of ``who`` at the interval's time of day, ``weeks`` weeks before."""
    for k in weeks:
        start = interval.start - timedelta(weeks=k)
        past, _ = Interval.objects.get_or_create(
            community=interval.community, start=start,
            defaults={"rules": interval.rules, "end": start + timedelta(minutes=15),
                      "gate_closure_at": start - timedelta(minutes=5),
                      "state": IntervalState.SETTLED},
        )  # fmt: skip
        MeterReading.objects.create(
            meter_point=who.meter_point, interval=past, imported_kwh=D(imported),
            exported_kwh=D(exported), source=ReadingSource.API,
        )  # fmt: skip


def switch_on(who: Member, **changes: str) -> Autopilot:
    return autopilot_switch_on(
        membership=who.membership, meter_point=who.meter_point, settings=_replace(**changes)
    )


def before_gate(interval: Interval, minutes: int = 5):
    return interval.gate_closure_at - timedelta(minutes=minutes)


def next_interval(interval: Interval) -> Interval:
    later = Interval.objects.filter(community=interval.community, start__gt=interval.start)
    found = later.select_related("rules").order_by("start").first()
    assert found is not None
    return found


def autopilot_postings() -> list[Posting]:
    return list(Posting.objects.filter(autopilot=True).order_by("pk"))


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"strategy": "always-win"}, ErrorCode.UNKNOWN_CHOICE, "strategy"),
        ({"max_buy_kwh": "5.001"}, ErrorCode.OVER_CAPACITY, "max_buy_kwh"),
        ({"max_sell_kwh": "99"}, ErrorCode.OVER_CAPACITY, "max_sell_kwh"),
        ({"max_sell_kwh": "-1"}, ErrorCode.OUT_OF_RANGE, "max_sell_kwh"),
        ({"max_buy_kwh": "lots"}, ErrorCode.NOT_A_NUMBER, "max_buy_kwh"),
        ({"max_buy_kwh": "0", "max_sell_kwh": "0"}, ErrorCode.OUT_OF_RANGE, "max_sell_kwh"),
        ({"buy_ceiling_per_kwh": "0.5001"}, ErrorCode.OUT_OF_RANGE, "buy_ceiling_per_kwh"),
        ({"sell_floor_per_kwh": "-0.01"}, ErrorCode.OUT_OF_RANGE, "sell_floor_per_kwh"),
        ({"sell_floor_per_kwh": "0.3001"}, ErrorCode.OUT_OF_RANGE, "sell_floor_per_kwh"),
        ({"sell_floor_per_kwh": "0.123456"}, ErrorCode.TOO_PRECISE, "sell_floor_per_kwh"),
    ],
)
def test_bad_settings_are_refused_with_the_field_and_nothing_is_stored(
    alice, interval, change, code, field
):
    with refused(code, field):
        switch_on(alice, **change)
    assert not Autopilot.objects.exists()


def test_the_limits_may_reach_the_capacity_and_the_floor_the_ceiling(alice, interval):
    pilot = switch_on(alice, max_buy_kwh="5", sell_floor_per_kwh="0.3", buy_ceiling_per_kwh="0.3")
    assert pilot.enabled
    assert pilot.max_buy_kwh == D("5")


def test_someone_elses_meter_point_is_refused(alice, bob, interval):
    with refused(ErrorCode.NOT_OWN_METER_POINT, "meter_point"):
        autopilot_switch_on(membership=alice.membership, meter_point=bob.meter_point, settings=GOOD)
    assert not Autopilot.objects.exists()


def test_a_meter_point_not_approved_yet_is_refused(alice, interval):
    pending = meter_point_register(
        membership=alice.membership, label="shed", import_capacity_kw=D(5), export_capacity_kw=D(5)
    )
    with refused(ErrorCode.METER_POINT_NOT_APPROVED, "meter_point"):
        autopilot_switch_on(membership=alice.membership, meter_point=pending, settings=GOOD)
    assert not Autopilot.objects.exists()


def test_a_suspended_member_cannot_switch_it_on(alice, interval):
    membership_suspend(membership=alice.membership, reason="unpaid", decided_by=None)
    with refused(ErrorCode.SUSPENDED, "membership"):
        switch_on(alice)


# --- posting ----------------------------------------------------------------------------------


def test_posts_the_forecast_within_the_limits(alice, bob, interval):
    history(alice, interval, exported="2.000")  # 8 kW exported at this time of day
    history(bob, interval, imported="0.500")  # 2 kW imported
    switch_on(alice, sell_floor_per_kwh="0.2500")
    switch_on(bob, strategy="at-limits", buy_ceiling_per_kwh="0.2800")
    posted = autopilot_post_due(now=before_gate(interval))
    offer, request = sorted(posted, key=lambda p: p.side, reverse=True)
    # 2 kWh forecast, 1.5 allowed; the midpoint 0.20 is below Alice's floor, so the floor.
    assert (offer.membership_id, offer.side, offer.quantity_kwh) == (
        alice.membership.pk,
        "sell",
        D("1.5"),
    )
    assert offer.limit_price_per_kwh == D("0.25")
    # 0.5 kWh forecast is within Bob's 1.5; at his own ceiling.
    assert (request.membership_id, request.side, request.quantity_kwh) == (
        bob.membership.pk,
        "buy",
        D("0.5"),
    )
    assert request.limit_price_per_kwh == D("0.28")
    assert offer.autopilot
    assert request.autopilot
    assert offer.interval_id == request.interval_id == interval.pk


def test_a_side_with_no_allowance_is_never_posted(alice, interval):
    history(alice, interval, imported="1.000")
    switch_on(alice, max_buy_kwh="0", max_sell_kwh="3")
    assert autopilot_post_due(now=before_gate(interval)) == []


def test_never_twice_for_one_interval(alice, interval):
    history(alice, interval, exported="1.000")
    switch_on(alice)
    assert len(autopilot_post_due(now=before_gate(interval, 8))) == 1
    assert autopilot_post_due(now=before_gate(interval, 2)) == []
    assert len(autopilot_postings()) == 1
    # Even called directly, the posting service refuses a second one under its lock.
    with refused(ErrorCode.ALREADY_POSTED, "interval"):
        posting_create(
            membership=alice.membership, meter_point=alice.meter_point, interval=interval,
            side="sell", quantity_kwh="1", limit_price_per_kwh="0.2", autopilot=True,
            now=before_gate(interval),
        )  # fmt: skip


@pytest.mark.parametrize("what", ["posting", "bid", "cancelled posting"])
def test_never_where_the_member_acted_themselves(alice, bob, interval, what):
    history(alice, interval, exported="1.000")
    switch_on(alice)
    now = before_gate(interval)
    if what == "bid":
        bid(
            alice, post(bob, interval, side="buy", price="0.3000", now=now), price="0.2500", now=now
        )
    else:
        mine = post(alice, interval, quantity="0.4", now=now)
        if what == "cancelled posting":
            posting_cancel(posting=mine, by_membership=alice.membership, now=now)
    assert autopilot_post_due(now=now) == []
    assert autopilot_postings() == []


def test_nothing_when_off_or_never_on(alice, bob, interval):
    history(alice, interval, exported="1.000")
    history(bob, interval, exported="1.000")
    switch_on(alice)
    autopilot_switch_off(membership=alice.membership, meter_point=alice.meter_point)
    assert autopilot_post_due(now=before_gate(interval)) == []  # Bob never switched it on
    assert Autopilot.objects.get().enabled is False


def test_nothing_for_a_suspended_member(alice, interval):
    history(alice, interval, exported="1.000")
    switch_on(alice)
    membership_suspend(membership=alice.membership, reason="unpaid", decided_by=None)
    assert autopilot_post_due(now=before_gate(interval)) == []


def test_nothing_without_history_or_outside_the_lead(alice, interval):
    switch_on(alice)
    assert autopilot_post_due(now=before_gate(interval)) == []  # no readings at all
    history(alice, interval, exported="1.000")
    assert autopilot_post_due(now=before_gate(interval, 30)) == []  # too early
    assert autopilot_post_due(now=interval.gate_closure_at) == []  # closed


def test_switching_off_withdraws_its_open_postings_only(alice, bob, interval):
    history(alice, interval, exported="1.000")
    switch_on(alice)
    now = before_gate(interval)
    (posting,) = autopilot_post_due(now=now)
    mine = post(alice, next_interval(interval), now=now)
    assert (
        autopilot_switch_off(membership=alice.membership, meter_point=alice.meter_point, now=now)
        == 1
    )
    posting.refresh_from_db()
    mine.refresh_from_db()
    assert posting.status == PostingStatus.CANCELLED
    assert mine.status == PostingStatus.OPEN  # the member's own posting is theirs to cancel
    # Switched on again, it keeps off the interval it already posted in.
    switch_on(alice)
    assert autopilot_post_due(now=now) == []


def test_beats_task_and_the_replayed_clock_post_through_the_service(alice, bob, interval):
    history(alice, interval, exported="1.000")
    switch_on(alice)
    with time_machine.travel(before_gate(interval), tick=False):
        assert autopilot_tick_task() == 1
        assert autopilot_tick_task() == 0
    nxt = next_interval(interval)
    history(bob, nxt, imported="1.000")
    switch_on(bob)
    with time_machine.travel(before_gate(interval), tick=False):
        call_command(
            "advance_intervals", "--now", nxt.gate_closure_at.isoformat(), stdout=StringIO()
        )
    assert Posting.objects.filter(autopilot=True, membership=bob.membership, interval=nxt).exists()
