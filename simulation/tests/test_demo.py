"""The live demo: its robots trade peer to peer on a winter evening; nobody else is traded for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import Sum

from accounts.models import MeterPoint, User
from accounts.services import (
    membership_approve,
    membership_request,
    meter_point_approve,
    meter_point_register,
)
from grid.models import GridCheckResult
from marketplace.models import Community, Interval, IntervalState, Posting, Trade, TradeSource
from simulation.demo import (
    DEMO_SLUG,
    demo_orders,
    demo_post_orders,
    robot_meter_points,
)
from simulation.models import SimulatedHousehold
from simulation.strategies import Tariffs, sdr_price

# A December evening: no PV at all, the community's wind and CHP plants and the batteries sell.
WINTER_AFTERNOON = datetime(2026, 12, 15, 15, 0, tzinfo=UTC)


def _seed() -> Community:
    call_command("seed_demo", stdout=StringIO())
    return Community.objects.get(slug=DEMO_SLUG)


def _real_member(community: Community) -> MeterPoint:
    """Someone who signs up and joins the demo community like any person would."""
    user = User.objects.create_user("neighbour@example.org", "a-long-password-1")
    membership = membership_request(user=user, community=community)
    manager = User.objects.get(email="manager@peergrid.local")
    membership = membership_approve(membership=membership, decided_by=manager)
    meter_point = meter_point_register(
        membership=membership,
        label="My flat",
        import_capacity_kw=Decimal("10"),
        export_capacity_kw=Decimal("5"),
        pv_kwp=Decimal("5"),
    )
    bus = community.grid_model.connection_buses[0]
    return meter_point_approve(meter_point=meter_point, bus=bus, approved_by=manager)


@pytest.mark.django_db
def test_seed_makes_robots_only_of_its_own_homes_and_plants() -> None:
    community = _seed()
    robots = robot_meter_points(community)
    assert len(robots) == 14  # twelve homes, the wind turbine, the CHP plant
    assert {mp.membership.user.email for mp in robots} >= {"wind@peergrid.local"}
    call_command("seed_demo", stdout=StringIO())  # idempotent
    assert SimulatedHousehold.objects.count() == 14


@pytest.mark.django_db
def test_the_winter_demo_trades_peer_to_peer_and_nobody_is_traded_for() -> None:
    with time_machine.travel(WINTER_AFTERNOON, tick=False):
        community = _seed()
        stranger = _real_member(community)
    target = WINTER_AFTERNOON + timedelta(hours=4)
    with time_machine.travel(WINTER_AFTERNOON, tick=False):
        out = StringIO()
        call_command("advance_intervals", "--now", target.isoformat(), stdout=out)
    intervals = Interval.objects.filter(community=community, end__lte=target)
    assert intervals.count() >= 14
    done = intervals.filter(state__in=[IntervalState.CONFIRMED, IntervalState.SETTLED])
    assert done.count() == intervals.count()
    assert GridCheckResult.objects.filter(interval__in=intervals).count() == intervals.count()
    peer = Trade.objects.filter(interval__in=intervals, source=TradeSource.POOL)
    assert peer.aggregate(kwh=Sum("confirmed_kwh"))["kwh"] > Decimal("5")
    sellers = set(peer.values_list("seller__user__email", flat=True))
    assert "wind@peergrid.local" in sellers or "chp@peergrid.local" in sellers
    # Evening battery sales: homes with a battery (1, 4, 7, 10) sell after dark.
    evening = peer.filter(interval__start__gte=datetime(2026, 12, 15, 16, 0, tzinfo=UTC))
    battery_homes = {f"prosumer{n:02d}@peergrid.local" for n in (1, 4, 7, 10)}
    assert battery_homes & set(evening.values_list("seller__user__email", flat=True))
    # The real member is never traded for.
    assert not Posting.objects.filter(meter_point=stranger).exists()
    assert "agent posting(s)" in out.getvalue()
    # Running it again at the same moment books nothing twice.
    trades = Trade.objects.count()
    with time_machine.travel(WINTER_AFTERNOON, tick=False):
        call_command("advance_intervals", "--now", target.isoformat(), stdout=StringIO())
    assert Trade.objects.count() == trades


@pytest.mark.django_db
def test_robot_orders_are_the_same_on_a_replay() -> None:
    with time_machine.travel(WINTER_AFTERNOON, tick=False):
        community = _seed()
        call_command("advance_intervals", "--now", WINTER_AFTERNOON.isoformat(), stdout=StringIO())
    later = WINTER_AFTERNOON + timedelta(hours=2)
    interval = Interval.objects.select_related("rules", "community").get(
        community=community, start=later
    )
    robots = robot_meter_points(community)
    first = [(mp.pk, o) for mp, o in demo_orders(interval, robots)]
    assert first == [(mp.pk, o) for mp, o in demo_orders(interval, robots)]
    assert first


@pytest.mark.django_db
def test_robots_post_flexible_purchases_as_flexible() -> None:
    """A water heater's or a battery's purchase can wait: the grid check may curtail it."""
    with time_machine.travel(WINTER_AFTERNOON, tick=False):
        community = _seed()
        call_command("advance_intervals", "--now", WINTER_AFTERNOON.isoformat(), stdout=StringIO())
        posted = demo_post_orders(
            community=community, now=WINTER_AFTERNOON, window=timedelta(hours=6)
        )
    assert posted
    robots = robot_meter_points(community)
    postings = Posting.objects.filter(interval__community=community)
    intended = {}
    for interval in Interval.objects.filter(pk__in=postings.values("interval")).select_related(
        "rules", "community"
    ):
        for meter_point, order in demo_orders(interval, robots):
            intended[(interval.pk, meter_point.pk)] = order.flexible
    stored = {(p.interval_id, p.meter_point_id): p.flexible for p in postings}
    assert stored == {key: intended[key] for key in stored}
    assert any(stored.values())
    assert not postings.filter(side="sell", flexible=True).exists()


def test_sdr_price_by_hand() -> None:
    tariffs = Tariffs(retail=0.30, feed_in=0.10)
    assert sdr_price(0, 10, tariffs) == pytest.approx(0.30)  # nothing local: retail
    assert sdr_price(10, 10, tariffs) == pytest.approx(0.10)  # covered: feed-in
    assert sdr_price(20, 10, tariffs) == pytest.approx(0.10)
    # SDR 0.5: 0.1 x 0.3 / (0.2 x 0.5 + 0.1) = 0.15
    assert sdr_price(5, 10, tariffs) == pytest.approx(0.15)


@pytest.mark.django_db
def test_advance_intervals_runs_the_demo_for_hours() -> None:
    seed_out = StringIO()
    call_command("seed_demo", stdout=seed_out)
    assert "loading the cigre_lv reference network" in seed_out.getvalue()  # its progress
    assert "prosumer 12/12" in seed_out.getvalue()
    assert "community plant: Sonnenfeld community wind" in seed_out.getvalue()
    seeded_at = datetime.now(UTC)
    out = StringIO()
    call_command("advance_intervals", "--now", "+2h", stdout=out)
    target = datetime.fromisoformat(out.getvalue().split()[2])  # "Advanced to <moment> in ..."
    assert timedelta(hours=2) <= target - seeded_at < timedelta(hours=2, minutes=1)
    intervals = Interval.objects.filter(community__slug=DEMO_SLUG, end__lte=target)
    assert intervals.count() >= 6
    done = intervals.filter(state__in=[IntervalState.CONFIRMED, IntervalState.SETTLED])
    assert done.count() == intervals.count()
    assert Posting.objects.filter(interval__in=intervals).count() >= intervals.count()
    assert GridCheckResult.objects.filter(interval__in=intervals).count() == intervals.count()
    assert not Trade.objects.filter(interval__in=intervals, confirmed_kwh__isnull=True).exists()
    assert "pipeline step(s) done" in out.getvalue()
    # Running it again at the same moment does nothing twice.
    trades = Trade.objects.count()
    call_command("advance_intervals", "--now", target.isoformat(), stdout=StringIO())
    assert Trade.objects.count() == trades
