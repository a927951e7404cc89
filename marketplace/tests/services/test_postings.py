"""posting_create and posting_cancel: every rule with its error code and field."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from accounts.models import Membership, MembershipStatus
from config.errors import ErrorCode
from marketplace.models import BidStatus, IntervalState, PostingStatus
from marketplace.services.bids import bid_accept, bid_create
from marketplace.services.postings import posting_cancel, posting_create
from marketplace.tests.factories import T0, member, new_community, open_interval
from marketplace.tests.fixtures import post, refused

D = Decimal


def test_create_posting(alice, interval):
    posting = post(alice, interval, quantity="2.5", price="0.1500")
    assert posting.status == PostingStatus.OPEN
    assert posting.quantity_kwh == D("2.5")
    assert posting.allocated_kwh == 0
    assert posting.submitted_at == T0
    assert posting.auto_accept_best_bids is True


def test_create_posting_query_count(alice, interval, django_assert_max_num_queries):
    post(alice, interval)  # warm caches (content types etc.)
    with django_assert_max_num_queries(6):  # 4 statements, a savepoint and its release
        post(alice, interval, quantity="1")


def test_frozen_clock_is_used_without_now(alice, interval):
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):
        posting = posting_create(
            membership=alice.membership,
            meter_point=alice.meter_point,
            interval=interval,
            side="buy",
            quantity_kwh=D("1"),
            limit_price_per_kwh=D("0.3"),
        )
    assert posting.submitted_at == T0 + timedelta(minutes=3)
    with (
        time_machine.travel(interval.gate_closure_at, tick=False),
        refused(ErrorCode.INTERVAL_CLOSED, "interval"),
    ):
        posting_create(
            membership=alice.membership,
            meter_point=alice.meter_point,
            interval=interval,
            side="buy",
            quantity_kwh=D("1"),
            limit_price_per_kwh=D("0.3"),
        )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (MembershipStatus.PENDING, ErrorCode.NOT_APPROVED),
        (MembershipStatus.REJECTED, ErrorCode.NOT_APPROVED),
        (MembershipStatus.SUSPENDED, ErrorCode.SUSPENDED),
    ],
)
def test_member_must_be_approved_and_not_suspended(alice, interval, status, code):
    # The caller's object is stale on purpose: the service re-reads the status.
    Membership.objects.filter(pk=alice.membership.pk).update(status=status)
    with refused(code, "membership"):
        post(alice, interval)


def test_interval_closed_at_gate_closure(alice, interval):
    with refused(ErrorCode.INTERVAL_CLOSED, "interval"):
        post(alice, interval, now=interval.gate_closure_at)
    post(alice, interval, now=interval.gate_closure_at - timedelta(microseconds=1))


def test_interval_closed_by_state(alice, interval):
    type(interval).objects.filter(pk=interval.pk).update(state=IntervalState.GATE_CLOSED)
    with refused(ErrorCode.INTERVAL_CLOSED, "interval"):
        post(alice, interval)


@pytest.mark.parametrize("quantity", ["0", "-1", "0.000"])
def test_quantity_must_be_positive(alice, interval, quantity):
    with refused(ErrorCode.OUT_OF_RANGE, "quantity_kwh"):
        post(alice, interval, quantity=quantity)


def test_quantity_resolution_and_floats(alice, interval):
    with refused(ErrorCode.TOO_PRECISE, "quantity_kwh"):
        post(alice, interval, quantity="1.0001")
    with refused(ErrorCode.NOT_A_NUMBER, "limit_price_per_kwh"):
        posting_create(
            membership=alice.membership,
            meter_point=alice.meter_point,
            interval=interval,
            side="sell",
            quantity_kwh=D("1"),
            limit_price_per_kwh=0.1,  # type: ignore[arg-type]
            now=T0,
        )


def test_capacity_counts_other_postings_and_pending_bids(alice, bob, interval):
    # 20 kW for a quarter-hour: 5 kWh each way.
    post(alice, interval, side="sell", quantity="3")
    with refused(ErrorCode.OVER_CAPACITY, "quantity_kwh"):
        post(alice, interval, side="sell", quantity="2.001")
    post(alice, interval, side="sell", quantity="2")  # exactly at the limit
    # The buy side has its own limit.
    post(alice, interval, side="buy", quantity="5")
    with refused(ErrorCode.OVER_CAPACITY, "quantity_kwh"):
        post(alice, interval, side="buy", quantity="0.001")


def test_capacity_counts_pending_bids_on_the_same_side(alice, bob, interval):
    request = post(bob, interval, side="buy", quantity="4", price="0.3000")
    bid_create(
        membership=alice.membership,
        meter_point=alice.meter_point,
        posting=request,
        quantity_kwh=D("4"),
        price_per_kwh=D("0.25"),
        now=T0,
    )
    with refused(ErrorCode.OVER_CAPACITY, "quantity_kwh"):
        post(alice, interval, side="sell", quantity="1.001")
    post(alice, interval, side="sell", quantity="1")


def test_capacity_scales_with_interval_length(db):
    community = new_community(interval_minutes=60)
    interval = open_interval(community)
    dave = member(community, export_capacity_kw=D("3"))
    assert interval.hours == 1
    post(dave, interval, quantity="3")
    with refused(ErrorCode.OVER_CAPACITY, "quantity_kwh"):
        post(dave, interval, quantity="0.001")


@pytest.mark.parametrize("price", ["-0.0001", "0.5001", "7"])
def test_price_within_floor_and_cap(alice, interval, price):
    with refused(ErrorCode.OUT_OF_RANGE, "limit_price_per_kwh"):
        post(alice, interval, price=price)


def test_floor_and_cap_are_inclusive(alice, interval):
    post(alice, interval, price="0", quantity="1")
    post(alice, interval, price="0.5", quantity="1")


def test_meter_point_must_be_the_members(alice, bob, interval):
    with refused(ErrorCode.NOT_OWN_METER_POINT, "meter_point"):
        posting_create(
            membership=alice.membership,
            meter_point=bob.meter_point,
            interval=interval,
            side="sell",
            quantity_kwh=D("1"),
            limit_price_per_kwh=D("0.2"),
            now=T0,
        )


def test_side_must_be_buy_or_sell(alice, interval):
    with refused(ErrorCode.UNKNOWN_CHOICE, "side"):
        post(alice, interval, side="hold")


def test_interval_of_another_community(alice, db):
    other = open_interval(new_community())
    with refused(ErrorCode.PERMISSION_DENIED, "interval"):
        post(alice, other)


def test_cancel_expires_pending_bids_and_keeps_trades(alice, bob, carol, interval):
    offer = post(alice, interval, quantity="4")
    bids = [
        bid_create(
            membership=who.membership,
            meter_point=who.meter_point,
            posting=offer,
            quantity_kwh=D("1"),
            price_per_kwh=D("0.3"),
            now=T0,
        )
        for who in (bob, carol)
    ]
    bid_accept(bid=bids[0], by_membership=alice.membership, now=T0)
    cancelled = posting_cancel(posting=offer, by_membership=alice.membership, now=T0)
    assert cancelled.status == PostingStatus.CANCELLED
    bids[1].refresh_from_db()
    assert bids[1].status == BidStatus.EXPIRED
    assert offer.trades.count() == 1
    # Only the traded kWh still holds alice's export capacity.
    post(alice, interval, quantity="4")


def test_cancel_only_by_poster_only_while_open(alice, bob, interval):
    offer = post(alice, interval)
    with refused(ErrorCode.PERMISSION_DENIED, "posting"):
        posting_cancel(posting=offer, by_membership=bob.membership, now=T0)
    with refused(ErrorCode.INTERVAL_CLOSED, "interval"):
        posting_cancel(posting=offer, by_membership=alice.membership, now=interval.gate_closure_at)
    posting_cancel(posting=offer, by_membership=alice.membership, now=T0)
    with refused(ErrorCode.INVALID_STATE, "posting"):
        posting_cancel(posting=offer, by_membership=alice.membership, now=T0)
