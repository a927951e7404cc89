"""Fixtures for the web page tests: a community with an open interval and two members, and the
demo community with a day of a prosumer's history (``demo``, for the browser tests)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from marketplace.ledger.services import interval_settle, meter_readings_submit
from marketplace.ledger.tests.conftest import AFTER_WINDOW, make_trade
from marketplace.models import Community, Interval, IntervalState
from marketplace.services.intervals import intervals_open_horizon
from marketplace.services.rules import current_rules
from marketplace.tests.factories import T0, Member
from marketplace.tests.fixtures import alice, bob, carol, community, interval
from notifications.events import Event
from notifications.services import notification_event_handle
from simulation.demo import DEMO_SLUG
from simulation.management.commands.seed_demo import demo_email

__all__ = ["alice", "bob", "carol", "community", "interval"]


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    """The pages read the clock; freeze it where the market factories opened the intervals."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def client_for(who: Member) -> Client:
    client = Client()
    client.force_login(who.membership.user)
    return client


def form_token() -> str:
    """A fresh one-time token, as the page puts in each form that creates something."""
    return secrets.token_urlsafe(18)


def _member(email: str) -> Member:
    membership = Membership.objects.select_related("user").get(
        user__email=email, community__slug=DEMO_SLUG
    )
    point = membership.meter_points.order_by("pk").first()
    assert point is not None
    return Member(membership=membership, meter_point=point)


def _history(community: Community) -> Interval:
    """Three past intervals of prosumer 1: settled, curtailed, with the grid."""
    rules = current_rules(community)
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=6)
    start -= timedelta(minutes=start.minute % 15)
    intervals = [
        Interval.objects.create(
            community=community,
            rules=rules,
            start=start + timedelta(minutes=15 * i),
            end=start + timedelta(minutes=15 * (i + 1)),
            gate_closure_at=start + timedelta(minutes=15 * i - 5),
            state=IntervalState.CONFIRMED,
        )
        for i in range(3)
    ]
    one, two = _member(demo_email("prosumer", 1)), _member(demo_email("prosumer", 2))
    make_trade(intervals[0], buyer=two, seller=one, kwh="2.000", price="0.2000")
    curtailed = make_trade(
        intervals[1], buyer=two, seller=one, kwh="3.000", price="0.2100", confirmed_kwh="1.800"
    )
    curtailed.curtailed_kwh = Decimal("1.200")
    curtailed.curtailment_reason = (
        "trafo overload at trafo 0: 101.0 % > 100.0; sensitivity 0.266 %/kW"
    )
    curtailed.save(update_fields=["curtailed_kwh", "curtailment_reason"])
    make_trade(intervals[2], buyer=None, seller=one, kwh="1.000", price="0.0800")
    manager = Membership.objects.get(user__email=demo_email("manager")).user
    readings = []
    for who, imported, exported in ((one, "0", "2.000"), (two, "2.400", "0")):
        readings.append({"meter_point": who.meter_point.pk, "interval": intervals[0].pk,
                         "imported_kwh": imported, "exported_kwh": exported})  # fmt: skip
    meter_readings_submit(
        submitted_by=manager, readings=readings, now=intervals[0].end + timedelta(minutes=1)
    )
    assert interval_settle(interval=intervals[0], now=intervals[0].end + AFTER_WINDOW).settled
    Interval.objects.filter(pk=intervals[0].pk).update(state=IntervalState.SETTLED)
    for event, object_id in ((Event.INTERVAL_CONFIRMED, intervals[1].pk),
                             (Event.INTERVAL_SETTLED, intervals[0].pk)):  # fmt: skip
        notification_event_handle(event=event, object_id=object_id)
    return intervals[1]


@pytest.fixture
def demo(transactional_db: None) -> tuple[Community, Interval]:
    with time_machine.travel(timezone.now() - timedelta(days=1), tick=False):
        call_command("seed_demo", verbosity=0)
    community = Community.objects.get(slug=DEMO_SLUG)
    curtailed = _history(community)
    intervals_open_horizon(community=community, now=timezone.now())
    return community, curtailed
