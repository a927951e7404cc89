"""Sign-in throttling: after repeated failures for an email or an IP, refuse for a while.

Atomic: every attempt takes a slot first with the cache's atomic ``add`` and ``incr`` (one
counter per email and per IP and 15-minute bucket, the previous bucket counted too), and only an
attempt that got a slot may have its password checked; a correct password gives the IP's slot
back and clears the email's. So however many requests race, no more than ``MAX_FAILURES``
guesses per email or IP are ever checked before the lock. The lock's end is a value compared
with the clock (not a cache TTL), so tests can move time.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.core.cache import cache

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
LOCK_SECONDS = 15 * 60


def _digest(value: str) -> str:
    # Hashed so an email address never appears in a cache key (or a Redis MONITOR).
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def _lock_key(kind: str, value: str) -> str:
    return f"accounts:signin:lock:{kind}:{_digest(value)}"


def _count_keys(kind: str, value: str, now: float) -> tuple[str, str]:
    """This bucket's counter and the previous one's."""
    bucket = int(now // WINDOW_SECONDS)
    base = f"accounts:signin:count:{kind}:{_digest(value)}"
    return f"{base}:{bucket}", f"{base}:{bucket - 1}"


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
        until = cache.get(_lock_key(kind, value))
        if until is not None and float(until) > now:
            longest = max(longest, float(until) - now)
    return math.ceil(longest)


def attempt_begin(*, email: str, ip_address: str | None) -> bool:
    """Take a slot for one password check; False when the email or IP has none left."""
    now = time.time()
    allowed = True
    for kind, value in _subjects(email, ip_address):
        current, previous = _count_keys(kind, value, now)
        cache.add(current, 0, timeout=2 * WINDOW_SECONDS)
        taken = cache.incr(current) + int(cache.get(previous) or 0)
        if taken > MAX_FAILURES:
            allowed = False
    return allowed


def failure_register(*, email: str, ip_address: str | None) -> bool:
    """The attempt's password was wrong (its slot stays taken); True when that locks."""
    now = time.time()
    locked = False
    for kind, value in _subjects(email, ip_address):
        current, previous = _count_keys(kind, value, now)
        if int(cache.get(current) or 0) + int(cache.get(previous) or 0) >= MAX_FAILURES:
            cache.set(_lock_key(kind, value), now + LOCK_SECONDS, timeout=LOCK_SECONDS)
            cache.delete_many([current, previous])  # a fresh count once the lock ends
            locked = True
    return locked


def success_register(*, email: str, ip_address: str | None) -> None:
    """A correct password clears the email's failures and gives the IP its slot back (not its
    failures: one IP, many guesses)."""
    now = time.time()
    cache.delete_many(list(_count_keys("email", email, now)))
    if ip_address:
        current, _ = _count_keys("ip", ip_address, now)
        try:
            if int(cache.get(current) or 0) > 0:
                cache.decr(current)
        except ValueError:  # expired in between: nothing to give back
            pass


# Password-reset and sign-up mails: a few per address and per IP an hour, so the form cannot flood a
# mailbox or be used to mail every address on a list.
RESET_WINDOW_SECONDS = 3600
RESET_PER_EMAIL = 3
RESET_PER_IP = 10


def _hourly_mail_allowed(kind_prefix: str, *, email: str, ip_address: str | None) -> bool:
    bucket = int(time.time() // RESET_WINDOW_SECONDS)
    allowed = True
    limits = {"email": RESET_PER_EMAIL, "ip": RESET_PER_IP}
    for kind, value in _subjects(email, ip_address):
        key = f"accounts:{kind_prefix}:{kind}:{_digest(value)}:{bucket}"
        cache.add(key, 0, timeout=RESET_WINDOW_SECONDS)
        if cache.incr(key) > limits[kind]:
            allowed = False
    return allowed


def password_reset_allowed(*, email: str, ip_address: str | None) -> bool:
    """Take one of this hour's reset mails for the email and the IP (atomic ``add`` + ``incr``);
    False when either has none left."""
    return _hourly_mail_allowed("reset", email=email, ip_address=ip_address)


def sign_up_mail_allowed(*, email: str, ip_address: str | None) -> bool:
    """The same limits for the sign-up form's mails (a confirmation link, or "you have an
    account"), counted apart from password resets."""
    return _hourly_mail_allowed("signup", email=email, ip_address=ip_address)
