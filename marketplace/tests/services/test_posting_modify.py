"""Modifying a posting before gate closure: what keeps time priority and what takes a new one."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from config.errors import ErrorCode
from marketplace.models import BidStatus, Interval, IntervalState, Trade, TradeSource
from marketplace.services.bids import bid_accept
from marketplace.services.clearing import interval_clear
from marketplace.services.postings import posting_modify
from marketplace.tests.factories import T0, member, new_community, open_interval
from marketplace.tests.fixtures import bid, post, refused

D = Decimal
LATER = T0 + timedelta(minutes=1)
pytestmark = pytest.mark.django_db


@pytest.fixture
def pool():
    community = new_community(market_structure="pool")
    return community, open_interval(community)


def test_lowering_the_quantity_keeps_time_priority(pool):
    community, interval = pool
    a, b, buyer = member(community), member(community), member(community)
    first = post(a, interval, "sell", "3", "0.10", now=T0)
    post(b, interval, "sell", "2", "0.10", now=T0 + timedelta(seconds=1))
    changed = posting_modify(posting=first, by_membership=a.membership, quantity_kwh="2",
                             now=LATER)  # fmt: skip
    assert (changed.quantity_kwh, changed.submitted_at) == (D("2"), T0)
    # Same price, so time decides: A (still first) sells before B.
    post(buyer, interval, "buy", "2", "0.30", now=LATER)
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.GATE_CLOSED)
    interval_clear(interval=interval, now=T0 + timedelta(minutes=11))
    (trade,) = Trade.objects.filter(source=TradeSource.POOL)
    assert (trade.seller_id, trade.quantity_kwh) == (a.membership.pk, D("2"))


@pytest.mark.parametrize(
    "change",
    [
        {"quantity_kwh": "4"},
        {"limit_price_per_kwh": "0.11"},
        {"quantity_kwh": "2", "limit_price_per_kwh": "0.09"},
    ],
    ids=["more energy", "new price", "less energy at a new price"],
)
def test_any_other_change_takes_a_new_time_priority(pool, change):
    community, interval = pool
    a = member(community)
    posting = post(a, interval, "sell", "3", "0.10", now=T0)
    changed = posting_modify(posting=posting, by_membership=a.membership, now=LATER, **change)
    assert changed.submitted_at == LATER
    changed.refresh_from_db()
    assert changed.quantity_kwh == D(change.get("quantity_kwh", "3"))
    assert changed.limit_price_per_kwh == D(change.get("limit_price_per_kwh", "0.10"))


def test_nothing_to_change_changes_nothing(pool):
    community, interval = pool
    a = member(community)
    posting = post(a, interval, "sell", "3", "0.10", now=T0)
    same = posting_modify(posting=posting, by_membership=a.membership, quantity_kwh="3.000",
                          limit_price_per_kwh="0.1", now=LATER)  # fmt: skip
    assert same.submitted_at == T0


def test_a_new_price_expires_the_bids_it_no_longer_admits():
    community = new_community(market_structure="bilateral")
    interval = open_interval(community)
    seller, x, y = member(community), member(community), member(community)
    offer = post(seller, interval, "sell", "3", "0.10", now=T0)
    low = bid(x, offer, "1", "0.12")
    high = bid(y, offer, "1", "0.20")
    posting_modify(posting=offer, by_membership=seller.membership, limit_price_per_kwh="0.15",
                   now=LATER)  # fmt: skip
    low.refresh_from_db()
    high.refresh_from_db()
    assert (low.status, high.status) == (BidStatus.EXPIRED, BidStatus.PENDING)


def test_refusals_name_the_field():
    community = new_community(market_structure="bilateral")
    interval = open_interval(community)
    seller, x, other = member(community), member(community), member(community)
    offer = post(seller, interval, "sell", "3", "0.10", now=T0)
    bid_accept(bid=bid(x, offer, "2", "0.12"), by_membership=seller.membership, now=T0)
    with refused(ErrorCode.OUT_OF_RANGE, "quantity_kwh"):  # 2 kWh are traded already
        posting_modify(posting=offer, by_membership=seller.membership, quantity_kwh="2", now=LATER)
    with refused(ErrorCode.OVER_CAPACITY, "quantity_kwh"):  # 5 kWh per interval at most
        posting_modify(posting=offer, by_membership=seller.membership, quantity_kwh="6", now=LATER)
    with refused(ErrorCode.OUT_OF_RANGE, "limit_price_per_kwh"):  # above the 0.50 cap
        posting_modify(
            posting=offer, by_membership=seller.membership, limit_price_per_kwh="0.9", now=LATER
        )
    with refused(ErrorCode.TOO_PRECISE, "quantity_kwh"):
        posting_modify(
            posting=offer, by_membership=seller.membership, quantity_kwh="1.0001", now=LATER
        )
    with refused(ErrorCode.PERMISSION_DENIED, "posting"):
        posting_modify(posting=offer, by_membership=other.membership, quantity_kwh="2.5", now=LATER)
    with refused(ErrorCode.INTERVAL_CLOSED, "interval"):
        posting_modify(posting=offer, by_membership=seller.membership, quantity_kwh="2.5",
                       now=interval.gate_closure_at)  # fmt: skip
