"""Durable idempotency records: claim a key, store its answer, replay it, expire old ones.

Used by the API's ``Idempotency-Key`` (``marketplace.api.idempotency``) and by the board's
one-time form tokens. A claim is one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on the
unique (caller, key) index, committed at once (the request runs in autocommit), so it holds
across processes and a concurrent duplicate sees the first request's row. Expired rows are
deleted by a periodic task; until then a claim takes an expired row over with a
compare-and-set on its ``expires_at``, so an old key is usable again and a crashed request's
placeholder frees its key after ``LOCK_SECONDS``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from marketplace.models import IdempotencyRecord

# How long an answer is replayed for a retried request.
TTL = timedelta(hours=24)
# A placeholder outlives any request; a worker that crashed mid-request frees the key after it.
LOCK = timedelta(seconds=60)


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: ``record_id`` is ours to run, or ``existing`` is someone's."""

    record_id: int | None
    existing: IdempotencyRecord | None = None


def key_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _insert(caller: str, digest: str, fingerprint: str, moment: datetime) -> int | None:
    table = connection.ops.quote_name(IdempotencyRecord._meta.db_table)
    # The ORM cannot say whether an ignored conflict inserted; RETURNING can, in one round trip
    # (PostgreSQL, and SQLite since 3.35).
    sql = (
        f"INSERT INTO {table} (caller, key_digest, fingerprint, created_at, expires_at) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (caller, key_digest) DO NOTHING RETURNING id"
    )
    ops = connection.ops
    params = [
        caller,
        digest,
        fingerprint,
        ops.adapt_datetimefield_value(moment),
        ops.adapt_datetimefield_value(moment + LOCK),
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            # Committed without waiting for the disk (that wait is what costs on a busy
            # machine), and still crash-safe for what matters: the WAL is written in order, so
            # the request's own commit (which waits) makes this claim durable with it; a claim
            # lost in a crash before that belonged to a request that stored nothing. One
            # implicit transaction: Django's psycopg cursors bind client-side, which allows
            # two statements in one call.
            cursor.execute("SET LOCAL synchronous_commit TO OFF; " + sql, params)
            cursor.nextset()
        else:
            cursor.execute(sql, params)
        row = cursor.fetchone()
    return int(row[0]) if row else None


def idempotency_claim(*, caller: str, digest: str, fingerprint: str) -> Claim:
    """Claim (caller, key) for a request that is about to run, or return who holds it."""
    moment = timezone.now()
    record_id = _insert(caller, digest, fingerprint, moment)
    if record_id is not None:
        return Claim(record_id)
    existing = IdempotencyRecord.objects.filter(caller=caller, key_digest=digest).first()
    if existing is None:  # expired and deleted in between: the key is free again
        record_id = _insert(caller, digest, fingerprint, moment)
        return Claim(record_id) if record_id is not None else Claim(None, _held(caller, digest))
    if existing.expires_at > moment:
        return Claim(None, existing)
    # Expired: take it over unless another request just did (compare-and-set on expires_at).
    taken = IdempotencyRecord.objects.filter(pk=existing.pk, expires_at=existing.expires_at).update(
        fingerprint=fingerprint,
        status=None,
        response=None,
        created_at=moment,
        expires_at=moment + LOCK,
    )
    if taken:
        return Claim(existing.pk)
    return Claim(None, _held(caller, digest))


def _held(caller: str, digest: str) -> IdempotencyRecord:
    # Lost a race for the key; the winner's row is in progress (or already answered).
    record = IdempotencyRecord.objects.filter(caller=caller, key_digest=digest).first()
    return record or IdempotencyRecord(
        caller=caller, key_digest=digest, fingerprint="", created_at=timezone.now()
    )


def idempotency_complete(
    *,
    record_id: int,
    status: int,
    response: Any,
    encoder: type[json.JSONEncoder] | None = None,
) -> None:
    """Store the answer the claimed request gave, to be replayed until it expires.

    ``response`` is written as ``json.dumps(response, cls=encoder)`` (the API passes its
    renderer's encoder, so what is replayed is what the client got). A synchronous commit,
    unlike the claim's: were it lost in a database crash, the claim's placeholder would expire
    and a retry would run the request a second time.
    """
    moment = timezone.now()
    text = json.dumps(response, cls=encoder)
    table = connection.ops.quote_name(IdempotencyRecord._meta.db_table)
    # Hand-written, like the claim: it runs in every idempotent request, and the ORM's
    # compilation of this update (with the JSON field's own encoding of the answer, after the
    # caller had encoded it once) cost more than the statement.
    value = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, response = {value}, expires_at = %s "  # noqa: S608
            "WHERE id = %s",
            [status, text, connection.ops.adapt_datetimefield_value(moment + TTL), record_id],
        )


def idempotency_release(*, record_id: int) -> None:
    """Free a claimed key without an answer (a server error), so a retry runs again."""
    IdempotencyRecord.objects.filter(pk=record_id).delete()


def idempotency_records_expire(*, now: datetime) -> int:
    """Delete the records whose answer or placeholder has expired; how many."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=now).delete()
    return deleted
