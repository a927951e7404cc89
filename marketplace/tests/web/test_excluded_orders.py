"""A member sees why clearing left their order out: My trades, History, the board and the API.

The posting is made through the service; the manager then sends its meter point back to
approval (or a row is written around the services beyond the meter point's capacity), and the
interval clears: the posting ends ``excluded`` with its reason, which each of the member's pages
shows in plain words with clearing's own words one click away, and nobody else's page shows.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from accounts.models import MeterPoint, MeterPointStatus
from config import formatting
from marketplace.models import Interval, IntervalState, Posting, PostingStatus
from marketplace.services.clearing import interval_clear
from marketplace.tests.factories import T0, Member
from marketplace.tests.fixtures import post
from marketplace.tests.web.conftest import client_for

pytestmark = pytest.mark.django_db

NOT_APPROVED = "your meter point was not approved by your community&#x27;s manager"
TOO_MUCH = "more energy than your meter point&#x27;s approved connection carries"


def _clear(interval: Interval) -> None:
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.GATE_CLOSED)
    interval.refresh_from_db()
    interval_clear(interval=interval, now=interval.gate_closure_at + timedelta(minutes=1))


def _pages(who: Member) -> dict[str, str]:
    slug = who.membership.community.slug
    client = client_for(who)
    pages = {}
    for name in ("trades", "history", "board"):
        response = client.get(reverse(f"marketplace:{name}", args=[slug]))
        assert response.status_code == 200, name
        pages[name] = response.content.decode()
    return pages


def test_an_order_of_an_unapproved_meter_point_shows_excluded_with_its_reason(
    interval: Interval, alice: Member, bob: Member
) -> None:
    with time_machine.travel(T0, tick=False):
        posting = post(alice, interval, quantity="1.5")
    MeterPoint.objects.filter(pk=alice.meter_point.pk).update(status=MeterPointStatus.PENDING)
    _clear(interval)
    posting.refresh_from_db()
    assert posting.status == PostingStatus.EXCLUDED
    with time_machine.travel(interval.start + timedelta(minutes=5), tick=False):
        pages = _pages(alice)
        others = _pages(bob)
    for name, html in pages.items():
        assert f'id="excluded-{posting.pk}"' in html, name
        row = html.split(f'id="excluded-{posting.pk}"', 1)[1].split("</li>", 1)[0]
        assert ">excluded<" in row, name
        assert "1.500 kWh" in row, name
        assert NOT_APPROVED in row, name
        assert "Nothing was bought or sold for it" in row, name
        assert "Its meter point is not approved by the community manager." in row, name
    for name, html in others.items():
        assert f'id="excluded-{posting.pk}"' not in html, name


def test_an_order_beyond_the_approved_capacity_says_so(interval: Interval, alice: Member) -> None:
    # Written around the services (posting refuses it): 500 kWh on a meter point of a few kW.
    posting = Posting.objects.create(
        interval=interval, membership=alice.membership, meter_point=alice.meter_point,
        side="buy", quantity_kwh=Decimal("500"), limit_price_per_kwh=Decimal("0.3000"),
        submitted_at=T0,
    )  # fmt: skip
    _clear(interval)
    with time_machine.travel(interval.start + timedelta(minutes=5), tick=False):
        trades = _pages(alice)["trades"]
    assert TOO_MUCH in trades
    assert "beyond its meter point&#x27;s approved capacity" in trades
    assert f'id="excluded-{posting.pk}"' in trades


def test_the_board_shows_it_for_a_day_and_my_trades_keeps_it(
    interval: Interval, alice: Member
) -> None:
    with time_machine.travel(T0, tick=False):
        posting = post(alice, interval)
    MeterPoint.objects.filter(pk=alice.meter_point.pk).update(status=MeterPointStatus.PENDING)
    _clear(interval)
    with time_machine.travel(interval.start + timedelta(days=2), tick=False):
        pages = _pages(alice)
    assert f'id="excluded-{posting.pk}"' not in pages["board"]
    assert f'id="excluded-{posting.pk}"' in pages["history"]
    assert f'id="excluded-{posting.pk}"' in pages["trades"]


def test_the_api_has_the_status_and_reason(interval: Interval, alice: Member) -> None:
    with time_machine.travel(T0, tick=False):
        posting = post(alice, interval)
    MeterPoint.objects.filter(pk=alice.meter_point.pk).update(status=MeterPointStatus.PENDING)
    _clear(interval)
    body = client_for(alice).get(f"/api/v1/postings/{posting.pk}/").json()
    assert body["status"] == "excluded"
    assert body["exclusion_reason"] == "Its meter point is not approved by the community manager."
    listed = client_for(alice).get("/api/v1/postings/", {"status": "excluded"}).json()
    assert [row["id"] for row in listed["results"]] == [posting.pk]


def test_the_plain_words_for_each_reason() -> None:
    approved = formatting.exclusion_reason("Its meter point is not approved by the manager.")
    assert "was not approved by your community's manager" in approved.plain
    capacity = formatting.exclusion_reason(
        "9.000 kWh is beyond its meter point's approved capacity for the interval (4 kW = 1 kWh)."
    )
    assert "more energy than your meter point's approved connection" in capacity.plain
    assert capacity.technical.startswith("9.000 kWh")
    other = formatting.exclusion_reason("something new")
    assert "clearing could not take it" in other.plain


def test_through_the_pipeline_a_corrupted_posting_and_bid_are_excluded_and_the_rest_clears(
    interval: Interval, alice: Member, bob: Member, carol: Member
) -> None:
    """Rows written around the services (posting and bidding refuse both) reach the real
    pipeline's clearing step: each is left out with its reason, and the honest book clears."""
    from marketplace.models import Bid, BidStatus, Trade
    from marketplace.services.pipeline import intervals_advance_due
    from marketplace.tests.fixtures import bid

    with time_machine.travel(T0, tick=False):
        offer = post(alice, interval, quantity="2", price="0.1500", auto_accept_best_bids=True)
        honest = bid(bob, offer, quantity="1", price="0.2500")
        corrupted_bid = bid(carol, offer, quantity="1", price="0.3000")
        corrupted_posting = post(carol, interval, side="buy", quantity="1", price="0.3000")
    # 900 kWh on a meter point of 20 kW, a quarter of an hour: beyond anything it can carry.
    Bid.objects.filter(pk=corrupted_bid.pk).update(quantity_kwh=Decimal("900"))
    Posting.objects.filter(pk=corrupted_posting.pk).update(quantity_kwh=Decimal("900"))

    _done, errors = intervals_advance_due(
        now=interval.gate_closure_at + timedelta(seconds=1), communities=[interval.community]
    )
    assert errors == []
    interval.refresh_from_db()
    assert interval.state not in (IntervalState.OPEN, IntervalState.GATE_CLOSED)
    assert not interval.held_reason
    corrupted_bid.refresh_from_db()
    corrupted_posting.refresh_from_db()
    assert corrupted_bid.status == BidStatus.EXCLUDED
    assert "900.000 kWh is beyond its meter point's approved capacity" in (
        corrupted_bid.exclusion_reason
    )
    assert corrupted_posting.status == PostingStatus.EXCLUDED
    assert "approved capacity" in corrupted_posting.exclusion_reason
    # The others cleared: the honest bid traded with the offer; nothing traded for carol.
    honest.refresh_from_db()
    assert honest.status in (BidStatus.ACCEPTED, BidStatus.POOLED)
    assert Trade.objects.filter(interval=interval, buyer=bob.membership).exists()
    assert not Trade.objects.filter(interval=interval, buyer=carol.membership).exists()
    # Carol sees why, on her pages and in the API; Bob does not see hers.
    with time_machine.travel(interval.start + timedelta(minutes=5), tick=False):
        pages, others = _pages(carol), _pages(bob)
    for name, html in pages.items():
        assert f'id="excluded-bid-{corrupted_bid.pk}"' in html, name
        assert f'id="excluded-{corrupted_posting.pk}"' in html, name
        assert TOO_MUCH in html.split(f'id="excluded-bid-{corrupted_bid.pk}"', 1)[1], name
    for name, html in others.items():
        assert f'id="excluded-bid-{corrupted_bid.pk}"' not in html, name
    body = client_for(carol).get(f"/api/v1/bids/{corrupted_bid.pk}/").json()
    assert body["status"] == "excluded"
    assert body["exclusion_reason"] == corrupted_bid.exclusion_reason
    assert client_for(bob).get(f"/api/v1/bids/{honest.pk}/").json()["exclusion_reason"] == ""
