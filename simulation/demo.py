"""The live demo: Sonnenfeld's robot households and community plants trade all year by themselves.

Only meter points with a ``SimulatedHousehold`` row are robots: ``seed_demo`` creates them for its
own demo homes and plants. A real member who joins the demo community is never traded for.

Each UTC day every robot plans ahead as a simulated household does (``simulation.agents``): its
demand and PV from SimBench's profiles, its water heater by Elecbay's game over the whole
community, its EV and battery by price. The price it expects, to buy and to sell alike, is the
community's by the supply-demand ratio (``strategies.sdr_price``): low where the community's
own output (PV, the wind turbine, the CHP plant) covers its demand, high where it does not, so
batteries buy cheap wind at night and sell in the evening. (A simulation's agents start from
the same ratio but split into what buying and selling each fetch, ``strategies.sdr_prices``,
and then learn the market's own prices; the demo plans every day afresh, so a replay is the
same.) Plants sell their
SimBench output at their cost or more. Everything is deterministic in (day, meter point), so a
replay by ``advance_intervals`` posts the same book again.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import numpy as np
from django.db import transaction
from django.utils import timezone

from accounts.models import MembershipStatus, MeterPoint
from config.errors import ApplicationError
from marketplace.models import Community, Interval, IntervalState, Posting
from marketplace.services.postings import posting_create
from simulation.agents import (
    DayInputs,
    HouseholdAgent,
    Order,
    PlantAgent,
    PriceMemory,
    plan_water_heaters,
)
from simulation.models import SimulatedHousehold
from simulation.profiles import (
    hot_water_draws,
    household_profile,
    plant_profile,
    pv_profile,
    values_at,
)
from simulation.scenario import household_spec, plant_spec
from simulation.selectors import peer_fee_per_kwh
from simulation.strategies import BUY, Tariffs, sdr_price, strategy_for
from units import KWH, PRICE

logger = logging.getLogger(__name__)

DEMO_SLUG = "sonnenfeld"  # the community seed_demo creates


# How far ahead of gate closure the live demo posts (the beat task runs every minute).
LIVE_POSTING_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class RobotPlan:
    """A robot's net power and its flexible part for each interval of one UTC day."""

    net_kw: tuple[float, ...]
    flexible_kw: tuple[float, ...]
    strategy: str
    is_plant: bool
    cost_per_kwh: float


def demo_community() -> Community | None:
    return Community.objects.filter(slug=DEMO_SLUG).first()


def robot_meter_points(community: Community) -> list[MeterPoint]:
    """The demo's own robot homes and plants that can trade (approved, on a bus)."""
    return list(
        MeterPoint.objects.filter(
            membership__community=community,
            membership__status=MembershipStatus.APPROVED,
            bus__isnull=False,
            simulated_household__isnull=False,
        )
        .select_related("membership", "simulated_household")
        .order_by("pk")
    )


def _tariffs(interval: Interval) -> Tariffs:
    rules = interval.rules
    return Tariffs(
        retail=float(rules.retail_tariff),
        feed_in=float(rules.feed_in_tariff),
        floor=float(rules.price_floor),
        cap=float(rules.price_cap),
        fee=peer_fee_per_kwh(rules),
    )


# Beat posts a day's intervals one by one: the day's plans (and its game) are made once.
@functools.lru_cache(maxsize=64)
def _day_plans(
    day: datetime, minutes: int, tariffs: Tariffs, zone: str, robots: tuple[tuple[int, str], ...]
) -> dict[int, RobotPlan]:
    """Every robot's plan for the UTC day starting at ``day`` (see the module docstring)."""
    hours = minutes / 60
    steps = 24 * 60 // minutes
    local = ZoneInfo(zone)
    local_hours = np.asarray(
        [(day + timedelta(minutes=minutes * t)).astimezone(local).hour for t in range(steps)]
    )
    households: list[tuple[int, HouseholdAgent]] = []
    plants: list[tuple[int, PlantAgent]] = []
    for mp, assets_json in robots:
        assets = json.loads(assets_json)
        if "plant" in assets:
            spec = plant_spec(assets["plant"])
            plant = PlantAgent(key=str(mp), spec=spec, hours=hours)
            plant.plan_day(values_at(plant_profile(spec.kind), day, steps, minutes))
            plants.append((mp, plant))
            continue
        group = household_spec(assets)
        rng = random.Random(f"{day.date().isoformat()}:{mp}")  # noqa: S311 - demo
        agent = HouseholdAgent(
            key=str(mp), spec=group, strategy=strategy_for(group.strategy), rng=rng,
            hours=hours, memory=PriceMemory(steps),
        )  # fmt: skip
        load = values_at(household_profile(group.load_profile), day, steps, minutes)
        pv = values_at(pv_profile(), day, steps, minutes)
        agent.day = DayInputs(
            load_kw=load * group.peak_kw * (0.8 + 0.4 * rng.random()),
            pv_kw=np.clip(pv, 0.0, 1.0) * (group.pv.kwp if group.pv else 0.0),
            draws_l=hot_water_draws(group.litres_per_day, local_hours, minutes),
            local_hours=local_hours,
        )
        households.append((mp, agent))
    base = sum((a.base_kw for _, a in households), np.zeros(steps))
    base = base - sum((p.output_kw for _, p in plants), np.zeros(steps))
    game_rng = random.Random(f"{day.date().isoformat()}:heaters")  # noqa: S311 - demo
    schedules, _ = plan_water_heaters([a for _, a in households], base, tariffs, hours, game_rng)
    supply = sum((p.output_kw for _, p in plants), np.zeros(steps))
    supply = supply + sum((a.day.pv_kw for _, a in households if a.day), np.zeros(steps))
    demand = sum((a.day.load_kw for _, a in households if a.day), np.zeros(steps))
    expected = [sdr_price(s, d, tariffs) for s, d in zip(supply, demand, strict=True)]
    plans: dict[int, RobotPlan] = {}
    for mp, agent in households:
        agent.memory.seen = dict(enumerate(expected))
        agent.memory.seen_sell = dict(enumerate(expected))
        assert agent.day is not None
        agent.plan_day(agent.day, 0, tariffs, schedules.get(agent.key))
        net, flexible = zip(*(agent.act() for _ in range(steps)), strict=True)
        plans[mp] = RobotPlan(net, flexible, agent.spec.strategy, False, 0.0)
    for mp, plant in plants:
        net, flexible = zip(*(plant.act() for _ in range(steps)), strict=True)
        plans[mp] = RobotPlan(net, flexible, "truthful", True, plant.spec.cost_per_kwh)
    return plans


