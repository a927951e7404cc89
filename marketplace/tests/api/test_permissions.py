"""Every endpoint for every role: the permission matrix of the accounts issue, over the API.

One row per endpoint and method; each cell is the status that role gets. Scopes are independent
(a `trade` token cannot read), lists are filtered by role (so they answer 200 with fewer rows),
and objects outside one's reach are 404s. Cells marked with a dict also pin the error code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from accounts import permissions
from accounts.models import TokenScope
from marketplace.api import urls as api_urls
from marketplace.tests.api.conftest import ROLES, Api, posting_body

pytestmark = pytest.mark.django_db

A = "anonymous"


def row(default: int, **cells: int) -> dict[str, int]:
    """``default`` for every signed-in role with the `read` scope; exceptions as keywords."""
    out = dict.fromkeys(ROLES, default)
    out.update({A: 401, "token_trade": 403, "token_meter": 403, "token_manage": 403})
    out.update(cells)
    return out


Url = Callable[[Api], str]


def interval_url(suffix: str = "") -> Url:
    return lambda api: f"/api/v1/intervals/{api.interval.pk}/{suffix}"


READS: list[tuple[str, Url, dict[str, int]]] = [
    ("me", lambda api: "/api/v1/me/", row(200, token_trade=200, token_meter=200, token_manage=200)),
    ("communities", lambda api: "/api/v1/communities/", row(200)),
    (
        "community",
        lambda api: "/api/v1/communities/sonnenfeld/",
        row(200, other_prosumer=404, other_manager=404),
    ),
    (
        "rules",
        lambda api: "/api/v1/communities/sonnenfeld/rules/",
        row(200, other_prosumer=403, other_manager=403),
    ),
    ("intervals", lambda api: "/api/v1/intervals/", row(200)),
    ("interval", interval_url(), row(200, other_prosumer=404, other_manager=404)),
    ("depth", interval_url("depth/"), row(200, other_prosumer=404, other_manager=404)),
    (
        "grid check (not run yet)",
        interval_url("grid-check/"),
        row(404),
    ),
    (
        "board",
        lambda api: "/api/v1/board/?community=sonnenfeld",
        row(403, prosumer=200, token_read=200, manager=200),
    ),
    ("postings", lambda api: "/api/v1/postings/", row(200)),
    ("bids", lambda api: "/api/v1/bids/", row(200)),
    ("trades", lambda api: "/api/v1/trades/", row(200)),
    ("meter points", lambda api: "/api/v1/meter-points/", row(200)),
    ("meter readings", lambda api: "/api/v1/meter-readings/", row(200)),
    ("settlements", lambda api: "/api/v1/settlements/", row(200)),
    (
        "statements",
        lambda api: "/api/v1/statements/sonnenfeld/",
        row(200, other_prosumer=404, other_manager=404, regulator=404),
    ),
    (
        "statement month",
        lambda api: "/api/v1/statements/sonnenfeld/2026/3/",
        row(200, other_prosumer=404, other_manager=404, regulator=404),
    ),
    ("statistics", lambda api: "/api/v1/statistics/", row(200)),
]


@pytest.mark.parametrize(("name", "url", "expected"), READS, ids=[r[0] for r in READS])
def test_reads_for_every_role(api: Api, name: str, url: Url, expected: dict[str, int]) -> None:
    got = {role: api.client(role).get(url(api)).status_code for role in ROLES}
    assert got == expected


def test_lists_show_only_what_the_role_may_see(api: Api) -> None:
    def slugs(role: str, path: str, key: str = "community") -> set[str]:
        data = api.client(role).get(path).json()
        return {item[key] for item in data["results"]}

    assert slugs("regulator", "/api/v1/communities/", "slug") == {"sonnenfeld", "windhof"}
    assert slugs("prosumer", "/api/v1/communities/", "slug") == {"sonnenfeld"}
    assert slugs("other_prosumer", "/api/v1/intervals/?limit=500") == {"windhof"}
    stats = api.client("regulator").get("/api/v1/statistics/").json()
    assert [s["community"] for s in stats] == ["sonnenfeld", "windhof"]
    assert [s["community"] for s in api.client("prosumer").get("/api/v1/statistics/").json()] == [
        "sonnenfeld"
    ]
    # Another member's meter point is not in my list, and its detail is a 404.
    own = api.client("prosumer").get("/api/v1/meter-points/").json()["results"]
    assert {mp["id"] for mp in own} == {api.world.meter_point.pk}
    other = api.client("prosumer").get(f"/api/v1/meter-points/{api.bob_meter_point.pk}/")
    assert other.status_code == 404


def _post_as(api: Api, role: str) -> int:
    meter_point = api.meter_point_of(role)
    body = posting_body(api, mp=meter_point) if meter_point else posting_body(api)
    return api.client(role).post("/api/v1/postings/", body, format="json").status_code


def test_posting_for_every_role(api: Api) -> None:
    got = {role: _post_as(api, role) for role in ROLES}
    assert got == {
        A: 401,
        "prosumer": 201,
        "token_read": 403,  # no `trade` scope
        "token_trade": 201,
        "token_meter": 403,
        "other_prosumer": 403,  # the interval is another community's
        "suspended": 400,  # code `suspended`
        "manager": 404,  # the manager has no meter point of their own here
        "token_manage": 403,
        "other_manager": 404,
        "regulator": 403,  # a regulator never trades: no `trade` scope, even in a session
    }


def test_rules_update_for_every_role(api: Api) -> None:
    got = {
        role: api.client(role)
        .patch("/api/v1/communities/sonnenfeld/rules/", {"fee_per_kwh": "0.0060"}, format="json")
        .status_code
        for role in ROLES
    }
    assert got == {
        A: 401,
        "prosumer": 403,
        "token_read": 403,
        "token_trade": 403,
        "token_meter": 403,
        "other_prosumer": 403,
        "suspended": 403,
        "manager": 200,
        "token_manage": 200,
        "other_manager": 403,
        "regulator": 403,
    }


def test_readings_upload_for_every_role(api: Api) -> None:
    def upload(role: str) -> int:
        body: dict[str, Any] = {
            "readings": [
                {
                    "meter_point": api.world.meter_point.pk,
                    "interval": api.interval.pk,
                    "imported_kwh": "0.500",
                    "exported_kwh": "0.000",
                }
            ]
        }
        return api.client(role).post("/api/v1/meter-readings/", body, format="json").status_code

    got = {role: upload(role) for role in ROLES}
    # Only a metering source uploads: a manager (another community's gets its rows refused
    # one by one); no member, not even for their own meter, and no token without `meter_data`.
    assert got == dict.fromkeys(ROLES, 403) | {A: 401, "manager": 200, "other_manager": 200}
    refused = api.client("token_meter").post(
        "/api/v1/meter-readings/",
        {"readings": [{"meter_point": 1, "interval": 1, "imported_kwh": "0", "exported_kwh": "0"}]},
        format="json",
    )
    assert refused.json()["code"] == "not_metering_source"


def test_statistics_use_the_dashboard_definitions(api: Api) -> None:
    regulator = api.client("regulator")
    rows = regulator.get("/api/v1/statistics/?community=sonnenfeld").json()
    (row,) = rows
    assert row["community"] == "sonnenfeld"
    assert row["approved_members"] == 3  # prosumer, bob, the manager; not the suspended one
    assert row["p2p_kwh"] == "0.000"
    assert row["self_sufficiency"] is None  # nothing traded yet: no share to report
    ranged = regulator.get("/api/v1/statistics/?first_day=2026-01-01&last_day=2026-01-31").json()
    assert {r["first_day"] for r in ranged} == {"2026-01-01"}
    bad = regulator.get("/api/v1/statistics/?first_day=2026-02-01&last_day=2026-01-01")
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"last_day"}
    assert regulator.get("/api/v1/statistics/?community=nowhere").status_code == 404
    # A member never sees another community's figures, even when asking for them.
    assert api.client("prosumer").get("/api/v1/statistics/?community=windhof").status_code == 404


# --- Writes on the board, for every role ----------------------------------------------------
def _fresh_posting_with_bid(api: Api) -> tuple[int, int]:
    """Alice's open posting with a pending bid of Bob's on it, made through the API."""
    alice, bob = api.bearer(api.full_token), api.bearer(api.bob_token)
    posting = alice.post(
        "/api/v1/postings/", posting_body(api, quantity_kwh="0.100"), format="json"
    ).json()
    bid = bob.post(
        "/api/v1/bids/",
        {"posting": posting["id"], "meter_point": api.bob_meter_point.pk,
         "quantity_kwh": "0.050", "price_per_kwh": "0.1300"},
        format="json",
    ).json()  # fmt: skip
    return posting["id"], bid["id"]


OWN = {"prosumer", "token_trade"}  # the prosumer Alice, by session and by `trade` token
# No `trade` scope; a regulator has none even in a session (it observes, never trades).
NO_TRADE = {"token_read": 403, "token_meter": 403, "token_manage": 403, "regulator": 403}

WRITES: list[tuple[str, Callable[[Api, str, int, int], Any], dict[str, int]]] = [
    (
        "bid on Alice's posting",
        lambda api, role, posting, bid: api.client(role).post(
            "/api/v1/bids/",
            {
                "posting": posting,
                "meter_point": getattr(api.meter_point_of(role), "pk", 1),
                "quantity_kwh": "0.010",
                "price_per_kwh": "0.1300",
            },
            format="json",
        ),
        {
            A: 401,
            "prosumer": 400,
            "token_trade": 400,
            "other_prosumer": 403,
            "suspended": 400,
            "manager": 404,
            "other_manager": 404,
            "regulator": 404,
            **NO_TRADE,
        },
    ),
    (
        "cancel Alice's posting",
        lambda api, role, posting, bid: api.client(role).post(
            f"/api/v1/postings/{posting}/cancel/"
        ),
        {A: 401, **dict.fromkeys(ROLES[1:], 404), **dict.fromkeys(OWN, 200), **NO_TRADE},
    ),
    (
        "accept Bob's bid on Alice's posting",
        lambda api, role, posting, bid: api.client(role).post(
            f"/api/v1/bids/{bid}/accept/", {}, format="json"
        ),
        {A: 401, **dict.fromkeys(ROLES[1:], 404), **dict.fromkeys(OWN, 201), **NO_TRADE},
    ),
    (
        "reject Bob's bid on Alice's posting",
        lambda api, role, posting, bid: api.client(role).post(f"/api/v1/bids/{bid}/reject/"),
        {A: 401, **dict.fromkeys(ROLES[1:], 404), **dict.fromkeys(OWN, 200), **NO_TRADE},
    ),
    (
        "withdraw Bob's bid (only Bob may)",
        lambda api, role, posting, bid: api.client(role).post(f"/api/v1/bids/{bid}/withdraw/"),
        {A: 401, **dict.fromkeys(ROLES[1:], 404), **dict.fromkeys(OWN, 403), **NO_TRADE},
    ),
    (
        "register a meter point in Sonnenfeld",
        lambda api, role, posting, bid: api.client(role).post(
            "/api/v1/meter-points/",
            {
                "community": "sonnenfeld",
                "label": "Shed",
                "import_capacity_kw": "3",
                "export_capacity_kw": "3",
            },
            format="json",
        ),
        {
            A: 401,
            "prosumer": 201,
            "token_read": 403,
            "token_trade": 403,
            "token_meter": 201,
            "other_prosumer": 404,
            "suspended": 400,
            "manager": 201,
            "token_manage": 403,
            "other_manager": 404,
            "regulator": 403,  # no `meter` scope for a regulator
        },
    ),
]


@pytest.mark.parametrize(("name", "call", "expected"), WRITES, ids=[w[0] for w in WRITES])
def test_writes_for_every_role(
    api: Api, name: str, call: Callable[[Api, str, int, int], Any], expected: dict[str, int]
) -> None:
    got = {}
    for role in ROLES:
        posting, bid = _fresh_posting_with_bid(api)  # each role acts on untouched objects
        got[role] = call(api, role, posting, bid).status_code
    assert got == expected


# --- Every view declares its permission ---------------------------------------------------------
WRITE_RULES = (
    permissions.IsApprovedMember,
    permissions.IsCommunityManager,
    permissions.CanSendMeterReadings,
)
RULES = (
    permissions.AnyScope,
    permissions.HasTokenScope,
    permissions.CanReadMarket,
    permissions.IsRegulator,
    *WRITE_RULES,
)


def _api_routes() -> list[tuple[str, type[APIView], str]]:
    routes = []
    for pattern in api_urls.urlpatterns:
        view_class = getattr(pattern.callback, "cls", None)
        if view_class is None:
            continue  # the JSON 404 for unknown paths
        for method in ("get", "post", "patch", "put", "delete"):
            if hasattr(view_class, method):
                routes.append((str(pattern.pattern), view_class, method.upper()))
    return routes


@pytest.mark.parametrize(
    ("route", "view_class", "method"),
    _api_routes(),
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_api_view_declares_a_permission(
    route: str, view_class: type[APIView], method: str
) -> None:
    """Each endpoint's permissions name a rule of accounts.permissions, and a write never falls
    back to the `read` scope: a new view that forgets to say what it needs fails here."""
    view = view_class()
    view.request = Request(getattr(APIRequestFactory(), method.lower())("/"))
    view.kwargs = {}
    checks = view.get_permissions()
    assert any(isinstance(check, IsAuthenticated) for check in checks), route
    assert any(isinstance(check, RULES) for check in checks), route
    if method in ("GET", "HEAD", "OPTIONS"):
        return
    writes = [
        check
        for check in checks
        if isinstance(check, WRITE_RULES)
        or (isinstance(check, permissions.HasTokenScope) and check.scope != TokenScope.READ.value)
    ]
    assert writes, f"{method} {route} needs a write scope or rule"


def test_the_permission_check_fails_for_a_view_without_a_rule() -> None:
    """The check above is not vacuous: a view on DRF's defaults is caught."""

    class Bare(APIView):
        def post(self, request: Request) -> None: ...

    view = Bare()
    view.request = Request(APIRequestFactory().post("/"))
    assert not any(isinstance(check, RULES) for check in view.get_permissions())
