"""Durable idempotency records: one claim wins a key, even under concurrent requests."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from conftest import requires_postgres
from marketplace.models import IdempotencyRecord
from marketplace.services.idempotency import (
    idempotency_claim,
    idempotency_complete,
    idempotency_release,
    key_digest,
)


@pytest.mark.django_db
def test_claim_complete_replay_release() -> None:
    digest = key_digest("key")
    first = idempotency_claim(caller="u1", digest=digest, fingerprint="f")
    assert first.record_id is not None
    again = idempotency_claim(caller="u1", digest=digest, fingerprint="f")
    assert again.record_id is None
    assert again.existing is not None
    assert again.existing.status is None  # still running
    idempotency_complete(record_id=first.record_id, status=201, response={"id": 7})
    done = idempotency_claim(caller="u1", digest=digest, fingerprint="f")
    assert done.existing is not None
    assert (done.existing.status, done.existing.response) == (201, {"id": 7})
    # Another caller's key of the same text is another record.
    assert idempotency_claim(caller="u2", digest=digest, fingerprint="f").record_id is not None
    idempotency_release(record_id=first.record_id)
    assert idempotency_claim(caller="u1", digest=digest, fingerprint="f").record_id is not None


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_one_key_have_one_winner() -> None:
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    won: list[int] = []
    lock = threading.Lock()

    def claim() -> None:
        try:
            barrier.wait()
            outcome = idempotency_claim(caller="u1", digest=key_digest("k"), fingerprint="f")
        finally:
            connection.close()
        if outcome.record_id is not None:
            with lock:
                won.append(outcome.record_id)

    threads = [threading.Thread(target=claim) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert IdempotencyRecord.objects.count() == 1
