"""The member's opt-in autopilot: switch it on with limits, switch it off, and post for the
members who switched it on, through the same posting service a person uses.

What it posts is ``marketplace.autopilot.autopilot_order`` over the meter point's forecast
(``marketplace.selectors.forecasts``, the grid check's baseline: its own metered history at
the same time of day in past weeks). A meter point with no history gets no posting. It posts
shortly before gate closure (``AUTOPILOT_LEAD``), so the member has until then to post for
themselves; it never posts where the member posted or bid, and never twice for one interval
(``posting_create(autopilot=True)`` refuses both under the meter point's lock).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, MeterPoint
from config.errors import ApplicationError, ErrorCode
from marketplace.autopilot import (
    AutopilotLimits,
    AutopilotStrategy,
    autopilot_order,
)
from marketplace.lock_objects import lock_meter_point_with_membership
from marketplace.models import Autopilot, Community, Posting, PostingStatus
from marketplace.selectors.autopilot import autopilots_due
from marketplace.selectors.forecasts import net_export_forecast_kw
from marketplace.services.board_checks import (
    check_member_may_trade,
    check_meter_point,
    check_meter_point_approved,
    check_placed,
    to_decimal,
)
from marketplace.services.postings import posting_cancel, posting_create
from marketplace.services.rules import current_rules
from units import KWH, PRICE

logger = logging.getLogger(__name__)

# How long before gate closure the autopilot posts: late, so the member can post first.
AUTOPILOT_LEAD = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class AutopilotSettings:
    """The limits and strategy as the member typed them (text; parsed by the service)."""

    strategy: str
    max_buy_kwh: Decimal | str
    max_sell_kwh: Decimal | str
    sell_floor_per_kwh: Decimal | str
    buy_ceiling_per_kwh: Decimal | str


def check_autopilot_settings(
    *, settings: AutopilotSettings, meter_point: MeterPoint, membership: Membership
) -> tuple[AutopilotStrategy, AutopilotLimits]:
    """Parse and check the settings against the meter point and the community's current rules.

    Refused, with the field: an unknown strategy; a kWh limit below 0 or beyond what the meter
    point can import (buy) or export (sell) in one interval (capacity x interval hours); both
    kWh limits 0 (nothing to do); a price outside the community's floor and cap; a selling
    floor above the buying ceiling.
    """
    try:
        strategy = AutopilotStrategy(settings.strategy)
    except ValueError:
        raise ApplicationError(
            ErrorCode.UNKNOWN_CHOICE, "Choose one of the strategies.", field="strategy"
        ) from None
    rules = current_rules(membership.community)
    hours = Decimal(rules.interval_minutes) / Decimal(60)
    amounts: dict[str, Decimal] = {}
    for field, capacity_kw, direction in (
        ("max_buy_kwh", meter_point.import_capacity_kw, "import"),
        ("max_sell_kwh", meter_point.export_capacity_kw, "export"),
    ):
        value = to_decimal(getattr(settings, field), field=field, quantum=KWH)
        limit = (capacity_kw * hours).quantize(KWH)
        if value < 0:
            raise ApplicationError(ErrorCode.OUT_OF_RANGE, "Give 0 or more kWh.", field=field)
        if value > limit:
            raise ApplicationError(
                ErrorCode.OVER_CAPACITY,
                f"This meter point can {direction} at most {limit} kWh in one "
                f"{rules.interval_minutes}-minute interval ({capacity_kw} kW).",
                field=field,
            )
        amounts[field] = value
    if amounts["max_buy_kwh"] == 0 and amounts["max_sell_kwh"] == 0:
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE,
            "Allow some kWh to buy or to sell, or switch the autopilot off.",
            field="max_sell_kwh",
        )
    prices: dict[str, Decimal] = {}
    for field in ("sell_floor_per_kwh", "buy_ceiling_per_kwh"):
        value = to_decimal(getattr(settings, field), field=field, quantum=PRICE)
        if not rules.price_floor <= value <= rules.price_cap:
            raise ApplicationError(
                ErrorCode.OUT_OF_RANGE,
                f"The price must be between the community's floor {rules.price_floor} and cap "
                f"{rules.price_cap} per kWh.",
                field=field,
            )
        prices[field] = value
    if prices["sell_floor_per_kwh"] > prices["buy_ceiling_per_kwh"]:
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE,
            "The selling floor must not be above the buying ceiling.",
            field="sell_floor_per_kwh",
        )
    return strategy, AutopilotLimits(
        max_buy_kwh=amounts["max_buy_kwh"],
        max_sell_kwh=amounts["max_sell_kwh"],
        sell_floor_per_kwh=prices["sell_floor_per_kwh"],
        buy_ceiling_per_kwh=prices["buy_ceiling_per_kwh"],
    )


def autopilot_switch_on(
    *,
    membership: Membership,
    meter_point: MeterPoint,
    settings: AutopilotSettings,
    now: datetime | None = None,
) -> Autopilot:
    """Switch the meter point's autopilot on with these limits (or change them while it is on).

    Refused like a posting: a member not approved or suspended, someone else's meter point, a
    meter point its manager has not approved or not placed on the community's network; and
    bad settings (``check_autopilot_settings``). Nothing is stored on a refusal.
    """
    now = now or timezone.now()
    check_meter_point(membership, meter_point)
    with transaction.atomic(durable=True):
        locked, member, has_grid = lock_meter_point_with_membership(meter_point.pk)
        check_meter_point(membership, locked)
        check_member_may_trade(member)
        check_meter_point_approved(locked)
        check_placed(locked, community_has_grid=has_grid)
        strategy, limits = check_autopilot_settings(
            settings=settings, meter_point=locked, membership=membership
        )
        autopilot, _ = Autopilot.objects.update_or_create(
            meter_point_id=locked.pk,
            defaults={
                "membership_id": membership.pk,
                "enabled": True,
                "strategy": strategy.value,
                "max_buy_kwh": limits.max_buy_kwh,
                "max_sell_kwh": limits.max_sell_kwh,
                "sell_floor_per_kwh": limits.sell_floor_per_kwh,
                "buy_ceiling_per_kwh": limits.buy_ceiling_per_kwh,
                "changed_at": now,
            },
        )
        return autopilot


def autopilot_switch_off(
    *, membership: Membership, meter_point: MeterPoint, now: datetime | None = None
) -> int:
    """Switch the meter point's autopilot off and withdraw its postings still open before their
    gate closure; what they traded stays traded. Returns how many postings were withdrawn.

    The limits are kept for the next time it is switched on. Switching off an autopilot that
    is off (or was never on) withdraws nothing and is not an error.
    """
    now = now or timezone.now()
    check_meter_point(membership, meter_point)
    with transaction.atomic(durable=True):
        # The meter point's lock orders this against the autopilot's own posting.
        lock_meter_point_with_membership(meter_point.pk)
        Autopilot.objects.filter(meter_point_id=meter_point.pk, enabled=True).update(
            enabled=False, changed_at=now
        )
        open_ones = list(
            Posting.objects.filter(
                meter_point_id=meter_point.pk,
                autopilot=True,
                status=PostingStatus.OPEN,
                interval__gate_closure_at__gt=now,
            ).order_by("pk")
        )
    withdrawn = 0
    for posting in open_ones:
        # Each withdrawal is the poster's own cancel; one whose gate closed meanwhile stays.
        try:
            posting_cancel(posting=posting, by_membership=membership, now=now)
        except ApplicationError as error:
            logger.info("autopilot posting %s not withdrawn: %s", posting.pk, error)
            continue
        withdrawn += 1
    return withdrawn


def autopilot_post_due(
    *,
    now: datetime | None = None,
    window: timedelta = AUTOPILOT_LEAD,
    community_id: int | None = None,
    community_ids: list[int] | None = None,
) -> list[Posting]:
    """Post for every switched-on autopilot in each open interval whose gate closes within
    ``window``: the forecast's order within the member's limits, or nothing. Safe to run again
    at any time: a meter point with a posting or bid in the interval is left alone."""
    now = now or timezone.now()
    due = autopilots_due(
        now=now, window=window, community_id=community_id, community_ids=community_ids
    )
    forecasts: dict[int, dict[int, float]] = {}
    posted: list[Posting] = []
    for item in due:
        interval, autopilot = item.interval, item.autopilot
        if interval.pk not in forecasts:
            forecasts[interval.pk] = net_export_forecast_kw(
                community_id=interval.community_id,
                start=interval.start,
                meter_points=[
                    d.autopilot.meter_point_id for d in due if d.interval.pk == interval.pk
                ],
            )
        forecast = forecasts[interval.pk].get(autopilot.meter_point_id)
        if forecast is None:
            continue  # no metered history at this time of day yet
        rules = interval.rules
        limits = AutopilotLimits(
            max_buy_kwh=min(
                autopilot.max_buy_kwh,
                (autopilot.meter_point.import_capacity_kw * interval.hours).quantize(KWH),
            ),
            max_sell_kwh=min(
                autopilot.max_sell_kwh,
                (autopilot.meter_point.export_capacity_kw * interval.hours).quantize(KWH),
            ),
            sell_floor_per_kwh=max(autopilot.sell_floor_per_kwh, rules.price_floor),
            buy_ceiling_per_kwh=min(autopilot.buy_ceiling_per_kwh, rules.price_cap),
        )
        order = autopilot_order(
            strategy=AutopilotStrategy(autopilot.strategy),
            forecast_net_export_kw=forecast,
            hours=interval.hours,
            limits=limits,
            retail_tariff=rules.retail_tariff,
            feed_in_tariff=rules.feed_in_tariff,
        )
        if order is None:
            continue
        try:
            posting = posting_create(
                membership=autopilot.membership,
                meter_point=autopilot.meter_point,
                interval=interval,
                side=order.side,
                quantity_kwh=order.quantity_kwh,
                limit_price_per_kwh=order.limit_price_per_kwh,
                auto_accept_best_bids=True,
                autopilot=True,
                now=now,
            )
        except ApplicationError as error:
            # The member posted meanwhile, was suspended, or the rules changed: skip this one.
            logger.info(
                "autopilot of meter point %s did not post for interval %s: %s",
                autopilot.meter_point_id,
                interval.pk,
                error,
            )
            continue
        posted.append(posting)
    return posted


def autopilot_on_clock_replayed(
    *,
    phase: str,
    communities: list[Community],
    moment: datetime,
    window: timedelta,
    **_: object,
) -> int:
    """``advance_intervals``' replay (``marketplace.signals.clock_replayed``): the communities'
    autopilots post before the moment's steps, as beat's round would at that moment."""
    if phase != "before_steps" or not communities:
        return 0
    return len(
        autopilot_post_due(now=moment, window=window, community_ids=[c.pk for c in communities])
    )
