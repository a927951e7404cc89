"""Fair-use throttling: per token (or signed-in user) by role, and per client IP.

Equal access: the rate depends only on the caller's role, never on who they are, so every
member of every community gets the same limit (a manager trades as a member, on a member's
limit). Rates live in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` under ``api_member``,
``api_regulator``, ``api_operator`` and ``api_ip``. The role is read from the user's own flags,
so throttling adds no database query. Throttling is for fair use, not security.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from accounts.authentication import client_ip
from accounts.tokens import TokenAuth


def throttle_role(user: Any) -> str:
    if getattr(user, "is_superuser", False):
        return "operator"
    if getattr(user, "is_regulator", False):
        return "regulator"
    return "member"


class RoleRateThrottle(SimpleRateThrottle):
    """One bucket per token (or per user for a session), at the rate of the caller's role."""

    scope = "api_member"

    def __init__(self) -> None:
        # The rate is chosen per request in allow_request, once the user is known.
        self.rate: str | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return True  # anonymous calls are refused by authentication; the IP bucket counts them
        self.scope = f"api_{throttle_role(request.user)}"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str:
        auth = request.auth
        ident = f"t{auth.token_id}" if isinstance(auth, TokenAuth) else f"u{request.user.pk}"
        return f"throttle_{self.scope}_{ident}"


class IpRateThrottle(SimpleRateThrottle):
    """One bucket per client address, whatever the credentials (many tokens, one machine)."""

    scope = "api_ip"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return f"throttle_{self.scope}_{client_ip(request) or 'unknown'}"
