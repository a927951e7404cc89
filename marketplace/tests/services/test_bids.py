"""Bids: creation rules, acceptance (partial, many, never over-allocated), reject, withdraw."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from accounts.models import Membership, MembershipStatus
from config.errors import ApplicationError, ErrorCode
from conftest import requires_postgres
from marketplace.models import (
    Bid,
    BidStatus,
    Posting,
    PostingStatus,
    Trade,
    TradeSource,
)
from marketplace.services.bids import (
    bid_accept,
    bid_reject,
    bid_withdraw,
    bids_accept_many,
)
from marketplace.tests.factories import T0, member, new_community, open_interval
from marketplace.tests.fixtures import bid, post, refused

D = Decimal


def test_bid_on_offer(alice, bob, interval):
    offer = post(alice, interval, quantity="3", price="0.2")
    made = bid(bob, offer, quantity="2", price="0.25")
    assert made.status == BidStatus.PENDING
    assert made.submitted_at == T0


def test_no_bid_on_own_posting(alice, interval):
    offer = post(alice, interval)
    with refused(ErrorCode.OWN_POSTING, "posting"):
        bid(alice, offer)


def test_bidder_must_be_approved(alice, bob, interval):
    offer = post(alice, interval)
    Membership.objects.filter(pk=bob.membership.pk).update(status=MembershipStatus.SUSPENDED)
    with refused(ErrorCode.SUSPENDED, "membership"):
        bid(bob, offer)
    Membership.objects.filter(pk=bob.membership.pk).update(status=MembershipStatus.PENDING)
    with refused(ErrorCode.NOT_APPROVED, "membership"):
        bid(bob, offer)


def test_bid_price_must_satisfy_the_posting(alice, bob, interval):
    offer = post(alice, interval, side="sell", price="0.2")
    with refused(ErrorCode.OUT_OF_RANGE, "price_per_kwh"):
        bid(bob, offer, price="0.1999")
    bid(bob, offer, price="0.2")
    request = post(alice, interval, side="buy", price="0.2")
    with refused(ErrorCode.OUT_OF_RANGE, "price_per_kwh"):
        bid(bob, request, price="0.2001")
    bid(bob, request, price="0.2")


def test_bid_price_within_floor_and_cap(alice, bob, interval):
    offer = post(alice, interval, price="0.2")
    with refused(ErrorCode.OUT_OF_RANGE, "price_per_kwh"):
        bid(bob, offer, price="0.5001")


def test_bid_quantity_rules(alice, bob, interval):
    offer = post(alice, interval, quantity="2")
    with refused(ErrorCode.OUT_OF_RANGE, "quantity_kwh"):
        bid(bob, offer, quantity="0")
    with refused(ErrorCode.OUT_OF_RANGE, "quantity_kwh"):
        bid(bob, offer, quantity="2.001")


def test_bid_capacity_on_the_bidders_side(alice, bob, carol, interval):
    # Bob buys: his import capacity is 5 kWh in a quarter-hour.
    post(bob, interval, side="buy", quantity="4", price="0.3")
    offer = post(alice, interval, quantity="5")
    with refused(ErrorCode.OVER_CAPACITY, "quantity_kwh"):
        bid(bob, offer, quantity="1.001")
    bid(bob, offer, quantity="1")


def test_bid_meter_point_and_interval(alice, bob, interval):
    offer = post(alice, interval)
    with refused(ErrorCode.NOT_OWN_METER_POINT, "meter_point"):
        bid(type(bob)(bob.membership, alice.meter_point), offer)
    with refused(ErrorCode.INTERVAL_CLOSED, "interval"):
        bid(bob, offer, now=interval.gate_closure_at)


def test_no_bids_in_a_pool_market(db):
    community = new_community(market_structure="pool")
    interval = open_interval(community)
    seller, buyer = member(community), member(community)
    offer = post(seller, interval)
    with refused(ErrorCode.BIDDING_NOT_ALLOWED, "posting"):
        bid(buyer, offer)


def test_accept_in_full_creates_a_bilateral_trade(alice, bob, interval):
    offer = post(alice, interval, quantity="3", price="0.2", now=T0)
    made = bid(bob, offer, quantity="2", price="0.25", now=T0 + timedelta(minutes=1))
    trade = bid_accept(bid=made, by_membership=alice.membership, now=T0 + timedelta(minutes=2))
    assert trade.source == TradeSource.BILATERAL
    assert (trade.buyer_id, trade.seller_id) == (bob.membership.pk, alice.membership.pk)
    assert trade.buyer_meter_point_id == bob.meter_point.pk
    assert trade.quantity_kwh == D("2")
    assert trade.price_per_kwh == trade.seller_price_per_kwh == D("0.25")
    assert trade.orders_submitted_at == T0 + timedelta(minutes=1)
    assert trade.sequence == 1
    offer.refresh_from_db()
    made.refresh_from_db()
    assert (offer.allocated_kwh, offer.status) == (D("2"), PostingStatus.OPEN)
    assert (made.accepted_kwh, made.status) == (D("2"), BidStatus.ACCEPTED)


def test_accept_on_a_request(alice, bob, interval):
    request = post(alice, interval, side="buy", quantity="3", price="0.3")
    made = bid(bob, request, quantity="3", price="0.22")
    trade = bid_accept(bid=made, by_membership=alice.membership, now=T0)
    assert (trade.buyer_id, trade.seller_id) == (alice.membership.pk, bob.membership.pk)
    assert trade.price_per_kwh == D("0.22")
    request.refresh_from_db()
    assert request.status == PostingStatus.FILLED


def test_partial_acceptance_and_over_allocation(alice, bob, carol, interval):
    offer = post(alice, interval, quantity="3")
    first = bid(bob, offer, quantity="2")
    second = bid(carol, offer, quantity="2")
    with refused(ErrorCode.OUT_OF_RANGE, "quantity_kwh"):
        bid_accept(bid=first, by_membership=alice.membership, quantity_kwh=D("2.5"), now=T0)
    t1 = bid_accept(bid=first, by_membership=alice.membership, quantity_kwh=D("1.5"), now=T0)
    with refused(ErrorCode.OVER_ALLOCATED, "quantity_kwh"):
        bid_accept(bid=second, by_membership=alice.membership, quantity_kwh=D("2"), now=T0)
    t2 = bid_accept(bid=second, by_membership=alice.membership, now=T0)  # what is left: 1.5
    assert (t1.quantity_kwh, t2.quantity_kwh) == (D("1.5"), D("1.5"))
    assert (t1.sequence, t2.sequence) == (1, 2)
    offer.refresh_from_db()
    assert (offer.allocated_kwh, offer.status) == (D("3"), PostingStatus.FILLED)
    first.refresh_from_db()
    assert (first.status, first.accepted_kwh) == (BidStatus.ACCEPTED, D("1.5"))


def test_filling_a_posting_expires_its_other_bids(alice, bob, carol, interval):
    offer = post(alice, interval, quantity="1")
    first, second = bid(bob, offer), bid(carol, offer)
    bid_accept(bid=first, by_membership=alice.membership, now=T0)
    second.refresh_from_db()
    assert second.status == BidStatus.EXPIRED
    with refused(ErrorCode.INVALID_STATE, "posting"):
        bid_accept(bid=second, by_membership=alice.membership, now=T0)


def test_only_the_poster_accepts_before_gate_closure(alice, bob, interval):
    offer = post(alice, interval)
    made = bid(bob, offer)
    with refused(ErrorCode.PERMISSION_DENIED, "bid"):
        bid_accept(bid=made, by_membership=bob.membership, now=T0)
    with refused(ErrorCode.INTERVAL_CLOSED, "interval"):
        bid_accept(bid=made, by_membership=alice.membership, now=interval.gate_closure_at)
    bid_accept(bid=made, by_membership=alice.membership, now=T0)
    with refused(ErrorCode.INVALID_STATE, "bid"):
        bid_accept(bid=made, by_membership=alice.membership, now=T0)


def test_accept_many_is_all_or_nothing(alice, bob, carol, interval):
    offer = post(alice, interval, quantity="3")
    b1, b2 = bid(bob, offer, quantity="2"), bid(carol, offer, quantity="1.5")
    with refused(ErrorCode.OVER_ALLOCATED, "bids"):
        bids_accept_many(posting=offer, bids=[b1, b2], by_membership=alice.membership, now=T0)
    assert not Trade.objects.exists()
    assert Bid.objects.filter(status=BidStatus.PENDING).count() == 2
    b2_small = bid(carol, offer, quantity="1")
    trades = bids_accept_many(
        posting=offer, bids=[b2_small, b1], by_membership=alice.membership, now=T0
    )
    assert [t.quantity_kwh for t in trades] == [D("1"), D("2")]
    assert [t.sequence for t in trades] == [1, 2]
    offer.refresh_from_db()
    assert offer.status == PostingStatus.FILLED
    b2.refresh_from_db()
    assert b2.status == BidStatus.EXPIRED


def test_reject_and_withdraw(alice, bob, carol, interval):
    offer = post(alice, interval)
    b1, b2 = bid(bob, offer), bid(carol, offer)
    with refused(ErrorCode.PERMISSION_DENIED, "bid"):
        bid_reject(bid=b1, by_membership=bob.membership, now=T0)
    assert bid_reject(bid=b1, by_membership=alice.membership, now=T0).status == BidStatus.REJECTED
    with refused(ErrorCode.PERMISSION_DENIED, "bid"):
        bid_withdraw(bid=b2, by_membership=alice.membership, now=T0)
    with refused(ErrorCode.INTERVAL_CLOSED, "interval"):
        bid_withdraw(bid=b2, by_membership=carol.membership, now=interval.gate_closure_at)
    assert bid_withdraw(bid=b2, by_membership=carol.membership, now=T0).status == (
        BidStatus.WITHDRAWN
    )
    with refused(ErrorCode.INVALID_STATE, "bid"):
        bid_withdraw(bid=b2, by_membership=carol.membership, now=T0)
    # A withdrawn bid no longer holds the bidder's capacity: 5 kWh import are free again.
    post(carol, interval, side="buy", quantity="5", price="0.3")


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_never_over_allocate():
    """Eight threads accept eight different bids on one posting at the same moment."""
    community = new_community()
    interval = open_interval(community)
    seller = member(community)
    offer = post(seller, interval, quantity="5")
    buyers = [member(community) for _ in range(8)]
    bids = [bid(b, offer, quantity="1.5") for b in buyers]  # 12 kWh asked for 5 offered
    barrier = threading.Barrier(len(bids))
    outcomes: list[str] = []
    lock = threading.Lock()

    def accept(one: Bid) -> None:
        try:
            barrier.wait()
            bid_accept(bid=one, by_membership=seller.membership, now=T0)
            result = "ok"
        except ApplicationError as exc:
            result = exc.code
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=accept, args=(b,)) for b in bids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    offer = Posting.objects.get(pk=offer.pk)
    traded = sum(t.quantity_kwh for t in Trade.objects.filter(posting=offer))
    assert offer.allocated_kwh == traded == D("5")
    assert offer.allocated_kwh <= offer.quantity_kwh
    # Three whole bids and one partial (0.5 kWh) fit; the rest find the posting filled.
    assert outcomes.count("ok") == 4, outcomes
    assert sorted(Trade.objects.filter(posting=offer).values_list("sequence", flat=True)) == [
        1, 2, 3, 4,
    ]  # fmt: skip
