"""The autopilot page: switch it on with limits (refusals next to their field, nothing stored),
switch it off, see what it posted and how it went; its trades are marked on My trades."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from accounts.services import membership_suspend
from marketplace.models import Autopilot, Community, PostingStatus, Side, Trade, TradeSource
from marketplace.services.autopilot import autopilot_post_due
from marketplace.services.bids import bid_accept
from marketplace.tests.factories import Member
from marketplace.tests.fixtures import bid
from marketplace.tests.services.test_autopilot import before_gate, history
from marketplace.tests.web.conftest import client_for

pytestmark = pytest.mark.django_db


def url(community: Community) -> str:
    return reverse("marketplace:autopilot", args=[community.slug])


def form(who: Member, **changes: str) -> dict[str, Any]:
    data = {
        "action": "on",
        "meter_point": str(who.meter_point.pk),
        "strategy": "between-tariffs",
        "max_buy_kwh": "1.5",
        "max_sell_kwh": "1.5",
        "sell_floor_per_kwh": "0.1000",
        "buy_ceiling_per_kwh": "0.3000",
    }
    return {**data, **changes}


def test_switch_on_change_and_off(alice, community, interval, frozen):
    client = client_for(alice)
    page = client.get(url(community))
    assert page.status_code == 200
    text = page.content.decode()
    assert "never set up" in text
    assert 'value="between-tariffs"' in text

    done = client.post(url(community), form(alice), follow=True)
    assert done.redirect_chain[0][1] == 302
    assert "The autopilot for home is on" in done.content.decode()
    pilot = Autopilot.objects.get(meter_point=alice.meter_point)
    assert pilot.enabled
    assert pilot.max_sell_kwh == 1.5

    client.post(url(community), form(alice, max_sell_kwh="2", strategy="at-limits"))
    pilot.refresh_from_db()
    assert (pilot.max_sell_kwh, pilot.strategy) == (2, "at-limits")

    done = client.post(url(community), {"action": "off", "meter_point": alice.meter_point.pk})
    assert done.status_code == 302
    pilot.refresh_from_db()
    assert not pilot.enabled
    assert "Off" in client.get(url(community)).content.decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sell_floor_per_kwh": "0.4000"}, "must not be above the buying ceiling"),
        ({"max_buy_kwh": "6"}, "can import at most 5.000 kWh"),
        ({"buy_ceiling_per_kwh": "0.9"}, "between the community&#x27;s floor"),
        ({"max_sell_kwh": "a lot"}, "max_sell_kwh_errors"),
        ({"strategy": "win"}, "Select a valid choice"),
        ({"meter_point": "999999"}, "Choose one of your meter points."),
        ({"action": "explode"}, "Choose to switch the autopilot on or off."),
    ],
)
def test_bad_input_is_a_form_error_and_stores_nothing(alice, community, interval, frozen,
                                                      changes, message):  # fmt: skip
    page = client_for(alice).post(url(community), form(alice, **changes))
    assert page.status_code == 400
    assert message in page.content.decode()
    assert not Autopilot.objects.exists()


def test_someone_elses_meter_point_is_not_theirs(alice, bob, community, interval, frozen):
    page = client_for(alice).post(url(community), form(alice, meter_point=str(bob.meter_point.pk)))
    assert page.status_code == 400
    assert not Autopilot.objects.exists()


def test_a_suspended_member_is_told_why(alice, community, interval, frozen):
    membership_suspend(membership=alice.membership, reason="unpaid", decided_by=None)
    page = client_for(alice).post(url(community), form(alice))
    assert page.status_code == 403
    assert "Your membership is suspended" in page.content.decode()
    assert not Autopilot.objects.exists()


def test_shows_what_it_did_and_my_trades_marks_it(alice, bob, carol, community, interval, frozen):
    history(alice, interval, exported="1.000")
    history(bob, interval, imported="1.000")
    client = client_for(alice)
    client.post(url(community), form(alice))
    client_for(bob).post(url(community), form(bob))
    now = before_gate(interval)
    frozen.move_to(now)
    offer, request = sorted(autopilot_post_due(now=now), key=lambda p: p.side, reverse=True)
    assert (offer.side, request.side) == (Side.SELL, Side.BUY)
    # Carol bids for half of the autopilot's offer, and Alice accepts on the board.
    trade = bid_accept(
        bid=bid(carol, offer, quantity="0.5", price="0.2500", now=now),
        by_membership=alice.membership, now=now,
    )  # fmt: skip
    assert trade.posting_id == offer.pk
    page = client.get(url(community)).content.decode()
    assert f"autopilot-posting-{offer.pk}" in page
    listed = client.get("/api/v1/postings/").json()["results"]
    assert [(p["id"], p["autopilot"]) for p in listed] == [(offer.pk, True)]
    assert "0.500 kWh traded so far" in page
    trades = client.get(reverse("marketplace:trades", args=[community.slug])).content.decode()
    assert 'class="badge autopilot"' in trades
    # A pool trade names no posting: Bob's side is still his autopilot's.
    Trade.objects.create(
        interval=interval, source=TradeSource.POOL, sequence=1, buyer=bob.membership,
        buyer_meter_point=bob.meter_point, seller=None, quantity_kwh=1, price_per_kwh="0.2",
        seller_price_per_kwh="0.2", orders_submitted_at=now,
    )  # fmt: skip
    theirs = client_for(bob).get(reverse("marketplace:trades", args=[community.slug]))
    assert 'class="badge autopilot"' in theirs.content.decode()
    assert (
        'class="badge autopilot"'
        not in client_for(carol)
        .get(reverse("marketplace:trades", args=[community.slug]))
        .content.decode()
    )
    csv: Any = client.get(reverse("marketplace:trades_csv", args=[community.slug]))
    assert b"".join(csv.streaming_content).decode().splitlines()[1].endswith(",yes")
    # Switched off, its open posting is withdrawn and the page says so.
    client.post(url(community), {"action": "off", "meter_point": alice.meter_point.pk})
    offer.refresh_from_db()
    assert offer.status == PostingStatus.CANCELLED
    assert "Traded 0.500 kWh" in client.get(url(community)).content.decode()
