"""Reads of the autopilot: a member's settings, what it posted and how it went, and who is due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import Membership, MembershipStatus
from marketplace.models import (
    Autopilot,
    Bid,
    Interval,
    IntervalState,
    Posting,
    Side,
    Trade,
    energy_field,
)


def my_autopilots(*, membership: Membership) -> dict[int, Autopilot]:
    """The member's autopilot settings by meter point id (on or off; none until first set)."""
    return {a.meter_point_id: a for a in Autopilot.objects.filter(membership=membership)}


def autopilot_postings(*, membership: Membership, limit: int = 50) -> list[Posting]:
    """The autopilot's postings for the member, newest interval first, each with its outcome:
    ``traded_kwh`` (agreed in its interval on its side, for its meter point) and
    ``delivered_kwh`` (confirmed by the grid check; null before)."""
    bought = Trade.objects.filter(
        interval_id=OuterRef("interval_id"), buyer_meter_point_id=OuterRef("meter_point_id")
    )
    sold = Trade.objects.filter(
        interval_id=OuterRef("interval_id"), seller_meter_point_id=OuterRef("meter_point_id")
    )

    def total(trades: QuerySet[Trade], field: str) -> Subquery:
        return Subquery(
            trades.order_by().values("interval_id").annotate(total=Sum(field)).values("total")[:1],
            output_field=energy_field(),
        )

    return list(
        Posting.objects.filter(membership=membership, autopilot=True)
        .select_related("interval", "meter_point")
        .annotate(
            traded_bought=Coalesce(total(bought, "quantity_kwh"), Value(Decimal(0))),
            traded_sold=Coalesce(total(sold, "quantity_kwh"), Value(Decimal(0))),
            delivered_bought=total(bought, "confirmed_kwh"),
            delivered_sold=total(sold, "confirmed_kwh"),
        )
        .order_by("-interval__start", "-pk")[:limit]
    )


@dataclass(frozen=True, slots=True)
class DueAutopilot:
    """One switched-on autopilot and an interval it should post for."""

    autopilot: Autopilot
    interval: Interval


def autopilots_due(
    *, now: datetime, window: timedelta, community_id: int | None = None
) -> list[DueAutopilot]:
    """Switched-on autopilots of approved members, with each open interval of their community
    whose gate closes within ``window`` from ``now``, where their meter point has no posting
    and no bid yet (the posting service checks that again under its lock). Three queries."""
    autopilots = Autopilot.objects.filter(
        enabled=True, membership__status=MembershipStatus.APPROVED
    ).select_related("meter_point", "membership", "membership__community")
    if community_id is not None:
        autopilots = autopilots.filter(membership__community_id=community_id)
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
