"""Times in the admin pages in the manager's community zone, not the server's UTC."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.models import Membership, MembershipRole


def community_zone_name(user_id: int) -> str | None:
    """The zone of the community the user manages (or else belongs to) first, if any."""
    names = Membership.objects.filter(user_id=user_id).order_by("requested_at", "pk")
    rows = names.values_list("community__timezone", "role")
    ordered = sorted(rows, key=lambda row: row[1] != MembershipRole.MANAGER)
    return ordered[0][0] if ordered else None


class AdminCommunityTimezoneMiddleware:
    """Activates the community's zone for admin requests; Django then shows and parses every
    date in the admin in that zone (the admin's header names it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/admin/") or not request.user.is_authenticated:
            return self.get_response(request)
        name = community_zone_name(request.user.pk)
        try:
            zone = zoneinfo.ZoneInfo(name) if name else None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            return self.get_response(request)
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
