"""Reads for the account pages, filtered by the caller through `accounts.permissions`."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import ApiToken, Membership, MeterPoint, User
from accounts.permissions import visible_api_tokens


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    """The user's own memberships, whatever their status (the "my account" page)."""
    return (
        Membership.objects.filter(user=user).select_related("community").order_by("community__name")
    )


def meter_points_of_user(*, user: User) -> QuerySet[MeterPoint]:
    """The user's own meter points, never another member's even for a manager."""
    return (
        MeterPoint.objects.filter(membership__user=user)
        .select_related("membership__community")
        .order_by("membership__community__name", "label")
    )


def api_tokens_of_user(*, user: User) -> QuerySet[ApiToken]:
    return visible_api_tokens(user).filter(user=user).order_by("-created_at")
