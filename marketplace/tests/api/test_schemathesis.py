"""Schemathesis against the live schema: no input gives a 5xx, every answer matches the schema.

A real server (pytest-django's ``live_server``) serves ``/api/schema/``; every operation in it
is called with generated valid and invalid requests, authenticated as a member with every member
scope (and the community's manager for the rules). Bounded: a fixed number of examples per
operation keeps the run to well under a minute.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.settings import api_settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tests import factories
from marketplace.api.throttling import ApiRateThrottle
from marketplace.tests.api.conftest import Api

pytestmark = [pytest.mark.django_db(transaction=True)]

EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_api_against_its_live_schema(
    api: Api, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hundreds of calls from one token in seconds: lift the fair-use limits for this run only.
    rates = dict.fromkeys(api_settings.DEFAULT_THROTTLE_RATES, "1000000/min")
    monkeypatch.setattr(ApiRateThrottle, "THROTTLE_RATES", rates)
    _, manager_token = factories.token_for(api.world.manager, ["read", "manage"])
    # Something on the board and in the lists, so responses are not all empty.
    api.bearer(api.full_token).post(
        "/api/v1/postings/",
        {
            "interval": api.interval.pk,
            "meter_point": api.world.meter_point.pk,
            "side": "sell",
            "quantity_kwh": "0.500",
            "limit_price_per_kwh": "0.1000",
        },
        format="json",
    )
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 25
    failures: list[str] = []
    for operation in operations:
        token = manager_token if "/rules/" in operation.path else api.full_token
        headers = {"Authorization": f"Bearer {token}"}
        for mode, examples in EXAMPLES.items():
            checks = CHECKS if mode is GenerationMode.POSITIVE else CHECKS[:2]
            try:
                _run(operation, mode, examples, live_server.url, headers, checks)
            except Exception as exc:  # collect all operations' failures, then report them
                failures.append(f"{operation.method.upper()} {operation.path} [{mode}]: {exc}")
    assert not failures, "\n\n".join(failures)


def _run(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    base_url: str,
    headers: dict[str, str],
    checks: list[Any],
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks)

    run()
