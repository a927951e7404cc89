"""An order and its Idempotency-Key record commit together; the broker failing after the commit
loses neither, and a retry replays the answer instead of placing a second order.

The broker's failure is injected where Celery hands a message to it (kombu's
``Producer.publish``), so everything above it (``send_task``, the notification's queueing after
commit) runs for real. Transactional tests: after-commit callbacks only run on a real commit.
Run on SQLite by default and on PostgreSQL with ``DATABASE_URL``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError
from kombu.exceptions import OperationalError as BrokerError
from kombu.messaging import Producer

from config.celery import app as celery_app
from marketplace.models import Bid, IdempotencyRecord, Posting
from marketplace.tests.api.conftest import Api, posting_body
from notifications import events

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every publish to the broker raises, as with Redis or the broker folder gone."""
    attempts: list[Any] = []

    def publish(self: Producer, body: Any, *args: Any, **kwargs: Any) -> None:
        attempts.append(kwargs.get("routing_key"))
        raise BrokerError("Error 111 connecting to the broker. Connection refused.")

    monkeypatch.setattr(Producer, "publish", publish)
    return attempts


def _bid(api: Api) -> tuple[Any, dict[str, Any]]:
    posting = api.bearer(api.full_token).post("/api/v1/postings/", posting_body(api), format="json")
    assert posting.status_code == 201, posting.content
    body = {
        "posting": posting.json()["id"],
        "meter_point": api.bob_meter_point.pk,
        "quantity_kwh": "0.500",
        "price_per_kwh": "0.1300",
    }
    return api.bearer(api.bob_token), body


def test_a_bid_committed_while_the_broker_is_down_is_replayed_not_repeated(
    api: Api, broker_down: list[Any]
) -> None:
    bob, body = _bid(api)
    first = bob.post("/api/v1/bids/", body, format="json", HTTP_IDEMPOTENCY_KEY="bid-1")
    assert first.status_code == 201, first.content
    # The poster's notification was really handed to the broker, which refused it.
    assert broker_down, "no message reached the broker"
    record = IdempotencyRecord.objects.get()
    assert record.status == 201
    assert record.response is not None
    assert record.response["id"] == first.json()["id"]
    again = bob.post("/api/v1/bids/", body, format="json", HTTP_IDEMPOTENCY_KEY="bid-1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Bid.objects.count() == 1


def test_an_unguarded_after_commit_failure_still_answers_the_committed_order(
    api: Api, broker_down: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A follow-up task queued without the notifications' own guard: the broker's error
    # escapes from the after-commit callback, after the bid and its record are committed.
    def send_unguarded(event: events.Event, object_id: int) -> None:
        celery_app.send_task(events.TASK_NAME, args=[str(event), object_id])

    monkeypatch.setattr(events, "_send", send_unguarded)
    bob, body = _bid(api)
    first = bob.post("/api/v1/bids/", body, format="json", HTTP_IDEMPOTENCY_KEY="bid-2")
    assert first.status_code == 201, first.content
    assert broker_down
    assert IdempotencyRecord.objects.get().status == 201  # not freed for a second bid
    again = bob.post("/api/v1/bids/", body, format="json", HTTP_IDEMPOTENCY_KEY="bid-2")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Bid.objects.count() == 1


def test_the_order_is_not_kept_when_its_record_cannot_be_stored(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two commit together: no record, no order, and the retry places exactly one."""
    from marketplace.api import idempotency

    real_complete = idempotency.idempotency_complete

    def database_gone(**kwargs: Any) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(idempotency, "idempotency_complete", database_gone)
    client = api.bearer(api.full_token)
    body = posting_body(api)
    failed = client.post("/api/v1/postings/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    assert failed.status_code == 503, failed.content
    assert not Posting.objects.exists()
    assert not IdempotencyRecord.objects.exists()  # the key is free: nothing was done
    monkeypatch.setattr(idempotency, "idempotency_complete", real_complete)
    first = client.post("/api/v1/postings/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    again = client.post("/api/v1/postings/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert Posting.objects.count() == 1


def test_a_refused_order_is_stored_as_refused(api: Api) -> None:
    client = api.bearer(api.full_token)
    body = posting_body(api, limit_price_per_kwh="9.0000")  # above the community's cap
    first = client.post("/api/v1/postings/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-2")
    again = client.post("/api/v1/postings/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-2")
    assert first.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"
    assert not Posting.objects.exists()
