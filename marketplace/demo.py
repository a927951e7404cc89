"""The demo community's automation: its prosumers post from real profiles, so the market runs alone.

Before each gate closure every demo home with a bus posts its expected surplus as an offer or its
expected deficit as a request, from SimBench's standard household load profile (``H0-A``) and PV
profile (``PV5``) through ``grid.profiles`` (a year of 15-minute values, offline). Prices fall
between the community's feed-in and retail tariffs, sellers lower and buyers higher, so most
orders match. Everything is deterministic in (interval start, meter point), so a replay by
``advance_intervals`` posts the same book every time. Only the demo community is touched.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import MembershipRole, MembershipStatus, MeterPoint
from config.errors import ApplicationError
from grid.profiles import _standard_shapes, year_step
from marketplace.models import Community, Interval, IntervalState, Posting, Side
from units import KWH, PRICE

logger = logging.getLogger(__name__)

DEMO_SLUG = "sonnenfeld"  # the community seed_demo creates
# A household's peak demand: H0-A is per unit of it, so the average home uses ~0.55 kW
# (about 4,900 kWh a year), a typical German family home.
HOUSEHOLD_PEAK_KW = 4.0
# Orders below this are not worth a posting (and a home at night with no PV posts nothing).
MIN_ORDER_KWH = Decimal("0.010")
# How far ahead of gate closure the live demo posts (the beat task runs every minute).
LIVE_POSTING_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class DemoOrder:
    """What one demo home wants to do in one interval."""

    meter_point_id: int
    side: str
    quantity_kwh: Decimal
    limit_price_per_kwh: Decimal


def demo_community() -> Community | None:
    return Community.objects.filter(slug=DEMO_SLUG).first()


def _demo_meter_points(community: Community) -> list[MeterPoint]:
    return list(
        MeterPoint.objects.filter(
            membership__community=community,
            membership__status=MembershipStatus.APPROVED,
            membership__role=MembershipRole.PROSUMER,
            bus__isnull=False,
        )
        .select_related("membership")
        .order_by("pk")
    )


def demo_orders(interval: Interval, meter_points: list[MeterPoint]) -> list[DemoOrder]:
    """The orders the demo homes post for ``interval`` (pure apart from reading the rules)."""
    household, pv_shape = _standard_shapes()
    # The profile value of the interval's first quarter-hour stands for the whole interval.
    step = year_step(interval.start, len(household))
    hours = float(interval.hours)
    rules = interval.rules
    low, high = float(rules.feed_in_tariff), float(rules.retail_tariff)
    spread = high - low
    orders: list[DemoOrder] = []
    for meter_point in meter_points:
        # Seeded per (interval, home): replays post the same book; not security relevant.
        rng = random.Random(f"{interval.start.isoformat()}:{meter_point.pk}")  # noqa: S311
        size = 0.6 + 0.8 * rng.random()  # homes differ in size and habits
        load_kw = float(household[step]) * HOUSEHOLD_PEAK_KW * size
        pv_kw = float(pv_shape[step]) * float(meter_point.pv_kwp)
        net_kw = load_kw - pv_kw
        if net_kw > 0:
            side = Side.BUY
            capacity = float(meter_point.import_capacity_kw)
            price = low + spread * rng.uniform(0.45, 0.95)
        else:
            side = Side.SELL
            capacity = float(meter_point.export_capacity_kw)
            price = low + spread * rng.uniform(0.05, 0.55)
        kwh = min(abs(net_kw), capacity) * hours
        quantity = Decimal(repr(kwh)).quantize(KWH, rounding=ROUND_HALF_UP)
        if quantity < MIN_ORDER_KWH:
            continue
        limit = Decimal(repr(price)).quantize(PRICE, rounding=ROUND_HALF_UP)
        limit = min(max(limit, rules.price_floor), rules.price_cap)
        orders.append(DemoOrder(meter_point.pk, side, quantity, limit))
    return orders


def demo_post_orders(*, community: Community, now: datetime, window: timedelta) -> int:
    """Post the demo homes' orders for every open interval whose gate closes within ``window``.

    An interval that already has postings from the demo homes is skipped, so running this twice
    (two beats, or the command after the beat) posts once. Returns how many postings were made.
    """
    from marketplace.services.postings import posting_create

    meter_points = _demo_meter_points(community)
    if not meter_points:
        return 0
    by_pk = {mp.pk: mp for mp in meter_points}
    intervals = Interval.objects.filter(
        community=community,
        state=IntervalState.OPEN,
        gate_closure_at__gt=now,
        gate_closure_at__lte=now + window,
    ).select_related("rules")
    posted = 0
    for interval in intervals:
        if Posting.objects.filter(interval=interval, meter_point__in=meter_points).exists():
            continue
        for order in demo_orders(interval, meter_points):
            meter_point = by_pk[order.meter_point_id]
            try:
                posting_create(
                    membership=meter_point.membership,
                    meter_point=meter_point,
                    interval=interval,
                    side=order.side,
                    quantity_kwh=order.quantity_kwh,
                    limit_price_per_kwh=order.limit_price_per_kwh,
                    auto_accept_best_bids=True,
                    now=now,
                )
                posted += 1
            except ApplicationError as exc:
                # A refused order (e.g. a home suspended meanwhile) must not stop the others.
                logger.info("demo posting refused for %s: %s", meter_point.label, exc)
    return posted


def demo_record_readings(*, community: Community, now: datetime) -> int:
    """Simulated meter readings for the demo's delivered intervals (schedule plus a little noise).

    The ledger's ``readings_simulate`` skips meter points that already have a reading, so this
    is safe to run on every tick; settlement then finds the readings in.
    """
    from marketplace.ledger.services import readings_simulate

    recorded = 0
    for interval in Interval.objects.filter(
        community=community, state=IntervalState.CONFIRMED, end__lte=now
    ).order_by("start"):
        with transaction.atomic():
            recorded += len(readings_simulate(interval=interval))
    return recorded


def demo_tick(*, now: datetime | None = None, window: timedelta = LIVE_POSTING_WINDOW) -> int:
    """What the demo's beat task does: post ahead of gate closure, meter after delivery."""
    now = now or timezone.now()
    community = demo_community()
    if community is None:
        return 0
    posted = demo_post_orders(community=community, now=now, window=window)
    demo_record_readings(community=community, now=now)
    return posted
