"""Request middleware: the API's errors always in JSON; admin times in the community's zone."""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from accounts.models import Membership, MembershipRole
from config.errors import (
    MEANINGS,
    RETRY_AFTER_SECONDS,
    UNAVAILABLE_MESSAGE,
    ErrorCode,
    is_unavailable,
)

logger = logging.getLogger("django.request")
API_PREFIX = "/api/"
# What an error response Django or a server made (not the API's own handler) means, by status.
_STATUS_CODES = {
    400: ErrorCode.BAD_REQUEST,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    500: ErrorCode.SERVER_ERROR,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


def _api_error(code: ErrorCode, status: int, message: str = "") -> JsonResponse:
    response = JsonResponse(
        {"code": code.value, "message": message or MEANINGS[code], "fields": {}},
        status=status,
    )
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class ApiErrorsMiddleware:
    """Every error under ``/api/`` is the API's JSON error body, whatever raised it.

    DRF's handler covers the views' own errors; this covers the rest: an unknown path outside
    the router (404), a body Django refuses before the view (413), an exception no handler
    knows (500, logged as Django logs it) and the database or broker being down (503 with
    Retry-After). Pages keep Django's HTML error pages.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(API_PREFIX)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            code = _STATUS_CODES.get(
                response.status_code,
                ErrorCode.SERVER_ERROR if response.status_code >= 500 else ErrorCode.BAD_REQUEST,
            )
            return _api_error(code, response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        if is_unavailable(exception):
            logger.warning("Service unavailable: %s", request.path, exc_info=exception)
            return _api_error(ErrorCode.SERVICE_UNAVAILABLE, 503, UNAVAILABLE_MESSAGE)
        logger.error("Internal Server Error: %s", request.path, exc_info=exception)
        return _api_error(ErrorCode.SERVER_ERROR, 500)


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
