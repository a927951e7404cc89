"""Writes for API tokens: create (the plaintext is returned once), revoke, note a use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts import permissions
from accounts.models import ApiToken, TokenScope, User
from accounts.services.audit import audit_record
from accounts.tokens import token_digest, token_display_prefix, token_generate
from config.errors import ApplicationError, ErrorCode
from marketplace.models import Community

# How often a token's last use is written, and how often its use is audited: every request
# would turn each API read into a write.
TOKEN_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
TOKEN_USE_AUDIT_SECONDS = 3600


def _check_scopes(
    *, user: User, scopes: Iterable[str], community: Community | None = None
) -> list[str]:
    requested = sorted(set(scopes))
    if not requested:
        raise ApplicationError(ErrorCode.REQUIRED, "Choose at least one scope.", field="scopes")
    unknown = [scope for scope in requested if scope not in TokenScope.values]
    if unknown:
        raise ApplicationError(
            ErrorCode.UNKNOWN_CHOICE,
            f"Unknown scope {', '.join(unknown)}; choose from {', '.join(TokenScope.values)}.",
            field="scopes",
        )
    if permissions.is_regulator(user) and not permissions.is_superuser(user):
        beyond = sorted(set(requested) - permissions.REGULATOR_SCOPES)
        if beyond:
            raise ApplicationError(
                ErrorCode.PERMISSION_DENIED,
                f"A regulator's token may only read; not {', '.join(beyond)}.",
                field="scopes",
            )
    if TokenScope.MANAGE in requested and not permissions.manages_any_community(user):
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED,
            "The 'manage' scope is only for community managers.",
            field="scopes",
        )
    if TokenScope.METER_DATA in requested:
        # The metering operator's meter data service sends one community's readings.
        if community is None:
            raise ApplicationError(
                ErrorCode.REQUIRED,
                "A 'meter_data' token sends one community's readings: choose the community.",
                field="community",
            )
        if not permissions.can_manage(user, community):
            raise ApplicationError(
                ErrorCode.PERMISSION_DENIED,
                "Only a manager of the community can issue a 'meter_data' token for it.",
                field="scopes",
            )
    elif community is not None:
        raise ApplicationError(
            ErrorCode.NOT_EDITABLE,
            "Only a 'meter_data' token is bound to a community.",
            field="community",
        )
    return requested


def api_token_create(
    *,
    user: User,
    name: str,
    scopes: Iterable[str],
    expires_at: dt.datetime | None = None,
    created_by: User | None = None,
    community: Community | None = None,
) -> tuple[ApiToken, str]:
    """Create a personal access token; returns it with the plaintext, which is never stored.

    ``community``: for a ``meter_data`` token only (required there), the community whose meter
    readings it sends; only that community's managers may issue it.
    """
    name = name.strip()
    if not name:
        raise ApplicationError(ErrorCode.REQUIRED, "Give the token a name.", field="name")
    if not user.is_active:
        raise ApplicationError(ErrorCode.INACTIVE_USER, "The user is not active.", field="user")
    checked = _check_scopes(user=user, scopes=scopes, community=community)
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError(
            ErrorCode.OUT_OF_RANGE, "The expiry must be in the future.", field="expires_at"
        )
    raw = token_generate()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=token_display_prefix(raw),
            digest=token_digest(raw),
            scopes=checked,
            expires_at=expires_at,
            community=community,
        )
        audit_record(
            kind="api_token.created",
            actor=created_by or user,
            token=token.pk,
            owner=user.pk,
            scopes=checked,
            name=name,
            community=community,
        )
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken, revoked_by: User | None) -> ApiToken:
    """Revoke a token at once; revoking twice is harmless."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if revoked_by is not None and not permissions.can_revoke_api_token(revoked_by, token):
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such token.", field="token")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            kind="api_token.revoked", actor=revoked_by, token=token.pk, owner=token.user_id
        )
    return token


def api_token_touch(*, token: ApiToken, ip_address: str | None = None) -> None:
    """Note that a token was used: last use to the minute, one audit event per token per hour.

    Both happen only when the stored last use is a minute old, so a token in steady use costs
    one UPDATE and one cache call a minute rather than a cache call per request; an hour's use
    event is therefore recorded at most a minute after the previous one's hour ran out.
    """
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < TOKEN_LAST_USED_RESOLUTION:
        return
    # A plain UPDATE, not save(): concurrent requests must not overwrite other fields.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
    # cache.add is atomic on Redis and good enough on the file cache: at worst two events.
    if cache.add(f"accounts:token-used:{token.pk}", 1, timeout=TOKEN_USE_AUDIT_SECONDS):
        audit_record(
            kind="api_token.used",
            actor=token.user,
            ip_address=ip_address,
            token=token.pk,
            prefix=token.prefix,
        )
