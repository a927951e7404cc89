"""Reads for the account pages, filtered by the caller through `accounts.permissions`."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiToken, Membership, MembershipRole, MeterPoint, User
from accounts.permissions import visible_api_tokens


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    """The user's own memberships, whatever their status (the "my account" page)."""
    return (
        Membership.objects.filter(user=user).select_related("community").order_by("community__name")
    )


def membership_of_user_in(*, user: User, community_slug: str) -> Membership | None:
    """The user's own membership in a community, whatever its status, with the community."""
    return (
        Membership.objects.filter(user=user, community__slug=community_slug)
        .select_related("community")
        .first()
    )


def user_trades_anywhere(*, user: User) -> bool:
    """Whether the user holds a prosumer membership in some community, whatever its status."""
    return Membership.objects.filter(user=user, role=MembershipRole.PROSUMER).exists()


def time_zone_of_user(*, user: User) -> str:
    """The zone to show a user's own times in: their communities' zone, or UTC if they differ.

    Notifications and account pages are the user's, not one community's; when all of the user's
    communities keep one zone (the usual case) that is the zone the user lives in.
    """
    zones = set(memberships_of_user(user=user).values_list("community__timezone", flat=True))
    return zones.pop() if len(zones) == 1 else "UTC"


def meter_points_of_user(*, user: User) -> QuerySet[MeterPoint]:
    """The user's own meter points, never another member's even for a manager."""
    return (
        MeterPoint.objects.filter(membership__user=user)
        .select_related("membership__community")
        .order_by("membership__community__name", "label")
    )


def api_tokens_of_user(*, user: User) -> QuerySet[ApiToken]:
    return visible_api_tokens(user).filter(user=user).order_by("-created_at")
