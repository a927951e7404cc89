"""Sign-in throttling: after repeated failures for an email or an IP, refuse for a while.

Failures are kept in the cache as timestamps, so the window slides and the lock's end is a value
compared with the clock (not a cache TTL): tests can move time, and Redis and the file cache
behave the same.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.core.cache import cache

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
LOCK_SECONDS = 15 * 60


def _keys(kind: str, value: str) -> tuple[str, str]:
    # Hashed so an email address never appears in a cache key (or a Redis MONITOR).
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"accounts:signin:fail:{kind}:{digest}", f"accounts:signin:lock:{kind}:{digest}"


def _subjects(email: str, ip_address: str | None) -> list[tuple[str, str]]:
    subjects = []
    if email:
        subjects.append(("email", email))
    if ip_address:
        subjects.append(("ip", ip_address))
    return subjects


def locked_for_seconds(*, email: str, ip_address: str | None) -> int:
    """Seconds until sign-in may be tried again for this email or IP; 0 when not locked."""
    now = time.time()
    longest = 0.0
    for kind, value in _subjects(email, ip_address):
        until = cache.get(_keys(kind, value)[1])
        if until is not None and float(until) > now:
            longest = max(longest, float(until) - now)
    return math.ceil(longest)


def failure_register(*, email: str, ip_address: str | None) -> bool:
    """Count a failed attempt; True when it locks the email or the IP."""
    now = time.time()
    locked = False
    for kind, value in _subjects(email, ip_address):
        failures_key, lock_key = _keys(kind, value)
        failures = [at for at in cache.get(failures_key, []) if at > now - WINDOW_SECONDS]
        failures.append(now)
        cache.set(failures_key, failures, timeout=WINDOW_SECONDS)
        if len(failures) >= MAX_FAILURES:
            cache.set(lock_key, now + LOCK_SECONDS, timeout=LOCK_SECONDS)
            cache.delete(failures_key)
            locked = True
    return locked


def success_register(*, email: str) -> None:
    """A correct password clears the email's failures (not the IP's: one IP, many guesses)."""
    cache.delete(_keys("email", email)[0])
