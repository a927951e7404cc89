"""Board selectors: anonymised and identical for every member, depth curves, fixed query counts."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.models import Membership, MembershipStatus
from config.errors import ErrorCode
from marketplace.models import Interval, IntervalState
from marketplace.selectors.board import (
    board_postings,
    intervals_upcoming,
    my_bids,
    my_postings,
    my_trades,
    order_book_depth,
)
from marketplace.services.bids import bid_accept
from marketplace.services.clearing import interval_clear
from marketplace.tests.factories import T0, member, new_community, open_interval
from marketplace.tests.fixtures import bid, post, refused

D = Decimal


def test_board_is_anonymised_and_the_same_for_everyone(alice, bob, carol, interval):
    offer = post(alice, interval, "sell", "2", "0.20")
    post(bob, interval, "buy", "3", "0.30")
    bid(carol, offer, "1", "0.25")
    bid(bob, offer, "1", "0.22")
    seen = [board_postings(community=interval.community, viewer=m.membership)
            for m in (alice, bob, carol)]  # fmt: skip
    assert seen[0] == seen[1] == seen[2]
    rows = seen[0]
    assert [(r.side, r.pseudonym) for r in rows] == [
        ("buy", bob.membership.pseudonym),
        ("sell", alice.membership.pseudonym),
    ]
    sell = rows[1]
    assert (sell.pending_bids, sell.best_bid_price_per_kwh) == (2, D("0.25"))
    emails = {m.membership.user.email for m in (alice, bob, carol)}
    for row in rows:
        assert not set(map(str, asdict(row).values())) & emails
        assert not hasattr(row, "membership_id")
    assert board_postings(community=interval.community, viewer=bob.membership, side="sell") == [
        sell
    ]


def test_board_only_for_approved_members(alice, interval, db):
    outsider = member(new_community())
    with refused(ErrorCode.PERMISSION_DENIED, "community"):
        board_postings(community=interval.community, viewer=outsider.membership)
    alice.membership.status = MembershipStatus.SUSPENDED
    with refused(ErrorCode.PERMISSION_DENIED, "community"):
        board_postings(community=interval.community, viewer=alice.membership)


def test_board_query_count_does_not_grow(alice, bob, interval, django_assert_num_queries):
    later = Interval.objects.filter(community=interval.community).order_by("start")[1]
    for i in range(6):
        offer = post(alice, interval if i % 2 else later, "sell", "0.5", "0.2")
        bid(bob, offer, "0.1", "0.3")
    with django_assert_num_queries(1):
        rows = board_postings(community=interval.community, viewer=bob.membership)
    assert len(rows) == 6


def test_order_book_depth(alice, bob, carol, interval):
    post(alice, interval, "sell", "2", "0.10")
    post(bob, interval, "sell", "1", "0.10")
    offer = post(carol, interval, "sell", "3", "0.20")
    post(alice, interval, "buy", "1", "0.30")
    post(bob, interval, "buy", "2", "0.25")
    post(carol, interval, "buy", "1", "0.25")
    d = member(interval.community)
    bid_accept(bid=bid(d, offer, "1", "0.20"), by_membership=carol.membership, now=T0)
    bid(d, offer, "1", "0.20")  # pending bids are not in the depth
    assert order_book_depth(interval=interval) == {
        "supply": [(D("0.10"), D("3")), (D("0.20"), D("5"))],
        "demand": [(D("0.30"), D("1")), (D("0.25"), D("4"))],
    }


def test_my_lists_and_upcoming_intervals(alice, bob, interval, django_assert_max_num_queries):
    offer = post(alice, interval, "sell", "2", "0.10")
    bid_accept(bid=bid(bob, offer, "1", "0.20"), by_membership=alice.membership, now=T0)
    post(bob, interval, "buy", "1", "0.15")
    community = interval.community
    with django_assert_max_num_queries(1):
        mine = list(my_postings(membership=alice.membership))
        assert mine[0].interval.start == interval.start
        assert mine[0].pending_bids == 0  # type: ignore[attr-defined]
    with django_assert_max_num_queries(1):
        bids = list(my_bids(membership=bob.membership))
        assert bids[0].posting.interval.pk == interval.pk
    with django_assert_max_num_queries(1):
        trades = list(my_trades(membership=bob.membership))
        assert trades[0].seller_pseudonym == alice.membership.pseudonym  # type: ignore[attr-defined]
    with django_assert_max_num_queries(1):
        upcoming = list(intervals_upcoming(community=community, now=T0))
        first = upcoming[0]
        assert first.pk == interval.pk
        assert first.open_postings == 2  # type: ignore[attr-defined]
        assert (first.offered_kwh, first.requested_kwh) == (D("1"), D("1"))  # type: ignore[attr-defined]
        assert first.rules.interval_minutes == 15


@pytest.mark.django_db
def test_my_trades_include_grid_trades():
    community = new_community(market_structure="pool")
    interval = open_interval(community)
    lonely = member(community)
    post(lonely, interval, "buy", "1", "0.30")
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.GATE_CLOSED)
    interval_clear(interval=interval, now=T0 + timedelta(minutes=11))
    (trade,) = my_trades(membership=lonely.membership)
    assert (trade.source, trade.seller_id, trade.price_per_kwh) == ("grid", None, D("0.32"))
    Membership.objects.filter(pk=lonely.membership.pk).update(status=MembershipStatus.SUSPENDED)
