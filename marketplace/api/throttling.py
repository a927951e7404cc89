"""Fair-use throttling: per token (or signed-in user) by role, and per client IP.

Equal access: the rate depends only on the caller's role, never on who they are, so every
member of every community gets the same limit (a manager trades as a member, on a member's
limit). Rates live in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` under ``api_member``,
``api_regulator``, ``api_operator`` and ``api_ip``. The role is read from the user's own flags,
so throttling adds no database query.

Decision: fixed-window counters, both buckets counted in one pipelined round trip on Redis (a
``get_many`` and a ``set_many`` on other caches), instead of DRF's ``SimpleRateThrottle`` (a
list of every request's timestamp per bucket, read and written per throttle: at an IP's
6,000/min that is a 6,000-item list pickled on every request).
On caches other than Redis two concurrent requests may count as one, so a client can slightly
exceed its rate there: fine, throttling is for fair use, not security.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar, cast

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from accounts.authentication import client_ip
from accounts.tokens import TokenAuth

_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def throttle_role(user: Any) -> str:
    if getattr(user, "is_superuser", False):
        return "operator"
    if getattr(user, "is_regulator", False):
        return "regulator"
    return "member"


def parse_rate(rate: str) -> tuple[int, int]:
    """``"1200/min"`` -> (1200 requests, 60 seconds), as DRF reads rates."""
    count, period = rate.split("/")
    return int(count), _DURATIONS[period[0]]


class ApiRateThrottle(BaseThrottle):
    """The caller's bucket (token, or user for a session) at their role's rate, and the IP's."""

    # Tests may replace the rates; None means the settings' DEFAULT_THROTTLE_RATES.
    THROTTLE_RATES: ClassVar[dict[str, str] | None] = None

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def rates(self) -> dict[str, str]:
        return self.THROTTLE_RATES or cast(dict[str, str], api_settings.DEFAULT_THROTTLE_RATES)

    def buckets(self, request: Request) -> list[tuple[str, int, int]]:
        rates = self.rates()
        out = [("ip", client_ip(request) or "unknown", *parse_rate(rates["api_ip"]))]
        user = request.user
        if user is not None and user.is_authenticated:
            auth = request.auth
            ident = f"t{auth.token_id}" if isinstance(auth, TokenAuth) else f"u{user.pk}"
            role = throttle_role(user)
            out.append((role, ident, *parse_rate(rates[f"api_{role}"])))
        now = time.time()
        return [
            (f"throttle:{scope}:{ident}:{math.floor(now / duration)}", limit, duration)
            for scope, ident, limit, duration in out
        ]

    def allow_request(self, request: Request, view: Any) -> bool:
        buckets = self.buckets(request)
        redis_cache = caches["default"]
        if isinstance(redis_cache, RedisCache):
            return self._allow_on_redis(redis_cache, buckets)
        counts = cache.get_many([key for key, _, _ in buckets])
        now = time.time()
        for key, limit, duration in buckets:
            if counts.get(key, 0) >= limit:
                self.retry_after = duration - now % duration
                return False
        cache.set_many(
            {key: counts.get(key, 0) + 1 for key, _, _ in buckets},
            timeout=max(duration for _, _, duration in buckets),
        )
        return True

    def _allow_on_redis(self, redis_cache: RedisCache, buckets: list[tuple[str, int, int]]) -> bool:
        """Both buckets counted with INCR in one pipelined round trip (atomic per bucket).

        Django's cache API has no multi-key increment, so this takes the backend's redis-py
        client (``_cache.get_client``, Django's own helper); keys carry the cache's prefix.
        """
        keys = [redis_cache.make_and_validate_key(key) for key, _, _ in buckets]
        client = redis_cache._cache.get_client(keys[0], write=True)
        pipeline = client.pipeline(transaction=False)
        for key, (_, _, duration) in zip(keys, buckets, strict=True):
            pipeline.incr(key)
            pipeline.expire(key, duration)  # the window's index is in the key: TTL only cleans up
        counts = pipeline.execute()[0::2]
        now = time.time()
        for count, (_, limit, duration) in zip(counts, buckets, strict=True):
            if count > limit:
                self.retry_after = duration - now % duration
                return False
        return True

    def wait(self) -> float | None:
        return self.retry_after
