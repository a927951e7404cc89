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
from datetime import date
from decimal import Decimal
from typing import TypeVar

from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    Prefetch,
    Q,
    QuerySet,
    Sum,
)

from accounts.models import Membership, MembershipStatus, MeterPoint, User
from accounts.permissions import HISTORY_STATUSES, managed_communities, readable_communities
from accounts.selectors import meter_points_of_user
from marketplace.ledger.models import MeterReading, Settlement
from marketplace.models import (
    Bid,
    Community,
    Interval,
    IntervalState,
    Posting,
    Region,
    RegionInterval,
    RegionResidual,
    RegionTrade,
    Trade,
    TradeSource,
)
from marketplace.oversight.selectors import Scope, community_sufficiency, default_scope
from marketplace.selectors.board import my_bids, my_postings, my_trades
from units import PRICE

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


def managed_meter_points(*, user: User) -> QuerySet[MeterPoint]:
    """The meter points of every community the user manages, pending ones first."""
    return (
        MeterPoint.objects.filter(membership__community__in=managed_communities(user))
        .select_related("membership__community")
        .order_by("status", "pk")
    )


def managed_readings(*, user: User) -> QuerySet[MeterReading]:
    """The readings of every community the user manages."""
    return MeterReading.objects.filter(
        meter_point__membership__community__in=managed_communities(user)
    ).select_related("interval")


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


def visible_regions(*, user: User) -> QuerySet[Region]:
    """Regions holding a community whose market data the user may read (all for regulators)."""
    return (
        Region.objects.filter(communities__in=readable_communities(user))
        .distinct()
        .prefetch_related(Prefetch("communities", Community.objects.order_by("slug")))
        .order_by("slug")
    )


def visible_region_intervals(*, user: User) -> QuerySet[RegionInterval]:
    """The cleared periods of those regions with every community's part and the trades
    between communities: community aggregates only, nothing of a member."""
    return (
        RegionInterval.objects.filter(region__in=visible_regions(user=user))
        .select_related("region")
        .prefetch_related(
            Prefetch(
                "residuals",
                RegionResidual.objects.select_related("community").order_by("community__slug"),
            ),
            Prefetch(
                "trades",
                RegionTrade.objects.select_related(
                    "buyer__community", "seller__community"
                ).order_by("sequence"),
            ),
        )
        .order_by("-start", "region__slug")
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
    """Anonymous market figures of one community over a range of local days.

    Energy volumes and the two shares come from the regulators' dashboards
    (``marketplace.oversight.selectors.community_sufficiency``), so the API and the dashboards
    report the same numbers under the same definitions.
    """

    community: str
    first_day: date
    last_day: date
    intervals: int
    cleared_intervals: int
    trades: int
    p2p_kwh: Decimal
    from_grid_kwh: Decimal
    to_grid_kwh: Decimal
    self_sufficiency: float | None
    self_consumption: float | None
    average_p2p_price_per_kwh: Decimal | None
    curtailed_kwh: Decimal
    approved_members: int


def market_statistics(
    *,
    user: User,
    community: Community | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
) -> list[CommunityStatistics]:
    """Figures for every community the user may read: all of them for regulators, their own
    for members. Days are the community's local days; by default the last seven. A few
    queries per community (a regulator's list grows with the number of communities)."""
    communities = list(readable_communities(user).order_by("slug"))
    if community is not None:
        communities = [c for c in communities if c.pk == community.pk]
    out = []
    for readable in communities:
        scope = default_scope(readable)
        scope = Scope(readable, first_day or scope.first_day, last_day or scope.last_day, scope.tz)
        (row,) = community_sufficiency(scope).rows or [(readable.name, 0, 0, 0, None, None)]
        intervals = Interval.objects.filter(
            community=readable, start__gte=scope.start, start__lt=scope.end
        )
        counts = intervals.aggregate(
            n=Count("pk"), cleared=Count("pk", filter=Q(state__in=_PRICED_STATES))
        )
        p2p = ~Q(source=TradeSource.GRID)
        trades = Trade.objects.filter(interval__in=intervals).aggregate(
            n=Count("pk"),
            p2p=Sum("quantity_kwh", filter=p2p),
            p2p_value=Sum(
                ExpressionWrapper(F("quantity_kwh") * F("price_per_kwh"), output_field=_MONEY),
                filter=p2p,
            ),
            curtailed=Sum("curtailed_kwh"),
        )
        members = Membership.objects.filter(
            community=readable, status=MembershipStatus.APPROVED
        ).count()
        value, volume = trades["p2p_value"], trades["p2p"]
        out.append(
            CommunityStatistics(
                community=readable.slug,
                first_day=scope.first_day,
                last_day=scope.last_day,
                intervals=counts["n"],
                cleared_intervals=counts["cleared"],
                trades=trades["n"],
                p2p_kwh=Decimal(row[1] or 0),
                from_grid_kwh=Decimal(row[2] or 0),
                to_grid_kwh=Decimal(row[3] or 0),
                self_sufficiency=row[4],
                self_consumption=row[5],
                average_p2p_price_per_kwh=(
                    (value / volume).quantize(PRICE) if value and volume else None
                ),
                curtailed_kwh=trades["curtailed"] or Decimal("0.000"),
                approved_members=members,
            )
        )
    return out


def posting_with_interval(*, pk: int) -> Posting | None:
    """A posting to bid on, in any community: the bid service checks the bidder may."""
    return Posting.objects.filter(pk=pk).select_related("interval").first()
