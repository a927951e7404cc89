"""Sign-in throttling: after repeated failures for an email or an IP, refuse for a while.

Atomic on every deployment: every attempt takes a slot first by incrementing a counter in the
database (``RateCounter``: one ``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1
RETURNING count`` per email and per IP and 15-minute bucket, the previous bucket counted too),
and only an attempt that got a slot may have its password checked; a correct password gives the
IP's slot back and clears the email's. So however many requests race, on PostgreSQL or on the
embedded SQLite, no more than ``MAX_FAILURES`` guesses per email or IP are ever checked before
the lock. (The cache was used before; the embedded file cache's ``incr`` is a read and a write,
so racing requests could each read the same count.) The lock's end is a value compared with the
clock (not a TTL), so tests can move time; expired rows are deleted hourly.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.db import connection
from django.db.models import F

from accounts.models import RateCounter

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
LOCK_SECONDS = 15 * 60


def _table() -> str:
    return connection.ops.quote_name(RateCounter._meta.db_table)


def _increment(key: str, *, ttl: float, now: float) -> int:
    """Add one to ``key`` (starting again from 1 once it expired) and return the new count."""
    table = _table()
    sql = (
        f"INSERT INTO {table} (key, count, expires_at) VALUES (%s, 1, %s) "  # noqa: S608
        "ON CONFLICT (key) DO UPDATE SET "
        f"count = CASE WHEN {table}.expires_at <= %s THEN 1 ELSE {table}.count + 1 END, "
        f"expires_at = CASE WHEN {table}.expires_at <= %s THEN excluded.expires_at "
        f"ELSE {table}.expires_at END RETURNING count"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, now + ttl, now, now])
        row = cursor.fetchone()
    return int(row[0])


def _count(key: str, now: float) -> int:
    counter = RateCounter.objects.filter(key=key, expires_at__gt=now).first()
    return counter.count if counter else 0


def _lock(key: str, until: float) -> None:
    # One upsert: two failures locking at once must not collide on the unique key.
    sql = (
        f"INSERT INTO {_table()} (key, count, expires_at) VALUES (%s, 0, %s) "  # noqa: S608
        "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, until])


def _locked_until(key: str, now: float) -> float | None:
    return (
        RateCounter.objects.filter(key=key, expires_at__gt=now)
        .values_list("expires_at", flat=True)
        .first()
    )


def rate_counters_expire(*, now: float) -> int:
    """Delete the counters and locks that have run out; how many."""
    deleted, _ = RateCounter.objects.filter(expires_at__lte=now).delete()
    return deleted


def _digest(value: str) -> str:
    # Hashed so an email address never appears in a counter's key.
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
        until = _locked_until(_lock_key(kind, value), now)
        if until is not None:
            longest = max(longest, until - now)
    return math.ceil(longest)


def attempt_begin(*, email: str, ip_address: str | None) -> bool:
    """Take a slot for one password check; False when the email or IP has none left."""
    now = time.time()
    allowed = True
    for kind, value in _subjects(email, ip_address):
        current, previous = _count_keys(kind, value, now)
        taken = _increment(current, ttl=2 * WINDOW_SECONDS, now=now) + _count(previous, now)
        if taken > MAX_FAILURES:
            allowed = False
    # A lock set while this slot was taken: its failure cleared the counters after setting the
    # lock, so a slot taken from the fresh count must still see the lock and not be used.
    return allowed and not locked_for_seconds(email=email, ip_address=ip_address)


def failure_register(*, email: str, ip_address: str | None) -> bool:
    """The attempt's password was wrong (its slot stays taken); True when that locks."""
    now = time.time()
    locked = False
    for kind, value in _subjects(email, ip_address):
        current, previous = _count_keys(kind, value, now)
        if _count(current, now) + _count(previous, now) >= MAX_FAILURES:
            _lock(_lock_key(kind, value), now + LOCK_SECONDS)
            # A fresh count once the lock ends (the lock first: see ``attempt_begin``).
            RateCounter.objects.filter(key__in=[current, previous]).delete()
            locked = True
    return locked


def success_register(*, email: str, ip_address: str | None) -> None:
    """A correct password clears the email's failures and gives the IP its slot back (not its
    failures: one IP, many guesses)."""
    now = time.time()
    RateCounter.objects.filter(key__in=_count_keys("email", email, now)).delete()
    if ip_address:
        current, _ = _count_keys("ip", ip_address, now)
        # One UPDATE: a slot is given back only if one is still taken and not expired.
        RateCounter.objects.filter(key=current, count__gt=0, expires_at__gt=now).update(
            count=F("count") - 1
        )


# Password-reset and sign-up mails: a few per address and per IP an hour, so the form cannot flood a
# mailbox or be used to mail every address on a list.
RESET_WINDOW_SECONDS = 3600
RESET_PER_EMAIL = 3
RESET_PER_IP = 10


def _hourly_mail_allowed(kind_prefix: str, *, email: str, ip_address: str | None) -> bool:
    """Take one of this hour's mails for the email and the IP (one atomic increment each);
    False when either has none left."""
    now = time.time()
    bucket = int(now // RESET_WINDOW_SECONDS)
    allowed = True
    limits = {"email": RESET_PER_EMAIL, "ip": RESET_PER_IP}
    for kind, value in _subjects(email, ip_address):
        key = f"accounts:{kind_prefix}:{kind}:{_digest(value)}:{bucket}"
        if _increment(key, ttl=RESET_WINDOW_SECONDS, now=now) > limits[kind]:
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
