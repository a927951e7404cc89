"""Modifying a bid before gate closure: what keeps time priority and what takes a new one."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from config.errors import ErrorCode
from marketplace.models import Interval, IntervalState, Trade, TradeSource
from marketplace.services.bids import bid_modify, bid_withdraw
from marketplace.services.clearing import interval_clear
from marketplace.tests.factories import T0, member, new_community, open_interval
from marketplace.tests.fixtures import bid, post, refused

D = Decimal
LATER = T0 + timedelta(minutes=1)
pytestmark = pytest.mark.django_db


@pytest.fixture
def board():
    community = new_community(market_structure="bilateral")
    interval = open_interval(community)
    seller, x, y = member(community), member(community), member(community)
    offer = post(seller, interval, "sell", "2", "0.10", now=T0)
    return interval, offer, seller, x, y


def test_lowering_the_quantity_keeps_time_priority(board):
    interval, offer, _seller, x, y = board
    first = bid(x, offer, "2", "0.15", now=T0)
    bid(y, offer, "2", "0.15", now=T0 + timedelta(seconds=1))
    changed = bid_modify(bid=first, by_membership=x.membership, quantity_kwh="1.5", now=LATER)
    assert (changed.quantity_kwh, changed.submitted_at) == (D("1.5"), T0)
    # At gate closure the best bids are accepted: same price, so time decides and X, still
    # first, gets its 1.5 kWh before Y gets the remaining 0.5.
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.GATE_CLOSED)
    interval_clear(interval=interval, now=T0 + timedelta(minutes=11))
    trades = Trade.objects.filter(source=TradeSource.BILATERAL).order_by("sequence")
    assert [(t.buyer_id, t.quantity_kwh) for t in trades] == [
        (x.membership.pk, D("1.5")),
        (y.membership.pk, D("0.5")),
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"quantity_kwh": "2"},
        {"price_per_kwh": "0.16"},
        {"quantity_kwh": "0.5", "price_per_kwh": "0.14"},
    ],
    ids=["more energy", "new price", "less energy at a new price"],
)
def test_any_other_change_takes_a_new_time_priority(board, change):
    _interval, offer, _seller, x, _y = board
    pending = bid(x, offer, "1", "0.15", now=T0)
    changed = bid_modify(bid=pending, by_membership=x.membership, now=LATER, **change)
    assert changed.submitted_at == LATER
    changed.refresh_from_db()
    assert changed.quantity_kwh == D(change.get("quantity_kwh", "1"))
    assert changed.price_per_kwh == D(change.get("price_per_kwh", "0.15"))


def test_a_higher_priority_bid_loses_its_place_when_repriced(board):
    interval, offer, _seller, x, y = board
    first = bid(x, offer, "2", "0.15", now=T0)
    bid(y, offer, "2", "0.15", now=T0 + timedelta(seconds=1))
    # Same price again, but a new price was asked for: X queues behind Y now.
    bid_modify(bid=first, by_membership=x.membership, price_per_kwh="0.1501", now=LATER)
    bid_modify(bid=first, by_membership=x.membership, price_per_kwh="0.15", now=LATER)
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.GATE_CLOSED)
    interval_clear(interval=interval, now=T0 + timedelta(minutes=11))
    (trade,) = Trade.objects.filter(source=TradeSource.BILATERAL)
    assert (trade.buyer_id, trade.quantity_kwh) == (y.membership.pk, D("2"))


def test_nothing_to_change_changes_nothing(board):
    _interval, offer, _seller, x, _y = board
    pending = bid(x, offer, "1", "0.15", now=T0)
    same = bid_modify(bid=pending, by_membership=x.membership, quantity_kwh="1.000",
                      price_per_kwh="0.1500", now=LATER)  # fmt: skip
    assert same.submitted_at == T0


def test_refusals_name_the_field(board):
    interval, offer, seller, x, y = board
    pending = bid(x, offer, "1", "0.15", now=T0)
    with refused(ErrorCode.OUT_OF_RANGE, "quantity_kwh"):  # the offer has 2 kWh
        bid_modify(bid=pending, by_membership=x.membership, quantity_kwh="2.5", now=LATER)
    with refused(ErrorCode.OUT_OF_RANGE, "price_per_kwh"):  # below the offer's 0.10
        bid_modify(bid=pending, by_membership=x.membership, price_per_kwh="0.09", now=LATER)
    with refused(ErrorCode.OUT_OF_RANGE, "price_per_kwh"):  # above the 0.50 cap
        bid_modify(bid=pending, by_membership=x.membership, price_per_kwh="0.9", now=LATER)
    with refused(ErrorCode.TOO_PRECISE, "quantity_kwh"):
        bid_modify(bid=pending, by_membership=x.membership, quantity_kwh="1.0001", now=LATER)
    with refused(ErrorCode.NOT_A_NUMBER, "price_per_kwh"):
        bid_modify(bid=pending, by_membership=x.membership, price_per_kwh="cheap", now=LATER)
    with refused(ErrorCode.OUT_OF_RANGE, "quantity_kwh"):
        bid_modify(bid=pending, by_membership=x.membership, quantity_kwh="0", now=LATER)
    with refused(ErrorCode.PERMISSION_DENIED, "bid"):
        bid_modify(bid=pending, by_membership=y.membership, quantity_kwh="0.5", now=LATER)
    with refused(ErrorCode.PERMISSION_DENIED, "bid"):  # not even the poster
        bid_modify(bid=pending, by_membership=seller.membership, quantity_kwh="0.5", now=LATER)
    with refused(ErrorCode.INTERVAL_CLOSED, "interval"):
        bid_modify(bid=pending, by_membership=x.membership, quantity_kwh="0.5",
                   now=interval.gate_closure_at)  # fmt: skip
    bid_withdraw(bid=pending, by_membership=x.membership, now=LATER)
    with refused(ErrorCode.INVALID_STATE, "bid"):
        bid_modify(bid=pending, by_membership=x.membership, quantity_kwh="0.5", now=LATER)
    pending.refresh_from_db()
    assert (pending.quantity_kwh, pending.price_per_kwh) == (D("1"), D("0.15"))
