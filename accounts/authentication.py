"""DRF authentication by personal access token: `Authorization: Bearer <token>`.

The token is looked up by its SHA-256 digest (the plaintext is never stored). Expired and revoked
tokens get a 401 that says which. `request.auth` becomes a `TokenAuth` carrying the token's
scopes; `request_scopes(request)` gives the effective scopes for tokens and sessions alike.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from django.db import connection
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiToken, User
from accounts.permissions import request_scopes, scopes_allowed_for, user_manages_sql
from accounts.services import api_token_touch
from accounts.tokens import TokenAuth, token_digest
from config.sql import ModelSelect, table_name

if TYPE_CHECKING:
    from rest_framework.request import Request

__all__ = ["BearerTokenAuthentication", "TokenAuth", "client_ip", "request_scopes"]


def client_ip(request: Request) -> str | None:
    """The peer address; behind a proxy, the proxy must set REMOTE_ADDR (e.g. gunicorn's
    --forwarded-allow-ips), because a client-supplied X-Forwarded-For is trivially forged."""
    return request.META.get("REMOTE_ADDR") or None


@functools.cache
def _token_select() -> tuple[ModelSelect, list[str]]:
    manages, params = user_manages_sql("t.user_id")
    select = ModelSelect(
        [(ApiToken, "t", None), (User, "u", None)],
        f"FROM {table_name(ApiToken)} t JOIN {table_name(User)} u ON u.id = t.user_id"
        " WHERE t.digest = %s",
        extra=[manages],
    )
    return select, params


def _token_with_user(digest: str) -> tuple[ApiToken, bool] | None:
    """One query, hand-written because it runs on every API call: the token, its user, and
    whether the user manages a community (which the role's scopes depend on), instead of the
    ORM's compilation and a second query in every permission check."""
    select, params = _token_select()
    with connection.cursor() as cursor:
        cursor.execute(select.sql, [*params, digest])
        row = cursor.fetchone()
    if row is None:
        return None
    token, user, manages = select.build(row)
    token.user = user
    return token, bool(manages)


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[User, TokenAuth] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.encode():
            return None  # not ours: let session authentication try
        if len(parts) != 2:
            raise AuthenticationFailed("Malformed Authorization header; use 'Bearer <token>'.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("Invalid token.") from exc
        found = _token_with_user(token_digest(raw))
        if found is None:
            raise AuthenticationFailed("Invalid token.")
        token, user_manages = found
        if token.revoked_at is not None:
            raise AuthenticationFailed("This token has been revoked.")
        if token.expires_at is not None and token.expires_at <= timezone.now():
            raise AuthenticationFailed("This token has expired.")
        if not token.user.is_active:
            raise AuthenticationFailed("The token's user is inactive.")
        api_token_touch(token=token, ip_address=client_ip(request))
        return token.user, TokenAuth(
            token_id=token.pk,
            name=token.name,
            scopes=frozenset(token.scopes),
            role_scopes=scopes_allowed_for(token.user, manages=user_manages),
            community_id=token.community_id,
        )

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with this challenge) rather than 403 to unauthenticated calls.
        return 'Bearer realm="api"'
