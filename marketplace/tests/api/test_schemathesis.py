"""Schemathesis against the live schema: every phase, every check, the stateful one included.

A real server (pytest-django's ``live_server``) serves ``/api/schema/``, and schemathesis's own
engine (its command line, as CI would run it) tests every operation in it: the examples, the
coverage phase (each boundary the schema states, and just past it), fuzzing with valid and
invalid data, and the stateful phase, which follows the schema's OpenAPI links (a posting
created, then read, modified, cancelled; a bid placed, then read, modified, withdrawn; a meter
point registered, then approved). All checks are on: no 5xx, status codes, content types,
headers and bodies as documented, invalid data refused, valid data accepted, required headers,
unsupported methods and their Allow header, use after free, resources available after
creation, authentication not ignored, objects of one member not visible to another.

One refinement, not an exclusion: a 400 for schema-valid data is accepted only when it is a
market rule's refusal that no schema can state (stored data or a relation between fields),
which ``schemathesis_hooks.valid_data_passes_form_validation`` checks by its code; a form
error (type, pattern, bound, length, choice) for valid data still fails the run.

Bounded and reproducible: a fixed number of examples per operation and deterministic
generation, so CI sees the same requests every run, in about two minutes on two cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rest_framework.settings import api_settings

from accounts.tests import factories
from grid.models import GridCheckResult
from marketplace.api.throttling import ApiRateThrottle
from marketplace.ledger.models import MeterReading
from marketplace.models import Interval
from marketplace.tests.api.conftest import Api

pytestmark = [pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
MAX_EXAMPLES = 4
# Operations only a community's manager may call, and the one only a metering source may.
MANAGING = (
    "market_rules_retrieve", "market_rules_update", "meter_points_approve",
    "meter_points_reject", "meter_points_managed_list", "meter_readings_accept",
)  # fmt: skip
METERING = ("meter_readings_upload",)


def test_api_against_its_live_schema(
    api: Api, live_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Thousands of calls from one token in a minute: lift the fair-use limits for this run only.
    rates = dict.fromkeys(api_settings.DEFAULT_THROTTLE_RATES, "1000000/min")
    monkeypatch.setattr(ApiRateThrottle, "THROTTLE_RATES", rates)
    _, manager_token = factories.token_for(api.world.manager, ["read", "manage"])
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        _config(
            member=api.full_token, manager=manager_token, metering=api.meter_data_token,
            objects=_real_objects(api),
        )
    )  # fmt: skip
    run = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
            # 127.0.0.1, not localhost: no resolver round trip and IPv6 attempt per request.
            f"{live_server.url.replace('localhost', '127.0.0.1')}/api/schema/",
            "--checks", "all", "--no-color",
            "--phases", "examples,coverage,fuzzing,stateful", "--workers", "1",
        ],
        # Its cache and reports go to the test's own folder; the hooks import from the project.
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-30000:]
    # Every operation ran, and the stateful phase did (it needs the schema's links).
    assert "Tested: 40" in report, report[-3000:]
    links = re.search(r"API Links:\s+(\d+) covered", report)
    assert links, report[-3000:]
    assert int(links.group(1)) >= 3, report[-3000:]  # creations followed to their objects


def _toml(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers and inline arrays are TOML too


def _config(*, member: str, manager: str, metering: str, objects: dict[str, dict[str, Any]]) -> str:
    lines = [
        "hooks = " + _toml("marketplace.tests.api.schemathesis_hooks"),
        "seed = 1",
        'suppress-health-check = ["all"]',
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        "deterministic = true",
        "[checks.positive_data_acceptance]",
        # 400 joins the accepted answers only with the check above standing in for it.
        'expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]',
        # The stateful phase is cheap (a few requests per scenario) and the one that follows
        # the links: more scenarios than examples per operation.
        "[phases.stateful]",
        "max-steps = 6",
        "[phases.stateful.generation]",
        "max-examples = 25",
        "deterministic = true",
        "[headers]",
        "Authorization = " + _toml(f"Bearer {member}"),
        "[[operations]]",
        "include-operation-id = " + _toml(list(MANAGING)),
        "headers = { Authorization = " + _toml(f"Bearer {manager}") + " }",
        "[[operations]]",
        "include-operation-id = " + _toml(list(METERING)),
        "headers = { Authorization = " + _toml(f"Bearer {metering}") + " }",
    ]
    # Objects no operation in the run creates (a trade, a flagged reading, a pending bid on
    # someone else's posting, a month with a statement): their real ids, so those operations
    # answer 200 and their bodies are checked as well.
    for operation_id, parameters in objects.items():
        if operation_id.startswith("body:"):
            continue
        values = ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in parameters.items())
        lines += ["[[operations]]", f"include-operation-id = {_toml(operation_id)}",
                  f"parameters = {{ {values} }}"]  # fmt: skip
    # Creating operations draw their ids from real objects most of the time (and generate them
    # otherwise), so postings, bids and meter points are created and the stateful phase can
    # follow the links from them; the coverage phase still tries every boundary.
    dictionaries = objects["body:dictionaries"]
    for operation_id, fields in objects["body:bindings"].items():
        bound = ", ".join(
            f'"body.{field}" = {{ dictionary = {_toml(name)}, probability = 0.8 }}'
            for field, name in fields.items()
        )
        lines += ["[[operations]]", f"include-operation-id = {_toml(operation_id)}",
                  f"parameters = {{ {bound} }}"]  # fmt: skip
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {_toml(values)}"]
    return "\n".join(lines) + "\n"


def _real_objects(api: Api) -> dict[str, dict[str, Any]]:
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
    alice.post(  # a bid of the member on another's posting: bids_retrieve finds one
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
    slug = "sonnenfeld"
    return {
        "communities_retrieve": {"path.slug": slug},
        "market_rules_retrieve": {"path.slug": slug},
        "market_rules_update": {"path.slug": slug},
        "intervals_retrieve": {"path.id": api.interval.pk},
        "intervals_depth": {"path.id": api.interval.pk},
        "intervals_grid_check": {"path.id": api.interval.pk},
        "trades_retrieve": {"path.id": trade["id"]},
        "bids_accept": {"path.id": pending.json()["id"]},
        "bids_reject": {"path.id": pending.json()["id"]},
        "postings_bids": {"path.id": open_posting["id"]},
        "meter_points_approve": {"path.id": pending_meter_point.pk},
        "meter_points_reject": {"path.id": pending_meter_point.pk},
        "meter_readings_accept": {"path.id": flagged.pk},
        "statements_index": {"path.slug": slug},
        "statements_month": {"path.slug": slug, "path.year": 2026, "path.month": 3},
        "body:dictionaries": {
            "intervals": [api.interval.pk],
            "own_meter_points": [api.world.meter_point.pk],
            "others_postings": [bobs["id"]],
            "communities": [slug],
        },
        "body:bindings": {
            "postings_create": {"interval": "intervals", "meter_point": "own_meter_points"},
            "bids_create": {"posting": "others_postings", "meter_point": "own_meter_points"},
            "meter_points_create": {"community": "communities"},
        },
    }
