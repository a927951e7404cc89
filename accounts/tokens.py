"""Personal access tokens: how they are generated, hashed and recognised."""

from __future__ import annotations

import hashlib
import secrets

# A recognisable prefix lets secret scanners (and people) tell a PeerGrid token at a glance.
TOKEN_PREFIX = "pgt_"  # noqa: S105 - a public marker, not a secret
# What is stored in clear next to the digest, so a user can tell their tokens apart in a list.
DISPLAY_PREFIX_LENGTH = 12


def token_generate() -> str:
    """A new token: 256 random bits, URL-safe, never stored in clear."""
    return f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"


def token_digest(raw_token: str) -> str:
    """SHA-256 hex digest; a fast hash is enough because the token has 256 bits of entropy."""
    return hashlib.sha256(raw_token.encode()).hexdigest()


def token_display_prefix(raw_token: str) -> str:
    return raw_token[:DISPLAY_PREFIX_LENGTH]


class TokenAuth:
    """What `request.auth` holds for a bearer-token request: the token and its scopes.

    `"trade" in request.auth` reads naturally in a view; `scopes` is the frozenset itself.
    `role_scopes`, when authentication read them with the token, are the scopes the user's role
    allowed at that moment (see `accounts.permissions.request_scopes`).
    """

    __slots__ = ("community_id", "name", "role_scopes", "scopes", "token_id")

    def __init__(
        self,
        *,
        token_id: int,
        name: str,
        scopes: frozenset[str],
        role_scopes: frozenset[str] | None = None,
        community_id: int | None = None,
    ) -> None:
        self.community_id = community_id
        self.token_id = token_id
        self.name = name
        self.scopes = scopes
        self.role_scopes = role_scopes

    def __contains__(self, scope: object) -> bool:
        return scope in self.scopes

    def __repr__(self) -> str:
        return f"TokenAuth(token_id={self.token_id}, scopes={sorted(self.scopes)})"
