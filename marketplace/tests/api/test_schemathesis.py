"""Schemathesis against the live schema: no input gives a 5xx, every answer matches the schema.

A real server (pytest-django's ``live_server``) serves ``/api/schema/``; every operation in it
is called with generated valid and invalid requests, authenticated as a member with every member
scope (and the community's manager for the rules). Bounded: a fixed number of examples per
operation keeps the run to well under a minute.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
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
from grid.models import GridCheckResult
from marketplace.api.throttling import ApiRateThrottle
from marketplace.ledger.models import MeterReading
from marketplace.models import Interval
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
    objects = _real_objects(api)
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 25
    failures: list[str] = []
    for operation in operations:
        managing = (
            "/rules/",
            "/approve/",
            "/meter-points/{id}/reject/",
            "/managed/",
            "/meter-readings/{id}/accept/",
        )
        token = manager_token if any(p in operation.path for p in managing) else api.full_token
        headers = {"Authorization": f"Bearer {token}"}
        names = {p.name for p in operation.path_parameters}
        # Random ids mostly find nothing (404); real ones make the 200 bodies checked too.
        passes: list[tuple[GenerationMode, int, dict[str, Any] | None]] = [
            (mode, examples, None) for mode, examples in EXAMPLES.items()
        ]
        if names:
            real = {name: objects[(operation.path, name)] for name in names}
            passes.append((GenerationMode.POSITIVE, 5, real))
        for mode, examples, path_parameters in passes:
            checks = CHECKS if mode is GenerationMode.POSITIVE else CHECKS[:2]
            try:
                seen = _run(
                    operation, mode, examples, live_server.url, headers, checks, path_parameters
                )
                if path_parameters and operation.method.upper() == "GET":
                    assert 200 in seen, f"never found with real ids: {sorted(seen)}"
            except Exception as exc:  # collect all operations' failures, then report them
                label = f"{mode}{' real ids' if path_parameters else ''}"
                failures.append(f"{operation.method.upper()} {operation.path} [{label}]: {exc}")
    assert not failures, "\n\n".join(failures)


def _run(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    base_url: str,
    headers: dict[str, str],
    checks: list[Any],
    path_parameters: dict[str, Any] | None = None,
) -> set[int]:
    seen: set[int] = set()

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=base_url, headers=headers, checks=checks)
        seen.add(response.status_code)

    run()
    return seen


def _real_objects(api: Api) -> dict[tuple[str, str], Any]:
    """One of everything, so the detail endpoints answer 200 and their bodies are checked."""
    alice, bob = api.bearer(api.full_token), api.bearer(api.bob_token)
    body = {
        "interval": api.interval.pk,
        "meter_point": api.world.meter_point.pk,
        "side": "sell",
        "quantity_kwh": "0.500",
        "limit_price_per_kwh": "0.1000",
    }
    traded = alice.post("/api/v1/postings/", body, format="json").json()
    open_posting = alice.post("/api/v1/postings/", body, format="json").json()
    bid = {
        "meter_point": api.bob_meter_point.pk,
        "quantity_kwh": "0.100",
        "price_per_kwh": "0.1200",
    }
    first = bob.post("/api/v1/bids/", {"posting": traded["id"], **bid}, format="json").json()
    pending = bob.post("/api/v1/bids/", {"posting": open_posting["id"], **bid}, format="json")
    trade = alice.post(f"/api/v1/bids/{first['id']}/accept/", {}, format="json").json()
    bobs_body = {**body, "meter_point": api.bob_meter_point.pk, "side": "buy"}
    bobs = bob.post("/api/v1/postings/", bobs_body, format="json").json()
    mine = alice.post(
        "/api/v1/bids/",
        {"posting": bobs["id"], "meter_point": api.world.meter_point.pk,
         "quantity_kwh": "0.100", "price_per_kwh": "0.0900"},
        format="json",
    ).json()  # fmt: skip
    GridCheckResult.objects.create(
        interval=api.interval, feasible=False, power_flows=3, duration_s=0.2, min_vm_pu=0.93,
        max_vm_pu=1.12, losses_kw=0.4, trades_checked=1,
        violations=[{"kind": "voltage", "element": "bus 3", "value": 1.12, "limit": 1.1,
                     "caused_by_trades": True},
                    {"kind": "unmapped_meter_point", "element": "meter point 9", "value": None,
                     "limit": None, "caused_by_trades": False}],
        curtailments=[{"trade": trade["id"], "curtailed_kwh": "0.050", "reason": "voltage"}],
    )  # fmt: skip
    pending_meter_point = factories.meter_point_for(api.world.membership, approve=False)
    past = Interval.objects.create(
        community=api.world.community, rules=api.interval.rules,
        start=api.interval.start - timedelta(days=1), end=api.interval.end - timedelta(days=1),
        gate_closure_at=api.interval.gate_closure_at - timedelta(days=1), state="confirmed",
    )  # fmt: skip
    flagged = MeterReading.objects.create(
        meter_point=api.world.meter_point, interval=past, imported_kwh=Decimal("0.100"),
        exported_kwh=Decimal("0"), source="api", status="flagged", flag_reason="a jump",
    )  # fmt: skip
    slug, interval = "sonnenfeld", api.interval.pk
    out: dict[tuple[str, str], Any] = {}
    for path, value in (
        ("/communities/{slug}/", slug), ("/communities/{slug}/rules/", slug),
        ("/intervals/{id}/", interval), ("/intervals/{id}/depth/", interval),
        ("/intervals/{id}/grid-check/", interval),
        ("/postings/{id}/", open_posting["id"]), ("/postings/{id}/bids/", open_posting["id"]),
        ("/postings/{id}/cancel/", open_posting["id"]),
        ("/bids/{id}/", mine["id"]), ("/bids/{id}/accept/", pending.json()["id"]),
        ("/bids/{id}/reject/", pending.json()["id"]),
        ("/bids/{id}/withdraw/", mine["id"]),
        ("/trades/{id}/", trade["id"]), ("/meter-points/{id}/", api.world.meter_point.pk),
        ("/statements/{slug}/", slug),
        ("/meter-points/{id}/approve/", pending_meter_point.pk),
        ("/meter-points/{id}/reject/", pending_meter_point.pk),
        ("/meter-readings/{id}/accept/", flagged.pk),
    ):  # fmt: skip
        name = "slug" if "{slug}" in path else "id"
        out[(f"/api/v1{path}", name)] = value
    month = "/api/v1/statements/{slug}/{year}/{month}/"
    out.update({(month, "slug"): slug, (month, "year"): 2026, (month, "month"): 3})
    return out
