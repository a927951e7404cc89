"""One error format for every 4xx, no 5xx from any input, Idempotency-Key, throttling."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts.models import ApiToken
from accounts.tokens import token_digest
from marketplace.models import IdempotencyRecord, Posting
from marketplace.services.idempotency import LOCK, TTL, idempotency_claim, key_digest
from marketplace.tasks import idempotency_expire_task
from marketplace.tests.api.conftest import Api, posting_body

pytestmark = pytest.mark.django_db


def assert_error(response: Any, status: int, code: str, fields: set[str] | None = None) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "fields"}, body
    assert body["code"] == code, body
    assert body["message"]
    if fields is not None:
        assert set(body["fields"]) == fields, body


BAD_POSTINGS = [
    ("wrong type", {"quantity_kwh": ["1"]}, "not_a_number", {"quantity_kwh"}),
    ("huge quantity", {"quantity_kwh": "1e30"}, "max_digits", {"quantity_kwh"}),
    ("too many places", {"limit_price_per_kwh": "0.123456"}, "too_precise", None),
    ("NaN", {"quantity_kwh": "NaN"}, "not_a_number", {"quantity_kwh"}),
    ("Infinity", {"limit_price_per_kwh": "Infinity"}, "not_a_number", {"limit_price_per_kwh"}),
    ("huge id", {"interval": 10**40}, "max_value", {"interval"}),
    ("unknown interval", {"interval": 2**62}, "not_found", {"interval"}),
    ("unknown meter point", {"meter_point": 2**62}, "not_found", {"meter_point"}),
    ("bad side", {"side": "hold"}, "invalid_choice", {"side"}),
    ("negative", {"quantity_kwh": "-1"}, "min_value", {"quantity_kwh"}),
    ("over the cap", {"limit_price_per_kwh": "9.0000"}, "out_of_range", {"limit_price_per_kwh"}),
    ("over capacity", {"quantity_kwh": "50"}, "over_capacity", {"quantity_kwh"}),
    ("missing field", {"side": None}, "null", {"side"}),
]


@pytest.mark.parametrize(
    ("name", "change", "code", "fields"), BAD_POSTINGS, ids=[b[0] for b in BAD_POSTINGS]
)
def test_bad_postings_are_4xx_in_one_format(
    api: Api, name: str, change: dict[str, Any], code: str, fields: set[str] | None
) -> None:
    response = api.bearer(api.full_token).post(
        "/api/v1/postings/", posting_body(api, **change), format="json"
    )
    status = 404 if code == "not_found" else 400
    assert_error(response, status, code, fields)
    assert not Posting.objects.exists()


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2", b"\xff\xfe", b'{"quantity_kwh": NaN}', b"null", b"[]", b'"text"'],
)
def test_malformed_bodies_are_400(api: Api, body: bytes) -> None:
    response = api.bearer(api.full_token).post(
        "/api/v1/postings/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"code", "message", "fields"}


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # beyond what the JSON decoder itself may recurse
        '{"a": ' * 5_000 + "1" + "}" * 5_000,
        '{"quantity_kwh": ' + "[" * 20 + "]" * 20 + "}",  # past the API's own limit
    ],
    ids=["decoder-deep", "objects-deep", "field-deep"],
)
def test_deeply_nested_json_is_400_and_stores_nothing(api: Api, body: str) -> None:
    # Each path with a token that may use it: readings come from the community's metering source.
    for path, token in (
        ("/api/v1/postings/", api.full_token),
        ("/api/v1/meter-readings/", api.meter_data_token),
    ):
        response = api.bearer(token).post(path, body, content_type="application/json")
        assert_error(response, 400, "parse_error")
        assert "nests deeper than 16 levels" in response.json()["message"]
    assert not Posting.objects.exists()


def test_other_errors_share_the_format(api: Api) -> None:
    client = api.bearer(api.full_token)
    assert_error(api.client("anonymous").get("/api/v1/postings/"), 401, "not_authenticated")
    assert_error(api.bearer("pgt_nope").get("/api/v1/postings/"), 401, "authentication_failed")
    assert_error(api.client("token_trade").get("/api/v1/postings/"), 403, "permission_denied")
    assert_error(client.get("/api/v1/postings/999999999/"), 404, "not_found")
    assert_error(client.get("/api/v1/no-such-thing/"), 404, "not_found")
    assert_error(client.get("/api/v1/intervals/?start_after=yesterday"), 400, "invalid")
    # Year 1 is a valid date-time: shifted to UTC it would leave the calendar, so it is clamped.
    assert (
        client.get("/api/v1/intervals/?start_after=0001-01-01T00:00:00%2B14:00").json()["count"]
        == client.get("/api/v1/intervals/").json()["count"]
    )
    assert_error(client.get("/api/v1/intervals/?start_after=2026-01-01T00:00:00"), 400, "invalid")
    assert_error(client.get("/api/v1/intervals/?start_before="), 400, "blank")
    assert_error(client.get("/api/v1/statements/sonnenfeld/?member=a%00b"), 400,
                 "forbidden_character")  # fmt: skip
    assert_error(client.get("/api/v1/intervals/?community=a%00b"), 400, "forbidden_character")
    odd_offset = client.get("/api/v1/intervals/?start_after=2026-11-07T01:27:15%2B20:39")
    assert odd_offset.status_code == 200  # a legal ISO offset PostgreSQL would refuse
    assert_error(client.get("/api/v1/postings/?interval=1.5"), 400, "invalid")
    assert_error(client.get("/api/v1/postings/?interval=99999999999999999999999"), 400, "max_value")
    assert_error(client.get("/api/v1/board/"), 400, "required", {"community"})
    assert_error(client.get("/api/v1/statements/sonnenfeld/99999/13/"), 400, "no_such_month")
    assert_error(client.get("/api/v1/statements/sonnenfeld/9999/12/"), 400, "no_such_month",
                 {"year"})  # fmt: skip
    form = client.post("/api/v1/postings/", {"side": "sell"})  # multipart, not JSON
    assert_error(form, 415, "unsupported_media_type")
    # Paging as the schema states it: no silent clamping or fallback to the default.
    huge_offset = client.get("/api/v1/intervals/?offset=99999999999999999999999999&limit=5")
    assert_error(huge_offset, 400, "max_value", {"offset"})
    assert_error(client.get("/api/v1/intervals/?limit=501"), 400, "max_value", {"limit"})
    assert_error(client.get("/api/v1/intervals/?limit=0"), 400, "min_value", {"limit"})
    assert_error(client.get("/api/v1/intervals/?limit=ten"), 400, "not_an_integer", {"limit"})
    assert client.get("/api/v1/intervals/?offset=1000000000&limit=500").status_code == 200


def test_bulk_readings_malformed_rows_are_a_400_with_row_fields(api: Api) -> None:
    body = {
        "readings": [
            {"meter_point": api.world.meter_point.pk, "interval": 1, "imported_kwh": "0.1",
             "exported_kwh": "0"},
            {"meter_point": "x", "interval": 1, "imported_kwh": "NaN", "exported_kwh": "0"},
            {"meter_point": 1, "interval_start": "0001-01-01T00:00:00+14:00",
             "imported_kwh": "Infinity", "exported_kwh": "1e400"},
        ]
    }  # fmt: skip
    response = api.bearer(api.meter_data_token).post("/api/v1/meter-readings/", body, format="json")
    assert_error(
        response,
        400,
        "invalid",
        {
            "readings.1.meter_point",
            "readings.1.imported_kwh",
            "readings.2.interval_start",
            "readings.2.imported_kwh",
            "readings.2.exported_kwh",
        },
    )


def test_every_api_error_is_json_even_outside_the_views(
    api: Api, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError
    from kombu.exceptions import OperationalError as BrokerDown

    from marketplace.api.views import postings

    client = api.bearer(api.full_token)
    assert_error(client.get("/api/nothing-here/"), 404, "not_found")
    assert_error(client.delete("/api/v1/postings/"), 405, "method_not_allowed")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    big = client.post("/api/v1/postings/", "{" + " " * 20_000 + "}",
                      content_type="application/json")  # fmt: skip
    assert_error(big, 413, "payload_too_large")
    for raised, status, code in (
        (RuntimeError("a bug"), 500, "server_error"),
        (OperationalError("connection refused"), 503, "service_unavailable"),
        (BrokerDown("broker unreachable"), 503, "service_unavailable"),
    ):
        monkeypatch.setattr(postings, "posting_create_by_owner", mock_raising(raised))
        response = client.post("/api/v1/postings/", posting_body(api), format="json",
                               HTTP_IDEMPOTENCY_KEY=f"outage-{status}")  # fmt: skip
        assert_error(response, status, code)
        if status == 503:
            assert response["Retry-After"] == "30"
    assert not Posting.objects.exists()
    monkeypatch.undo()
    # The outage did not keep the key: the retry runs and posts once.
    retried = client.post("/api/v1/postings/", posting_body(api), format="json",
                          HTTP_IDEMPOTENCY_KEY="outage-503")  # fmt: skip
    assert retried.status_code == 201
    assert Posting.objects.count() == 1


def mock_raising(exc: Exception) -> Any:
    def raising(**kwargs: Any) -> Any:
        raise exc

    return raising


# --- Idempotency-Key --------------------------------------------------------------------------
def test_same_key_same_body_replays_and_creates_nothing(api: Api) -> None:
    client = api.bearer(api.full_token)
    key = str(uuid.uuid4())
    first = client.post(
        "/api/v1/postings/", posting_body(api), format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    second = client.post(
        "/api/v1/postings/", posting_body(api), format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert Posting.objects.count() == 1
    different = client.post(
        "/api/v1/postings/",
        posting_body(api, quantity_kwh="0.500"),
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert_error(different, 409, "idempotency_key_reused", {"Idempotency-Key"})
    # Another caller's key of the same name is theirs alone.
    bob = api.bearer(api.bob_token).post(
        "/api/v1/postings/",
        posting_body(api, mp=api.bob_meter_point),
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert bob.status_code == 201
    assert Posting.objects.count() == 2


def test_refusals_are_replayed_too_and_in_flight_is_409(api: Api) -> None:
    client = api.bearer(api.full_token)
    body = posting_body(api, quantity_kwh="99")
    first = client.post("/api/v1/postings/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/v1/postings/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 400
    assert first.json() == again.json()

    # Simulate a first request still running under this caller's key.
    token = ApiToken.objects.get(digest=token_digest(api.full_token))
    running = idempotency_claim(caller=f"t{token.pk}", digest=key_digest("k-2"), fingerprint="x")
    assert running.record_id is not None
    busy = client.post("/api/v1/postings/", posting_body(api), format="json",
                       HTTP_IDEMPOTENCY_KEY="k-2")  # fmt: skip
    assert_error(busy, 409, "idempotency_in_progress")
    assert not Posting.objects.exists()
    bad_key = client.post("/api/v1/postings/", posting_body(api), format="json",
                          HTTP_IDEMPOTENCY_KEY="x" * 300)  # fmt: skip
    assert_error(bad_key, 400, "invalid_idempotency_key", {"Idempotency-Key"})


def test_idempotency_survives_a_cache_flush(api: Api) -> None:
    client = api.bearer(api.full_token)
    first = client.post("/api/v1/postings/", posting_body(api), format="json",
                        HTTP_IDEMPOTENCY_KEY="after-flush")  # fmt: skip
    assert first.status_code == 201
    cache.clear()  # what a Redis restart or FLUSHDB does
    retried = client.post("/api/v1/postings/", posting_body(api), format="json",
                          HTTP_IDEMPOTENCY_KEY="after-flush")  # fmt: skip
    assert retried.status_code == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json() == first.json()
    assert Posting.objects.count() == 1


def test_a_crashed_request_frees_its_key_and_old_records_expire(api: Api) -> None:
    client = api.bearer(api.full_token)
    token = ApiToken.objects.get(digest=token_digest(api.full_token))
    crashed = idempotency_claim(caller=f"t{token.pk}", digest=key_digest("k-3"), fingerprint="x")
    assert crashed.record_id is not None
    # The placeholder of a request whose worker died: past its lock, the key is usable again.
    IdempotencyRecord.objects.filter(pk=crashed.record_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.post("/api/v1/postings/", posting_body(api), format="json",
                           HTTP_IDEMPOTENCY_KEY="k-3")  # fmt: skip
    assert response.status_code == 201
    assert Posting.objects.count() == 1
    record = IdempotencyRecord.objects.get(pk=crashed.record_id)
    assert record.status == 201
    assert record.expires_at > timezone.now() + TTL - LOCK
    # The periodic task deletes what has expired and keeps what can still be replayed.
    stale = idempotency_claim(caller="u0", digest=key_digest("old"), fingerprint="x")
    assert stale.record_id is not None
    IdempotencyRecord.objects.filter(pk=stale.record_id).update(
        expires_at=timezone.now() - timedelta(hours=1)
    )
    assert idempotency_expire_task() == 1
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [record.pk]


# --- Throttling -------------------------------------------------------------------------------
def test_throttling_is_per_token_by_role(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from rest_framework.settings import api_settings

    from marketplace.api.throttling import ApiRateThrottle

    rates = dict(api_settings.DEFAULT_THROTTLE_RATES, api_member="3/min")
    monkeypatch.setattr(ApiRateThrottle, "THROTTLE_RATES", rates)
    alice = api.bearer(api.full_token)
    statuses = [alice.get("/api/v1/me/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = alice.get("/api/v1/me/")
    assert_error(limited, 429, "throttled")
    assert "Retry-After" in limited.headers
    # Another member's token has its own bucket, at the same rate as every member.
    assert api.bearer(api.bob_token).get("/api/v1/me/").status_code == 200
    # A regulator's role has its own rate, untouched here.
    regulator = api.client("regulator")
    assert [regulator.get("/api/v1/me/").status_code for _ in range(4)] == [200] * 4
