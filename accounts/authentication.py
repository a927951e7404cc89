"""DRF authentication by personal access token: `Authorization: Bearer <token>`.

The token is looked up by its SHA-256 digest (the plaintext is never stored). Expired and revoked
tokens get a 401 that says which. `request.auth` becomes a `TokenAuth` carrying the token's
scopes; `request_scopes(request)` gives the effective scopes for tokens and sessions alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiToken, User
from accounts.permissions import request_scopes, scopes_allowed_for, user_manages_expression
from accounts.services import api_token_touch
from accounts.tokens import TokenAuth, token_digest

if TYPE_CHECKING:
    from rest_framework.request import Request

__all__ = ["BearerTokenAuthentication", "TokenAuth", "client_ip", "request_scopes"]


def client_ip(request: Request) -> str | None:
    """The peer address; behind a proxy, the proxy must set REMOTE_ADDR (e.g. gunicorn's
    --forwarded-allow-ips), because a client-supplied X-Forwarded-For is trivially forged."""
    return request.META.get("REMOTE_ADDR") or None


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
        # One query: the token, its user, and whether the user manages a community (which the
        # role's scopes depend on), instead of a second query in every permission check.
        try:
            token = (
                ApiToken.objects.select_related("user")
                .annotate(user_manages=user_manages_expression())
                .get(digest=token_digest(raw))
            )
        except ApiToken.DoesNotExist:
            raise AuthenticationFailed("Invalid token.") from None
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
            role_scopes=scopes_allowed_for(token.user, manages=token.user_manages),
        )

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with this challenge) rather than 403 to unauthenticated calls.
        return 'Bearer realm="api"'
