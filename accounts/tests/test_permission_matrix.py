"""The permission matrix: every role x every page, admin page, API permission and rule.

Table-driven: a new endpoint is a new row of expected outcomes, one per role, each asserted.
Roles: anonymous, prosumer, other community's prosumer, suspended member, manager, other manager,
regulator, and the prosumer's tokens with each scope (read, trade, meter) plus the manager's
token with `manage`. Pages and the admin are session-only, so a token there is anonymous.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from accounts import permissions
from accounts.permissions import (
    CanReadMarket,
    CanSendMeterReadings,
    HasTokenScope,
    IsApprovedMember,
    IsCommunityManager,
    IsRegulator,
)
from accounts.tests.conftest import World
from marketplace.models import Community

pytestmark = pytest.mark.django_db

ROLES = (
    "anonymous",
    "prosumer",
    "other_prosumer",
    "suspended",
    "manager",
    "other_manager",
    "regulator",
    "token_read",
    "token_trade",
    "token_meter",
    "token_manage",
)
SESSION_ROLES = {"prosumer", "other_prosumer", "suspended", "manager", "other_manager", "regulator"}

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
ADMIN_INDEX = "/admin/"


def _row(**cells: Any) -> dict[str, Any]:
    assert set(cells) == set(ROLES), f"row must name every role: {set(ROLES) ^ set(cells)}"
    return cells


def _tokens_as(cell: Any) -> dict[str, Any]:
    return {f"token_{scope}": cell for scope in ("read", "trade", "meter", "manage")}


# --- Pages and admin: (method, url builder, expected per role) --------------------------------
# Expected is a status code, or (302, location prefix).
def _meter_point_url(w: World) -> str:
    return reverse("accounts:meter_point_edit", args=[w.meter_point.pk])


def _revoke_url(w: World) -> str:
    return reverse("accounts:api_token_revoke", args=[w.token_objects["read"].pk])


def _admin(name: str, *args: Callable[[World], Any]) -> Callable[[World], str]:
    return lambda w: reverse(f"admin:{name}", args=[arg(w) for arg in args])


SIGNED_IN_200 = dict.fromkeys(SESSION_ROLES, 200)
TO_LOGIN = (302, LOGIN)
TO_ADMIN_LOGIN = (302, ADMIN_LOGIN)
NOT_FOUND_IN_ADMIN = (302, ADMIN_INDEX)  # Django's admin redirects an unknown object id

PAGES: dict[str, tuple[str, Callable[[World], str], dict[str, Any]]] = {
    "account": (
        "get",
        lambda w: reverse("accounts:account"),
        _row(anonymous=TO_LOGIN, **SIGNED_IN_200, **_tokens_as(TO_LOGIN)),
    ),
    "meter_points": (
        "get",
        lambda w: reverse("accounts:meter_points"),
        _row(anonymous=TO_LOGIN, **SIGNED_IN_200, **_tokens_as(TO_LOGIN)),
    ),
    "meter_point_edit (the prosumer's)": (
        "get",
        _meter_point_url,
        # Managers edit meter points in the admin; the page is the owner's alone.
        _row(
            anonymous=TO_LOGIN,
            prosumer=200,
            other_prosumer=404,
            suspended=404,
            manager=404,
            other_manager=404,
            regulator=404,
            **_tokens_as(TO_LOGIN),
        ),
    ),
    "api_tokens": (
        "get",
        lambda w: reverse("accounts:api_tokens"),
        _row(anonymous=TO_LOGIN, **SIGNED_IN_200, **_tokens_as(TO_LOGIN)),
    ),
    "api_token_revoke (the prosumer's)": (
        "post",
        _revoke_url,
        _row(
            anonymous=TO_LOGIN,
            prosumer=(302, "/accounts/tokens/"),
            other_prosumer=404,
            suspended=404,
            manager=404,
            other_manager=404,
            regulator=404,
            **_tokens_as(TO_LOGIN),
        ),
    ),
    "password_change": (
        "get",
        lambda w: reverse("accounts:password_change"),
        _row(anonymous=TO_LOGIN, **SIGNED_IN_200, **_tokens_as(TO_LOGIN)),
    ),
    "admin membership list": (
        "get",
        _admin("accounts_membership_changelist"),
        _row(
            anonymous=TO_ADMIN_LOGIN,
            prosumer=TO_ADMIN_LOGIN,
            other_prosumer=TO_ADMIN_LOGIN,
            suspended=TO_ADMIN_LOGIN,
            manager=200,
            other_manager=200,
            regulator=TO_ADMIN_LOGIN,
            **_tokens_as(TO_ADMIN_LOGIN),
        ),
    ),
    "admin membership change (community A)": (
        "get",
        _admin("accounts_membership_change", lambda w: w.membership.pk),
        _row(
            anonymous=TO_ADMIN_LOGIN,
            prosumer=TO_ADMIN_LOGIN,
            other_prosumer=TO_ADMIN_LOGIN,
            suspended=TO_ADMIN_LOGIN,
            manager=200,
            other_manager=NOT_FOUND_IN_ADMIN,
            regulator=TO_ADMIN_LOGIN,
            **_tokens_as(TO_ADMIN_LOGIN),
        ),
    ),
    "admin meter point change (community A)": (
        "get",
        _admin("accounts_meterpoint_change", lambda w: w.meter_point.pk),
        _row(
            anonymous=TO_ADMIN_LOGIN,
            prosumer=TO_ADMIN_LOGIN,
            other_prosumer=TO_ADMIN_LOGIN,
            suspended=TO_ADMIN_LOGIN,
            manager=200,
            other_manager=NOT_FOUND_IN_ADMIN,
            regulator=TO_ADMIN_LOGIN,
            **_tokens_as(TO_ADMIN_LOGIN),
        ),
    ),
    "admin community change (community A)": (
        "get",
        _admin("marketplace_community_change", lambda w: w.community.pk),
        _row(
            anonymous=TO_ADMIN_LOGIN,
            prosumer=TO_ADMIN_LOGIN,
            other_prosumer=TO_ADMIN_LOGIN,
            suspended=TO_ADMIN_LOGIN,
            manager=200,
            other_manager=NOT_FOUND_IN_ADMIN,
            regulator=TO_ADMIN_LOGIN,
            **_tokens_as(TO_ADMIN_LOGIN),
        ),
    ),
    "admin audit log": (
        "get",
        _admin("accounts_auditevent_changelist"),
        _row(
            anonymous=TO_ADMIN_LOGIN,
            prosumer=TO_ADMIN_LOGIN,
            other_prosumer=TO_ADMIN_LOGIN,
            suspended=TO_ADMIN_LOGIN,
            manager=200,
            other_manager=200,
            regulator=TO_ADMIN_LOGIN,
            **_tokens_as(TO_ADMIN_LOGIN),
        ),
    ),
    "admin API tokens (operators only)": (
        "get",
        _admin("accounts_apitoken_changelist"),
        _row(
            anonymous=TO_ADMIN_LOGIN,
            prosumer=TO_ADMIN_LOGIN,
            other_prosumer=TO_ADMIN_LOGIN,
            suspended=TO_ADMIN_LOGIN,
            manager=403,
            other_manager=403,
            regulator=TO_ADMIN_LOGIN,
            **_tokens_as(TO_ADMIN_LOGIN),
        ),
    ),
    "admin users (operators only)": (
        "get",
        _admin("accounts_user_changelist"),
        _row(
            anonymous=TO_ADMIN_LOGIN,
            prosumer=TO_ADMIN_LOGIN,
            other_prosumer=TO_ADMIN_LOGIN,
            suspended=TO_ADMIN_LOGIN,
            manager=403,
            other_manager=403,
            regulator=TO_ADMIN_LOGIN,
            **_tokens_as(TO_ADMIN_LOGIN),
        ),
    ),
}


def _page_client(world: World, role: str) -> tuple[Client, dict[str, str]]:
    client = Client()
    headers: dict[str, str] = {}
    if role in SESSION_ROLES:
        client.force_login(getattr(world, role))
    elif role.startswith("token_"):
        headers["HTTP_AUTHORIZATION"] = f"Bearer {world.tokens[role.removeprefix('token_')]}"
    return client, headers


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", list(PAGES))
def test_page_matrix(world: World, page: str, role: str) -> None:
    method, url_for, expected_by_role = PAGES[page]
    expected = expected_by_role[role]
    client, headers = _page_client(world, role)
    response = getattr(client, method)(url_for(world), **headers)
    if isinstance(expected, tuple):
        status, location = expected
        assert response.status_code == status, f"{page} as {role}"
        assert response["Location"].startswith(location), f"{page} as {role}"
    else:
        assert response.status_code == expected, f"{page} as {role}"


# --- API: DRF permission classes on community A -----------------------------------------------
class _Probe(APIView):
    """Stands for any API endpoint: the permission classes are what is under test."""

    community: Community | None = None
    target: Any = None

    def get_community(self) -> Community | None:
        return self.community

    def _answer(self, request: Request) -> Response:
        if self.target is not None:
            self.check_object_permissions(request, self.target)
        return Response({"ok": True})

    def get(self, request: Request) -> Response:
        return self._answer(request)

    def post(self, request: Request) -> Response:
        return self._answer(request)


OK, UNAUTH, DENIED = 200, 401, 403
API: dict[str, tuple[str, list[BasePermission | type[BasePermission]], bool, dict[str, int]]] = {
    "market data (GET)": (
        "get",
        [CanReadMarket],
        False,
        _row(
            anonymous=UNAUTH,
            prosumer=OK,
            other_prosumer=DENIED,
            suspended=OK,
            manager=OK,
            other_manager=DENIED,
            regulator=OK,
            token_read=OK,
            token_trade=DENIED,
            token_meter=DENIED,
            token_manage=DENIED,
        ),
    ),
    "own history (GET)": (
        "get",
        [IsApprovedMember],
        False,
        _row(
            anonymous=UNAUTH,
            prosumer=OK,
            other_prosumer=DENIED,
            suspended=OK,
            manager=OK,
            other_manager=DENIED,
            regulator=DENIED,
            token_read=OK,
            token_trade=DENIED,
            token_meter=DENIED,
            token_manage=DENIED,
        ),
    ),
    "trade (POST an order or bid)": (
        "post",
        [IsApprovedMember],
        False,
        _row(
            anonymous=UNAUTH,
            prosumer=OK,
            other_prosumer=DENIED,
            suspended=DENIED,
            manager=OK,
            other_manager=DENIED,
            regulator=DENIED,
            token_read=DENIED,
            token_trade=OK,
            token_meter=DENIED,
            token_manage=DENIED,
        ),
    ),
    "manage (POST)": (
        "post",
        [IsCommunityManager],
        False,
        _row(
            anonymous=UNAUTH,
            prosumer=DENIED,
            other_prosumer=DENIED,
            suspended=DENIED,
            manager=OK,
            other_manager=DENIED,
            regulator=DENIED,
            token_read=DENIED,
            token_trade=DENIED,
            token_meter=DENIED,
            token_manage=OK,
        ),
    ),
    "regulator dashboard (GET)": (
        "get",
        [IsRegulator],
        False,
        _row(
            anonymous=UNAUTH,
            prosumer=DENIED,
            other_prosumer=DENIED,
            suspended=DENIED,
            manager=DENIED,
            other_manager=DENIED,
            regulator=OK,
            token_read=DENIED,
            token_trade=DENIED,
            token_meter=DENIED,
            token_manage=DENIED,
        ),
    ),
    # Readings settle money: a metering source only (the community's manager or its
    # meter_data token, tested in test_metering_source), never the member's own word.
    "meter readings for the prosumer's meter point (POST)": (
        "post",
        [CanSendMeterReadings],
        True,
        _row(
            anonymous=UNAUTH,
            prosumer=DENIED,
            other_prosumer=DENIED,
            suspended=DENIED,
            manager=OK,
            other_manager=DENIED,
            regulator=DENIED,
            token_read=DENIED,
            token_trade=DENIED,
            token_meter=DENIED,
            token_manage=DENIED,
        ),
    ),
    "scope check only: HasTokenScope('trade')": (
        "post",
        [HasTokenScope("trade")],
        False,
        _row(
            anonymous=UNAUTH,
            prosumer=OK,
            other_prosumer=OK,
            suspended=OK,
            manager=OK,
            other_manager=OK,
            regulator=DENIED,  # a regulator never trades, not even in a session
            token_read=DENIED,
            token_trade=OK,
            token_meter=DENIED,
            token_manage=DENIED,
        ),
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", list(API))
def test_api_permission_matrix(world: World, endpoint: str, role: str) -> None:
    method, permission_classes, on_meter_point, expected_by_role = API[endpoint]
    view = _Probe.as_view(
        permission_classes=permission_classes,
        community=world.community,
        target=world.meter_point if on_meter_point else None,
    )
    headers: dict[str, str] = {}
    if role.startswith("token_"):
        headers["HTTP_AUTHORIZATION"] = f"Bearer {world.tokens[role.removeprefix('token_')]}"
    request = getattr(APIRequestFactory(), method)("/api/probe/", **headers)
    if role in SESSION_ROLES:
        force_authenticate(request, user=getattr(world, role))
    response = view(request)
    assert response.status_code == expected_by_role[role], f"{endpoint} as {role}"


# --- The permission functions themselves, on community A --------------------------------------
FUNCTION_ROLES = ("anonymous", "prosumer", "other_prosumer", "suspended", "pending", "manager",
                  "other_manager", "regulator", "superuser")  # fmt: skip


def _expect(**cells: bool) -> dict[str, bool]:
    assert set(cells) == set(FUNCTION_ROLES), f"row must name every role: {set(cells)}"
    return cells


FUNCTIONS: dict[str, tuple[Callable[..., bool], dict[str, bool]]] = {
    "can_read_market": (permissions.can_read_market, _expect(
        anonymous=False, prosumer=True, other_prosumer=False, suspended=True, pending=False,
        manager=True, other_manager=False, regulator=True, superuser=True)),
    "can_trade": (permissions.can_trade, _expect(
        anonymous=False, prosumer=True, other_prosumer=False, suspended=False, pending=False,
        manager=True, other_manager=False, regulator=False, superuser=False)),
    "can_read_own_history": (permissions.can_read_own_history, _expect(
        anonymous=False, prosumer=True, other_prosumer=False, suspended=True, pending=False,
        manager=True, other_manager=False, regulator=False, superuser=False)),
    "can_manage": (permissions.can_manage, _expect(
        anonymous=False, prosumer=False, other_prosumer=False, suspended=False, pending=False,
        manager=True, other_manager=False, regulator=False, superuser=True)),
    "can_see_identities": (permissions.can_see_identities, _expect(
        anonymous=False, prosumer=False, other_prosumer=False, suspended=False, pending=False,
        manager=True, other_manager=False, regulator=False, superuser=True)),
}  # fmt: skip


def _user(world: World, role: str) -> Any:
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser() if role == "anonymous" else getattr(world, role)


@pytest.mark.parametrize("role", FUNCTION_ROLES)
@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_permission_function_matrix(world: World, function: str, role: str) -> None:
    rule, expected = FUNCTIONS[function]
    assert rule(_user(world, role), world.community) is expected[role], f"{function}({role})"


def test_visible_querysets_by_role(world: World) -> None:
    a_members = set(world.community.memberships.values_list("pk", flat=True))
    assert set(permissions.visible_memberships(world.manager).values_list("pk", flat=True)) == (
        a_members
    )
    assert set(permissions.visible_memberships(world.prosumer)) == {world.membership}
    # A regulator never gets memberships (they name users): market data comes anonymised.
    assert not permissions.visible_memberships(world.regulator).exists()
    assert set(permissions.visible_meter_points(world.prosumer)) == {world.meter_point}
    assert world.other_meter_point not in permissions.visible_meter_points(world.manager)
    assert world.meter_point in permissions.visible_meter_points(world.manager)
    assert not permissions.visible_meter_points(world.regulator).exists()
    assert set(permissions.readable_communities(world.regulator)) == {
        world.community,
        world.other_community,
    }
    assert set(permissions.readable_communities(world.suspended)) == {world.community}
    assert set(permissions.managed_communities(world.other_manager)) == {world.other_community}
    assert all(
        event.community == world.community
        for event in permissions.visible_audit_events(world.manager)
    )
    assert not permissions.visible_audit_events(world.prosumer).exists()
