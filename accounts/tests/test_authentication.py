"""BearerTokenAuthentication: valid, expired, revoked and wrong tokens; scopes; last use."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from accounts import services
from accounts.authentication import BearerTokenAuthentication, request_scopes
from accounts.models import ApiToken, AuditEvent
from accounts.tests import factories
from accounts.tests.conftest import World
from accounts.tokens import TokenAuth

pytestmark = pytest.mark.django_db


def _request(header: str | None) -> Request:
    extra: dict[str, Any] = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    return Request(
        APIRequestFactory().get("/api/anything/", **extra),
        authenticators=[BearerTokenAuthentication()],
    )


def _authenticate(header: str | None) -> tuple[object, TokenAuth] | None:
    return BearerTokenAuthentication().authenticate(_request(header))


def test_valid_token_authenticates_with_its_scopes(world: World) -> None:
    result = _authenticate(f"Bearer {world.tokens['trade']}")
    assert result is not None
    user, auth = result
    assert user == world.prosumer
    assert isinstance(auth, TokenAuth)
    assert auth.scopes == frozenset({"trade"})
    assert "trade" in auth
    assert "read" not in auth


def test_no_header_or_other_scheme_is_not_ours(world: World) -> None:
    assert _authenticate(None) is None
    assert _authenticate("Basic dXNlcjpwYXNz") is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer pgt_wrong", "Invalid token."),
        ("Bearer", "Malformed Authorization header; use 'Bearer <token>'."),
        ("Bearer a b", "Malformed Authorization header; use 'Bearer <token>'."),
    ],
)
def test_wrong_token_is_refused(world: World, header: str, message: str) -> None:
    with pytest.raises(AuthenticationFailed) as error:
        _authenticate(header)
    assert str(error.value.detail) == message


def test_revoked_token_is_refused_with_a_clear_message(world: World) -> None:
    services.api_token_revoke(token=world.token_objects["read"], revoked_by=world.prosumer)
    with pytest.raises(AuthenticationFailed) as error:
        _authenticate(f"Bearer {world.tokens['read']}")
    assert str(error.value.detail) == "This token has been revoked."


def test_expired_token_is_refused_with_a_clear_message(world: World) -> None:
    _, raw = factories.token_for(
        world.prosumer, ["read"], expires_at=timezone.now() + dt.timedelta(days=1)
    )
    later = timezone.now() + dt.timedelta(days=1, seconds=1)
    with time_machine.travel(later), pytest.raises(AuthenticationFailed) as error:
        _authenticate(f"Bearer {raw}")
    assert str(error.value.detail) == "This token has expired."


def test_inactive_user_token_is_refused(world: World) -> None:
    world.prosumer.is_active = False
    world.prosumer.save()
    with pytest.raises(AuthenticationFailed):
        _authenticate(f"Bearer {world.tokens['read']}")


def test_last_used_is_written_at_most_once_a_minute_and_use_audited_once_an_hour(
    world: World,
) -> None:
    token = world.token_objects["read"]
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _authenticate(f"Bearer {world.tokens['read']}")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == start
    with time_machine.travel(start + dt.timedelta(seconds=30), tick=False):
        _authenticate(f"Bearer {world.tokens['read']}")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == start
    with time_machine.travel(start + dt.timedelta(seconds=61), tick=False):
        _authenticate(f"Bearer {world.tokens['read']}")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == start + dt.timedelta(seconds=61)
    assert AuditEvent.objects.filter(kind="api_token.used", detail__token=token.pk).count() == 1


def test_request_scopes_for_sessions_follow_the_role(world: World) -> None:
    request = _request(None)
    request.auth = None  # a session request: authentication has run, no token
    request.user = world.prosumer
    assert request_scopes(request) == frozenset({"read", "trade", "meter"})
    request.user = world.manager
    assert request_scopes(request) == frozenset({"read", "trade", "meter", "manage", "meter_data"})


def test_a_manage_token_loses_manage_when_its_user_stops_managing(world: World) -> None:
    request = _request(f"Bearer {world.tokens['manage']}")
    assert request_scopes(request) == frozenset({"manage"})
    services.membership_suspend(
        membership=world.manager.memberships.get(), decided_by=world.superuser, reason="left"
    )
    request = _request(f"Bearer {world.tokens['manage']}")
    assert request_scopes(request) == frozenset()


def test_unauthenticated_api_call_gets_401_with_bearer_challenge(world: World) -> None:
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class Probe(APIView):
        permission_classes = (IsAuthenticated,)

        def get(self, request: Request) -> Response:
            return Response({})

    response = Probe.as_view()(APIRequestFactory().get("/api/probe/"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_token_request_reads_token_user_and_role_in_one_query(
    world: World, django_assert_num_queries: Any
) -> None:
    """The role's scopes come with the token; once last use is fresh, nothing else is asked."""
    for name in ("manage", "trade"):
        _authenticate(f"Bearer {world.tokens[name]}")  # writes last use (once a minute)
    with django_assert_num_queries(1):
        assert request_scopes(_request(f"Bearer {world.tokens['manage']}")) == frozenset({"manage"})
    with django_assert_num_queries(1):
        assert request_scopes(_request(f"Bearer {world.tokens['trade']}")) == frozenset({"trade"})
