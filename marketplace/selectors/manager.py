"""What a manager's admin home shows: per managed community, what waits for them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, OuterRef, Q, Subquery

from accounts import permissions
from accounts.models import Membership, MembershipStatus
from accounts.permissions import AnyUser
from grid.models import GridCheckResult
from marketplace.models import Community, Interval, IntervalState


@dataclass(frozen=True, slots=True)
class CommunityToday:
    community: Community
    pending_members: int
    held_intervals: int  # grid check found no feasible schedule: not confirmed, waits for them
    failing_intervals: int  # a pipeline step failed and is being retried
    last_check_at: datetime | None
    last_check_feasible: bool | None
    last_check_interval_id: int | None


def manager_home(*, user: AnyUser) -> list[CommunityToday]:
    """Four queries, whatever the number of communities."""
    newest_check = GridCheckResult.objects.filter(interval__community=OuterRef("pk")).order_by(
        "-checked_at", "-pk"
    )
    communities = list(
        permissions.managed_communities(user)
        .annotate(last_check_id=Subquery(newest_check.values("pk")[:1]))
        .order_by("name")
    )
    ids = [c.pk for c in communities]
    # Counted apart: managed_communities() joins memberships already (the manager's own).
    pending = dict(
        Membership.objects.filter(community_id__in=ids, status=MembershipStatus.PENDING)
        .values("community_id")
        .annotate(n=Count("pk"))
        .values_list("community_id", "n")
    )
    intervals = (
        Interval.objects.filter(community_id__in=ids)
        .values("community_id")
        .annotate(
            held=Count(
                "pk",
                filter=Q(state=IntervalState.GRID_CHECKED, grid_check__feasible=False),
            ),
            failing=Count("pk", filter=~Q(last_error="")),
        )
    )
    by_community: dict[int, dict[str, Any]] = {row["community_id"]: dict(row) for row in intervals}
    last_checks = GridCheckResult.objects.in_bulk(
        [c.last_check_id for c in communities if c.last_check_id]
    )
    rows = []
    for community in communities:
        counts = by_community.get(community.pk, {})
        check = last_checks.get(community.last_check_id)
        rows.append(
            CommunityToday(
                community=community,
                pending_members=pending.get(community.pk, 0),
                held_intervals=counts.get("held", 0),
                failing_intervals=counts.get("failing", 0),
                last_check_at=check.checked_at if check else None,
                last_check_feasible=check.feasible if check else None,
                last_check_interval_id=check.interval_id if check else None,
            )
        )
    return rows
