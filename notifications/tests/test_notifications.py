"""Notifications: who is told what, members' choices, once per event, the pages, a real worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.selectors import time_zone_of_user
from accounts.services import membership_approve
from marketplace.models import Interval, Trade
from marketplace.services.bids import bid_accept, bid_reject
from marketplace.tests.factories import Member, member, new_community, open_interval
from marketplace.tests.fixtures import bid, post
from marketplace.tests.web.conftest import client_for
from notifications.events import MANY_TASK_NAME, Event, announce_many
from notifications.messages import messages_for
from notifications.models import Notification, NotificationKind
from notifications.services import (
    notification_deliver,
    notification_event_handle,
    notification_preferences_set,
)
from notifications.tasks import notification_events_task


def _kinds(user_id: int) -> list[str]:
    return list(
        Notification.objects.filter(user_id=user_id).order_by("pk").values_list("kind", flat=True)
    )


@pytest.mark.django_db
def test_a_bid_tells_the_poster_and_the_decision_tells_the_bidder(
    alice: Member, bob: Member, carol: Member, interval: Interval, frozen: Any
) -> None:
    offer = post(alice, interval, quantity="2")
    accepted, rejected = bid(bob, offer, quantity="1"), bid(carol, offer, quantity="0.5")
    for one in (accepted, rejected):
        notification_event_handle(event=Event.BID_RECEIVED, object_id=one.pk)
    bid_accept(bid=accepted, by_membership=alice.membership)
    bid_reject(bid=rejected, by_membership=alice.membership)
    notification_event_handle(event=Event.BID_ACCEPTED, object_id=accepted.pk)
    notification_event_handle(event=Event.BID_REJECTED, object_id=rejected.pk)
    # Seen again when the interval clears: no second message.
    notification_event_handle(event=Event.INTERVAL_CLEARED, object_id=interval.pk)

    assert _kinds(alice.membership.user_id) == [NotificationKind.BID_RECEIVED] * 2
    assert _kinds(bob.membership.user_id) == [NotificationKind.BID_ACCEPTED]
    assert _kinds(carol.membership.user_id) == [NotificationKind.BID_REJECTED]
    told = Notification.objects.get(
        user_id=alice.membership.user_id, key=f"bid_received:{accepted.pk}"
    )
    assert "1.000 kWh at" in told.body
    assert "ct/kWh" in told.body
    assert told.url.endswith("#my-postings")
    # One e-mail per message, with the link and where to turn it off.
    assert len(mail.outbox) == 4
    assert "/notifications/settings/" in mail.outbox[0].body


@pytest.mark.django_db
def test_a_member_can_turn_a_kind_off_in_the_app_and_by_email(
    alice: Member, bob: Member, interval: Interval, frozen: Any
) -> None:
    user = alice.membership.user
    notification_preferences_set(user=user, choices={NotificationKind.BID_RECEIVED: (False, False)})
    one = bid(bob, post(alice, interval))
    assert notification_event_handle(event=Event.BID_RECEIVED, object_id=one.pk) == 0
    notification_preferences_set(user=user, choices={NotificationKind.BID_RECEIVED: (False, True)})
    two = bid(bob, post(alice, interval))
    notification_event_handle(event=Event.BID_RECEIVED, object_id=two.pk)
    assert len(mail.outbox) == 1
    stored = Notification.objects.get(user=user)
    assert not stored.shown  # e-mailed, but not in the bell's list
    assert client_for(alice).get(reverse("notifications:bell")).content.decode().count("count") == 0


@pytest.mark.django_db
def test_curtailment_and_settlement_messages(
    alice: Member, bob: Member, interval: Interval
) -> None:
    trade = Trade.objects.create(
        interval=interval,
        source="bilateral",
        sequence=1,
        buyer=bob.membership,
        seller=alice.membership,
        quantity_kwh=Decimal("2.000"),
        price_per_kwh=Decimal("0.2000"),
        seller_price_per_kwh=Decimal("0.2000"),
        orders_submitted_at=timezone.now(),
        curtailed_kwh=Decimal("0.500"),
        curtailment_reason="trafo overload at trafo 0: 101.0 % > 100.0; sensitivity 0.266 %/kW",
    )
    messages = list(messages_for(Event.INTERVAL_CONFIRMED, interval.pk))
    assert {m.user_id for m in messages} == {alice.membership.user_id, bob.membership.user_id}
    text = messages[0].body
    assert "0.500 kWh of 2.000 kWh called off; 1.500 kWh will be delivered" in text
    assert "transformer" in text
    assert "%" not in text
    assert messages[0].url.endswith(f"#trade-{trade.pk}")


@pytest.mark.django_db
def test_approval_is_announced(community: Any) -> None:
    newcomer = member(community)
    membership = newcomer.membership
    membership_approve(membership=membership, decided_by=None)  # already approved: no-op
    messages = list(messages_for(Event.MEMBERSHIP_APPROVED, membership.pk))
    assert len(messages) == 1
    assert messages[0].title == f"Welcome to {community.name}"
    assert membership.pseudonym in messages[0].body


@pytest.mark.django_db
def test_the_bell_the_list_and_opening_one(
    alice: Member, bob: Member, interval: Interval, frozen: Any
) -> None:
    one = bid(bob, post(alice, interval))
    notification_event_handle(event=Event.BID_RECEIVED, object_id=one.pk)
    client = client_for(alice)
    page = client.get(reverse("marketplace:dashboard", args=[interval.community.slug]))
    assert '<span class="count">1</span>' in page.content.decode()
    listing = client.get(reverse("notifications:list")).content.decode()
    assert "New bid on your offer" in listing
    notification = Notification.objects.get()
    opened = client.post(reverse("notifications:open", args=[notification.pk]))
    assert opened.status_code == 302
    assert opened["Location"] == notification.url
    notification.refresh_from_db()
    assert notification.read_at is not None
    assert '<span class="count">' not in client.get(reverse("notifications:bell")).content.decode()
    # Someone else's notification is not theirs to open.
    assert (
        client_for(bob).post(reverse("notifications:open", args=[notification.pk])).status_code
        == 404
    )


@pytest.mark.django_db
def test_choices_are_saved_from_the_page(alice: Member) -> None:
    client: Client = client_for(alice)
    data = {f"{kind}__app": "on" for kind in NotificationKind.values}
    data.pop(f"{NotificationKind.SETTLEMENT}__app")
    response = client.post(reverse("notifications:preferences"), data)
    assert response.status_code == 302
    page = client.get(reverse("notifications:preferences")).content.decode()
    assert 'name="settlement__app"' in page
    from notifications.services import notification_preferences

    choices = notification_preferences(user=alice.membership.user)
    assert choices[NotificationKind.SETTLEMENT] == (False, False)
    assert choices[NotificationKind.BID_RECEIVED] == (True, False)


# --- Through a real worker -------------------------------------------------------------------
@pytest.mark.worker
def test_a_bid_reaches_the_poster_through_the_worker_after_commit(
    celery_worker_process: Any,
) -> None:
    now = timezone.now()
    community = new_community()
    alice, bob = member(community), member(community)
    open_interval(community, now=now)
    interval = (
        Interval.objects.filter(community=community, gate_closure_at__gt=now + timedelta(minutes=2))
        .order_by("start")
        .first()
    )
    assert interval is not None
    placed = bid(bob, post(alice, interval, now=now), quantity="1", now=now)
    key = f"bid_received:{placed.pk}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        stored = Notification.objects.filter(user_id=alice.membership.user_id, key=key).first()
        # The worker mails through the embedded default's console backend, into its log.
        if stored is not None and stored.emailed_at is not None:
            break
        time.sleep(0.25)
    else:
        raise AssertionError(f"not delivered; worker log:\n{celery_worker_process.log()[-4000:]}")
    log = celery_worker_process.log()
    assert f"notifications: bid_received {placed.pk} -> 1 delivered" in log
    assert f"To: {alice.membership.user.email}" in log


@pytest.mark.django_db
def test_last_months_statement_is_announced_once(alice: Member, bob: Member) -> None:
    from marketplace.ledger.services import interval_settle, meter_readings_submit
    from marketplace.ledger.tests.conftest import (
        AFTER_WINDOW,
        after_end,
        confirmed_intervals,
        make_trade,
        meter_operator,
        reading,
    )
    from notifications.messages import statements_due

    community = alice.membership.community
    first = confirmed_intervals(community)[0]
    make_trade(first, buyer=bob, seller=alice, kwh="1.000", price="0.2000")
    for who, imported, exported in ((alice, "0", "1.000"), (bob, "1.000", "0")):
        meter_readings_submit(
            submitted_by=meter_operator(who),
            readings=[{**reading(who, imported, exported), "interval": first.pk}],
            now=after_end(first),
        )
    assert interval_settle(interval=first, now=first.end + AFTER_WINDOW).settled
    # March's statements: not on 1 April (the last settlements may be missing), from the 2nd.
    on_first = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    assert list(statements_due(now=on_first)) == []
    on_second = on_first + timedelta(days=1)
    messages = list(statements_due(now=on_second))
    assert {m.user_id for m in messages} == {alice.membership.user_id, bob.membership.user_id}
    assert "March 2026" in messages[0].title
    for message in messages:
        notification_deliver(message=message)
    assert list(statements_due(now=on_second)) == []


@pytest.mark.django_db
def test_the_list_shows_times_in_the_members_zone(
    alice: Member, bob: Member, interval: Interval, frozen: Any
) -> None:
    notification_event_handle(
        event=Event.BID_RECEIVED, object_id=bid(bob, post(alice, interval)).pk
    )
    listing = client_for(alice).get(reverse("notifications:list")).content.decode()
    created = Notification.objects.get().created_at
    berlin = timezone.localtime(created, ZoneInfo("Europe/Berlin"))
    assert f"{berlin:%H:%M} {berlin.tzname()}" in listing
    assert " UTC" not in listing


@pytest.mark.django_db
def test_a_member_of_communities_in_two_zones_reads_utc(alice: Member) -> None:
    assert time_zone_of_user(user=alice.membership.user) == "Europe/Berlin"
    elsewhere = new_community(timezone="Europe/Lisbon")
    member(elsewhere, user=alice.membership.user)
    assert time_zone_of_user(user=alice.membership.user) == "UTC"


@pytest.mark.django_db
def test_one_event_of_many_objects_is_one_task_that_handles_each(
    community: Any, django_capture_on_commit_callbacks: Any
) -> None:
    newcomers = [member(community).membership.pk for _ in range(3)]
    with (
        mock.patch("notifications.events.celery_app.send_task") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        announce_many(Event.MEMBERSHIP_APPROVED, newcomers)
        announce_many(Event.MEMBERSHIP_APPROVED, [])  # nothing to tell: no task
    send.assert_called_once_with(MANY_TASK_NAME, args=["membership_approved", newcomers])
    one_by_one = sum(len(list(messages_for(Event.MEMBERSHIP_APPROVED, pk))) for pk in newcomers)
    assert notification_events_task("membership_approved", newcomers) == one_by_one == 3
