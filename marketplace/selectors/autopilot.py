"""Reads of the autopilot: a member's settings, what it posted and how it went, and who is due."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q

from accounts.models import Membership, MembershipStatus, MeterPointStatus
from marketplace.models import (
    Autopilot,
    Bid,
    Interval,
    IntervalState,
    Posting,
    Side,
    Trade,
    TradeSource,
)


def my_autopilots(*, membership: Membership) -> dict[int, Autopilot]:
    """The member's autopilot settings by meter point id (on or off; none until first set)."""
    return {a.meter_point_id: a for a in Autopilot.objects.filter(membership=membership)}


@dataclass(frozen=True, slots=True)
class AutopilotPostingRow:
    """One autopilot posting and what came of it, on its side, for its meter point."""

    posting: Posting
    peer_kwh: Decimal  # agreed with other members (bilateral, pool, community pricing)
    grid_kwh: Decimal  # agreed with the outside grid at its tariff
    delivered_kwh: Decimal | None  # confirmed by the grid check; None before


def autopilot_postings(*, membership: Membership, limit: int = 50) -> list[AutopilotPostingRow]:
    """The autopilot's postings for the member, newest interval first, with their outcome: the
    trades of the posting's meter point on its side in its interval (pool and community trades
    name no posting; the autopilot posts only where the member has no other order). Two
    queries."""
    postings = list(
        Posting.objects.filter(membership=membership, autopilot=True)
        .select_related("interval", "meter_point")
        .order_by("-interval__start", "-pk")[:limit]
    )
    if not postings:
        return []
    wanted = {(p.interval_id, p.meter_point_id, p.side) for p in postings}
    meter_points = {p.meter_point_id for p in postings}
    rows = (
        Trade.objects.filter(interval_id__in={p.interval_id for p in postings})
        .filter(
            Q(buyer=membership, buyer_meter_point_id__in=meter_points)
            | Q(seller=membership, seller_meter_point_id__in=meter_points)
        )
        .order_by()
        .values_list(
            "interval_id", "buyer_id", "buyer_meter_point_id", "seller_meter_point_id",
            "source", "quantity_kwh", "confirmed_kwh",
        )
    )  # fmt: skip
    peer: dict[tuple[int, int, str], Decimal] = defaultdict(Decimal)
    grid: dict[tuple[int, int, str], Decimal] = defaultdict(Decimal)
    delivered: dict[tuple[int, int, str], Decimal] = {}
    for interval_id, buyer_id, buyer_mp, seller_mp, source, quantity, confirmed in rows:
        bought = buyer_id == membership.pk
        side = Side.BUY.value if bought else Side.SELL.value
        key = (interval_id, buyer_mp if bought else seller_mp, side)
        if key not in wanted:
            continue
        (grid if source == TradeSource.GRID else peer)[key] += quantity
        if confirmed is not None:
            delivered[key] = delivered.get(key, Decimal(0)) + confirmed
    return [
        AutopilotPostingRow(
            p,
            peer[(key := (p.interval_id, p.meter_point_id, p.side))],
            grid[key],
            delivered.get(key),
        )
        for p in postings
    ]


@dataclass(frozen=True, slots=True)
class DueAutopilot:
    """One switched-on autopilot and an interval it should post for."""

    autopilot: Autopilot
    interval: Interval


def autopilots_due(
    *,
    now: datetime,
    window: timedelta,
    community_id: int | None = None,
    community_ids: list[int] | None = None,
) -> list[DueAutopilot]:
    """Switched-on autopilots of approved members on approved meter points, with each open
    interval of their community whose gate closes within ``window`` from ``now``, where their
    meter point has no posting and no bid yet (the posting service checks that again under
    its lock). Three queries."""
    autopilots = Autopilot.objects.filter(
        enabled=True,
        membership__status=MembershipStatus.APPROVED,
        meter_point__status=MeterPointStatus.APPROVED,
    ).select_related("meter_point", "membership", "membership__community")
    if community_id is not None:
        autopilots = autopilots.filter(membership__community_id=community_id)
    if community_ids is not None:
        autopilots = autopilots.filter(membership__community_id__in=community_ids)
    chosen = list(autopilots.order_by("pk"))
    if not chosen:
        return []
    intervals = list(
        Interval.objects.filter(
            community_id__in={a.membership.community_id for a in chosen},
            state=IntervalState.OPEN,
            gate_closure_at__gt=now,
            gate_closure_at__lte=now + window,
        )
        .select_related("rules", "community")
        .order_by("start")
    )
    meter_points = [a.meter_point_id for a in chosen]
    busy = set(
        Posting.objects.filter(interval__in=intervals, meter_point_id__in=meter_points).values_list(
            "interval_id", "meter_point_id"
        )
    ) | set(
        Bid.objects.filter(
            posting__interval__in=intervals, meter_point_id__in=meter_points
        ).values_list("posting__interval_id", "meter_point_id")
    )
    return [
        DueAutopilot(autopilot, interval)
        for interval in intervals
        for autopilot in chosen
        if autopilot.membership.community_id == interval.community_id
        and (interval.pk, autopilot.meter_point_id) not in busy
    ]


def trades_by_autopilot(*, membership: Membership) -> Exists:
    """For an annotation of the member's trades: the member's side of the trade comes from an
    autopilot posting (its meter point's autopilot posted on that side in that interval)."""
    as_buyer = Q(side=Side.BUY, meter_point_id=OuterRef("buyer_meter_point_id"))
    as_seller = Q(side=Side.SELL, meter_point_id=OuterRef("seller_meter_point_id"))
    return Exists(
        Posting.objects.filter(
            autopilot=True, membership=membership, interval_id=OuterRef("interval_id")
        )
        .filter(as_buyer | as_seller)
        .values("pk")
    )
