"""Reads only the API serves, each filtered by the caller's role through `accounts.permissions`.

Object permissions run only in ``get_object()``, so every list starts from one of these (or from
the shared selectors in ``marketplace.selectors`` / ``marketplace.ledger.selectors``): a caller
can never list a row they could not open. When another channel needs one of these, it moves to
the app's selectors.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
)

from accounts.models import Membership, MembershipStatus, MeterPoint, User
from accounts.permissions import HISTORY_STATUSES, readable_communities
from accounts.selectors import meter_points_of_user
from marketplace.ledger.models import MeterReading, Settlement
from marketplace.models import Bid, Community, Interval, IntervalState, Posting, Trade, TradeSource
from marketplace.selectors.board import my_bids, my_postings, my_trades

_MONEY = DecimalField(max_digits=24, decimal_places=7)
_PEER = Q(trades__source__in=(TradeSource.BILATERAL, TradeSource.POOL))
_GRID = Q(trades__source=TradeSource.GRID)
_PRICED_STATES = (
    IntervalState.CLEARED,
    IntervalState.GRID_CHECKED,
    IntervalState.CONFIRMED,
    IntervalState.SETTLED,
)


def history_memberships(*, user: User, community: Community | None = None) -> list[Membership]:
    """The user's memberships that still see their own history (approved or suspended)."""
    memberships = Membership.objects.filter(user=user, status__in=HISTORY_STATUSES)
    if community is not None:
        memberships = memberships.filter(community=community)
    return list(memberships.order_by("pk"))


_Row = TypeVar("_Row", Posting, Bid, Trade)


def _combined(parts: list[QuerySet[_Row]], empty: QuerySet[_Row]) -> QuerySet[_Row]:
    # OR-ing the per-membership querysets keeps each selector's joins and annotations.
    return functools.reduce(operator.or_, parts) if parts else empty


def own_postings(*, user: User) -> QuerySet[Posting]:
    """The user's postings in every community they belong to (``my_postings`` per membership)."""
    parts = [my_postings(membership=m) for m in history_memberships(user=user)]
    return _combined(parts, Posting.objects.none()).select_related("interval__community")


def own_bids(*, user: User) -> QuerySet[Bid]:
    parts = [my_bids(membership=m) for m in history_memberships(user=user)]
    return _combined(parts, Bid.objects.none()).select_related("posting__interval__community")


def own_trades(*, user: User) -> QuerySet[Trade]:
    parts = [my_trades(membership=m) for m in history_memberships(user=user)]
    return _combined(parts, Trade.objects.none()).select_related("interval__community")


def decidable_bids(*, user: User) -> QuerySet[Bid]:
    """Bids the user may act on: their own (withdraw) and those on their postings (accept,
    reject). The services check which action fits whom."""
    return Bid.objects.filter(
        Q(membership__user=user) | Q(posting__membership__user=user)
    ).select_related("posting", "posting__membership", "membership")


def own_meter_points(*, user: User) -> QuerySet[MeterPoint]:
    return meter_points_of_user(user=user)


def own_readings(*, user: User) -> QuerySet[MeterReading]:
    return (
        MeterReading.objects.filter(meter_point__in=meter_points_of_user(user=user))
        .select_related("interval")
        .order_by("-interval__start", "meter_point_id", "-version")
    )


def own_settlements(*, user: User) -> QuerySet[Settlement]:
    return (
        Settlement.objects.filter(membership__user=user, membership__status__in=HISTORY_STATUSES)
        .select_related("interval__community")
        .order_by("-interval__start", "pk")
    )


def visible_intervals(*, user: User) -> QuerySet[Interval]:
    """Intervals of the communities whose market data the user may read, with their results.

    Results are anonymous aggregates of the interval's trades: peer and grid energy, the peer
    volume-weighted price, confirmed and curtailed energy, and the grid check's verdict.
    """
    peer_value = ExpressionWrapper(
        F("trades__quantity_kwh") * F("trades__price_per_kwh"), output_field=_MONEY
    )
    return (
        Interval.objects.filter(community__in=readable_communities(user))
        .select_related("community")
        .annotate(
            trade_count=Count("trades"),
            peer_kwh=Sum("trades__quantity_kwh", filter=_PEER),
            peer_value=Sum(peer_value, filter=_PEER),
            grid_kwh=Sum("trades__quantity_kwh", filter=_GRID),
            confirmed_kwh=Sum("trades__confirmed_kwh"),
            curtailed_kwh=Sum("trades__curtailed_kwh"),
            grid_feasible=F("grid_check__feasible"),
        )
        .order_by("community_id", "start")
    )


@dataclass(frozen=True, slots=True)
class CommunityStatistics:
    """Anonymous market figures of one community over a time range."""

    community: str
    intervals: int
    cleared_intervals: int
    trades: int
    peer_kwh: Decimal
    grid_kwh: Decimal
    average_peer_price_per_kwh: Decimal | None
    curtailed_kwh: Decimal
    approved_members: int


def market_statistics(
    *,
    user: User,
    community: Community | None = None,
    start_after: datetime | None = None,
    start_before: datetime | None = None,
) -> list[CommunityStatistics]:
    """Figures for every community the user may read: all of them for regulators, their own
    for members. Three queries however many communities and intervals."""
    communities = readable_communities(user)
    if community is not None:
        communities = communities.filter(pk=community.pk)
    by_pk = {c.pk: c.slug for c in communities.order_by("slug")}
    intervals = Interval.objects.filter(community_id__in=list(by_pk))
    if start_after is not None:
        intervals = intervals.filter(start__gte=start_after)
    if start_before is not None:
        intervals = intervals.filter(start__lt=start_before)
    counts = {
        row["community_id"]: row
        for row in intervals.values("community_id")
        .annotate(n=Count("pk"), cleared=Count("pk", filter=Q(state__in=_PRICED_STATES)))
        .order_by()
    }
    trade_rows = {
        row["interval__community_id"]: row
        for row in Trade.objects.filter(interval__in=intervals)
        .values("interval__community_id")
        .annotate(
            n=Count("pk"),
            peer=Sum("quantity_kwh", filter=~Q(source=TradeSource.GRID)),
            peer_value=Sum(
                ExpressionWrapper(F("quantity_kwh") * F("price_per_kwh"), output_field=_MONEY),
                filter=~Q(source=TradeSource.GRID),
            ),
            grid=Sum("quantity_kwh", filter=Q(source=TradeSource.GRID)),
            curtailed=Sum("curtailed_kwh"),
        )
        .order_by()
    }
    members = dict(
        Membership.objects.filter(community_id__in=list(by_pk), status=MembershipStatus.APPROVED)
        .values("community_id")
        .annotate(n=Count("pk"))
        .values_list("community_id", "n")
        .order_by()
    )
    zero = Decimal("0.000")
    out = []
    for pk, slug in by_pk.items():
        count: dict[str, Any] = dict(counts.get(pk, {}))
        trades: dict[str, Any] = dict(trade_rows.get(pk, {}))
        peer = trades.get("peer") or zero
        value = trades.get("peer_value")
        out.append(
            CommunityStatistics(
                community=slug,
                intervals=count.get("n", 0),
                cleared_intervals=count.get("cleared", 0),
                trades=trades.get("n", 0),
                peer_kwh=peer,
                grid_kwh=trades.get("grid") or zero,
                average_peer_price_per_kwh=(
                    (value / peer).quantize(Decimal("0.0001")) if value and peer else None
                ),
                curtailed_kwh=trades.get("curtailed") or zero,
                approved_members=members.get(pk, 0),
            )
        )
    return out