def demo_orders(
    interval: Interval, meter_points: list[MeterPoint]
) -> list[tuple[MeterPoint, Order]]:
    """The orders the robots post for ``interval`` (deterministic in the day and meter point)."""
    tariffs = _tariffs(interval)
    minutes = interval.rules.interval_minutes
    start = interval.start.astimezone(UTC)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    robots = tuple((mp.pk, _assets_key(mp.simulated_household.assets)) for mp in meter_points)
    plans = _day_plans(day, minutes, tariffs, interval.community.timezone, robots)
    step = int((start - day).total_seconds() // 60) // minutes
    orders = []
    for meter_point in meter_points:
        plan = plans[meter_point.pk]
        net_kw, flexible_kw = plan.net_kw[step], plan.flexible_kw[step]
        # Seeded per (interval, home): a replay posts the same prices.
        rng = random.Random(f"{interval.start.isoformat()}:{meter_point.pk}")  # noqa: S311
        kwh = abs(net_kw) * minutes / 60
        if kwh < 0.001:
            continue
        if plan.is_plant:
            if net_kw >= 0:
                continue
            price = max(plan.cost_per_kwh, tariffs.seller_cost)
            orders.append((meter_point, Order("sell", kwh, price)))
            continue
        side = BUY if net_kw > 0 else "sell"
        price = strategy_for(plan.strategy).limit_price(side, tariffs, rng)
        flexible = side == BUY and flexible_kw > net_kw / 2
        orders.append((meter_point, Order(side, kwh, price, flexible)))
    return orders


def _assets_key(assets: dict[str, object]) -> str:
    return json.dumps(assets, sort_keys=True)


def _post(meter_point: MeterPoint, interval: Interval, order: Order, now: datetime) -> bool:
    rules = interval.rules
    capacity = (
        meter_point.import_capacity_kw if order.side == BUY else meter_point.export_capacity_kw
    ) * interval.hours
    quantity = min(Decimal(repr(order.quantity_kwh)).quantize(KWH, ROUND_HALF_UP), capacity)
    limit = Decimal(repr(order.limit_price)).quantize(PRICE, ROUND_HALF_UP)
    limit = min(max(limit, rules.price_floor), rules.price_cap)
    if quantity <= 0:
        return False
    try:
        posting_create(
            membership=meter_point.membership,
            meter_point=meter_point,
            interval=interval,
            side=order.side,
            quantity_kwh=quantity,
            limit_price_per_kwh=limit,
            auto_accept_best_bids=True,
            flexible=order.flexible,
            now=now,
        )
    except ApplicationError as exc:
        # A refused order (e.g. a home suspended meanwhile) must not stop the others.
        logger.info("demo posting refused for %s: %s", meter_point.label, exc)
        return False
    return True


def demo_post_orders(*, community: Community, now: datetime, window: timedelta) -> int:
    """Post the robots' orders for every open interval whose gate closes within ``window``.

    An interval that already has postings from the robots is skipped, so running this twice
    (two beats, or the command after the beat) posts once. Returns how many postings were made.
    """
    meter_points = robot_meter_points(community)
    if not meter_points:
        return 0
    intervals = Interval.objects.filter(
        community=community,
        state=IntervalState.OPEN,
        gate_closure_at__gt=now,
        gate_closure_at__lte=now + window,
    ).select_related("rules", "community")
    posted = 0
    for interval in intervals:
        if Posting.objects.filter(interval=interval, meter_point__in=meter_points).exists():
            continue
        for meter_point, order in demo_orders(interval, meter_points):
            posted += _post(meter_point, interval, order, now)
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


def demo_on_clock_replayed(
    *,
    phase: str,
    communities: list[Community],
    moment: datetime,
    window: timedelta,
    **_: object,
) -> int:
    """``advance_intervals``' replay: the demo posts before the steps and meters after them."""
    community = next((c for c in communities if c.slug == DEMO_SLUG), None)
    if community is None:
        return 0
    if phase == "before_steps":
        return demo_post_orders(community=community, now=moment, window=window)
    demo_record_readings(community=community, now=moment)
    return 0


def robot_household_add(
    *, meter_point: MeterPoint, assets: dict[str, object]
) -> SimulatedHousehold:
    """Make a demo-owned meter point a robot (checks the assets as a scenario would)."""
    if "plant" in assets:
        plant_spec(assets["plant"])
    else:
        household_spec(assets)
    robot, _ = SimulatedHousehold.objects.update_or_create(
        meter_point=meter_point,
        defaults={"assets": assets, "strategy": str(assets.get("strategy", "truthful"))},
    )
    return robot
