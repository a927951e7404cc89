"""The schema states what the server enforces, and the server enforces what the schema states."""

from __future__ import annotations

import re
from typing import Any

import pytest

from marketplace.api.schema import IDEMPOTENCY_KEY_PATTERN
from marketplace.tests.api.conftest import Api, posting_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api: Api) -> dict[str, Any]:
    response = api.client("prosumer").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return dict(response.json())


def _parameter(schema: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    parameters = schema["paths"][path][method]["parameters"]
    return next(p["schema"] for p in parameters if p["name"] == name)


def test_ids_keys_and_lists_are_bounded_in_the_schema(schema: dict[str, Any]) -> None:
    path_id = _parameter(schema, "/api/v1/postings/{id}/", "get", "id")
    assert (path_id["minimum"], path_id["maximum"]) == (1, 2**63 - 1)
    query_id = _parameter(schema, "/api/v1/postings/", "get", "interval")
    assert (query_id["type"], query_id["minimum"]) == ("integer", 1)
    key = _parameter(schema, "/api/v1/postings/", "post", "Idempotency-Key")
    assert (key["pattern"], key["maxLength"]) == (IDEMPOTENCY_KEY_PATTERN, 255)
    limit = _parameter(schema, "/api/v1/postings/", "get", "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, 500)
    readings = schema["components"]["schemas"]["ReadingsUploadRequest"]["properties"]["readings"]
    assert readings["minItems"] == 1
    month = _parameter(schema, "/api/v1/statements/{slug}/{year}/{month}/", "get", "month")
    assert (month["minimum"], month["maximum"]) == (1, 12)
    rules = schema["components"]["schemas"]["PatchedMarketRulesUpdateRequest"]["properties"]
    minutes = rules["interval_minutes"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][minutes]["enum"] == [15, 30, 60]
    assert re.fullmatch(rules["pricing_k"]["pattern"][1:-1], "1.000")
    assert not re.fullmatch(rules["pricing_k"]["pattern"][1:-1], "1.001")
    quantity = schema["components"]["schemas"]["PostingCreateRequest"]["properties"]
    assert not re.fullmatch(quantity["quantity_kwh"]["pattern"][1:-1], "0.000")
    # Each creation links to what a client does next with it (the stateful tests follow these).
    created = schema["paths"]["/api/v1/postings/"]["post"]["responses"]["201"]["links"]
    assert set(created) >= {"postings_retrieve", "postings_modify", "postings_cancel"}


def test_the_server_applies_the_same_bounds(api: Api) -> None:
    client = api.bearer(api.full_token)
    assert client.get(f"/api/v1/postings/{2**63}/").status_code == 404  # never a 500
    assert client.get(f"/api/v1/postings/?interval={2**63}").status_code == 400
    for key in ("has space", "é-accent", "x" * 256, "tab\there"):
        refused = client.post(
            "/api/v1/postings/", posting_body(api), format="json", HTTP_IDEMPOTENCY_KEY=key
        )
        assert refused.status_code == 400, key
        assert refused.json()["code"] == "invalid_idempotency_key"
    uuid = "0b6f4c9e-1d2a-4c47-9a55-5f1e2d3c4b5a"
    accepted = client.post(
        "/api/v1/postings/", posting_body(api), format="json", HTTP_IDEMPOTENCY_KEY=uuid
    )
    assert accepted.status_code == 201, accepted.content
    assert client.get("/api/v1/statements/sonnenfeld/2026/13/").status_code == 400
    backwards = client.get("/api/v1/statistics/?first_day=2026-03-02&last_day=2026-03-01")
    assert backwards.status_code == 400
    assert backwards.json()["code"] == "bad_range"
