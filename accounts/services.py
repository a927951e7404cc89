"""Writes for accounts: users, memberships, meter points, API tokens, roles. One transaction each.

Permission checks call `accounts.permissions` from inside the service, so every channel (pages,
admin, API, commands) gets the same answer. An actor of `None` means the system itself (seeding,
an operator's management command) and is not checked.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth import password_validation
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import permissions
from accounts.models import (
    ApiToken,
    AuditEvent,
    Membership,
    MembershipRole,
    MembershipStatus,
    MeterPoint,
    TokenScope,
    User,
)
from accounts.tokens import token_digest, token_display_prefix, token_generate
from config.errors import ApplicationError, ErrorCode
from marketplace.models import Community

# How often a token's last use is written, and how often its use is audited: every request
# would turn each API read into a write.
TOKEN_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
TOKEN_USE_AUDIT_SECONDS = 3600

_ADJECTIVES = (
    "amber", "brisk", "calm", "daring", "eager", "fair", "gentle", "hardy", "ivory", "jolly",
    "keen", "lively", "mellow", "noble", "olive", "proud", "quiet", "rapid", "sunny", "tidy",
    "upbeat", "vivid", "witty", "young", "zesty",
)  # fmt: skip
_NOUNS = (
    "otter", "falcon", "willow", "comet", "badger", "heron", "maple", "lynx", "pebble", "river",
    "sparrow", "cedar", "dolphin", "ember", "fox", "glacier", "harbor", "iris", "juniper",
    "kestrel",
)  # fmt: skip


def audit_record(
    *,
    kind: str,
    actor: User | None = None,
    community: Community | None = None,
    ip_address: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Append an event to the audit log (callers are already inside their transaction)."""
    return AuditEvent.objects.create(
        kind=kind, actor=actor, community=community, ip_address=ip_address, detail=detail
    )


def _new_pseudonym(community: Community) -> str:
    taken = set(
        Membership.objects.filter(community=community)
        .exclude(pseudonym="")
        .values_list("pseudonym", flat=True)
    )
    for _ in range(100):
        candidate = (
            f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(100):02d}"
        )
        if candidate not in taken:
            return candidate
    return f"member-{secrets.token_hex(4)}"


def membership_request(*, user: User, community: Community) -> Membership:
    """A user asks to join a community as a prosumer; a manager decides later.

    A rejected applicant may ask again: the same row goes back to pending, keeping its history
    in the audit log.
    """
    existing = Membership.objects.filter(user=user, community=community).first()
    if existing is not None and existing.status == MembershipStatus.REJECTED:
        with transaction.atomic():
            existing.status = MembershipStatus.PENDING
            existing.status_reason = ""
            existing.requested_at = timezone.now()
            existing.decided_at = None
            existing.save(update_fields=["status", "status_reason", "requested_at", "decided_at"])
            audit_record(kind="membership.requested", actor=user, community=community, again=True)
        return existing
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                user=user, community=community, role=MembershipRole.PROSUMER
            )
            audit_record(kind="membership.requested", actor=user, community=community)
    except IntegrityError as exc:
        raise ApplicationError(
            ErrorCode.ALREADY_MEMBER,
            "You have already asked to join this community.",
            field="community",
        ) from exc
    return membership


@transaction.atomic
def membership_approve(
    *, membership: Membership, decided_by: User | None, reason: str = ""
) -> Membership:
    """Approve a pending or suspended member; the pseudonym is generated once and kept."""
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if decided_by is not None:
        permissions.require_manage(decided_by, membership.community)
    if membership.status == MembershipStatus.APPROVED:
        return membership
    if membership.status == MembershipStatus.REJECTED:
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            "A rejected request cannot be approved; ask again.",
            field="status",
        )
    previous = membership.status
    membership.status = MembershipStatus.APPROVED
    membership.status_reason = reason
    membership.decided_at = timezone.now()
    if not membership.pseudonym:
        membership.pseudonym = _new_pseudonym(membership.community)
    membership.save(update_fields=["status", "status_reason", "decided_at", "pseudonym"])
    audit_record(
        kind="membership.approved",
        actor=decided_by,
        community=membership.community,
        membership=membership.pk,
        previous_status=previous,
        reason=reason,
    )
    return membership


@transaction.atomic
def community_manager_add(*, user: User, community: Community, added_by: User | None) -> Membership:
    """Make a user an approved manager of a community (operators and seeding use this)."""
    if added_by is not None:
        permissions.require_manage(added_by, community)
    membership, _ = Membership.objects.get_or_create(user=user, community=community)
    if membership.role != MembershipRole.MANAGER:
        membership.role = MembershipRole.MANAGER
        membership.save(update_fields=["role"])
        audit_record(
            kind="membership.role_changed",
            actor=added_by,
            community=community,
            membership=membership.pk,
            role=MembershipRole.MANAGER,
        )
    if not user.is_staff:
        # Managers work in the admin, which is scoped to their own communities.
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return membership_approve(membership=membership, decided_by=added_by)


def meter_point_check_values(
    *,
    label: str,
    import_capacity_kw: Decimal,
    export_capacity_kw: Decimal,
    pv_kwp: Decimal,
    battery_kwh: Decimal,
    battery_kw: Decimal,
    flexible_load_kw: Decimal,
) -> None:
    if not label.strip():
        raise ApplicationError(ErrorCode.REQUIRED, "Give the meter point a label.", field="label")
    for field, value in (
        ("import_capacity_kw", import_capacity_kw),
        ("export_capacity_kw", export_capacity_kw),
    ):
        if value <= 0:
            raise ApplicationError(
                ErrorCode.OUT_OF_RANGE, "Capacity must be greater than 0 kW.", field=field
            )
    for field, value in (
        ("pv_kwp", pv_kwp),
        ("battery_kwh", battery_kwh),
        ("battery_kw", battery_kw),
        ("flexible_load_kw", flexible_load_kw),
    ):
        if value < 0:
            raise ApplicationError(ErrorCode.OUT_OF_RANGE, "Must not be negative.", field=field)


def meter_point_register(
    *,
    membership: Membership,
    label: str,
    import_capacity_kw: Decimal,
    export_capacity_kw: Decimal,
    pv_kwp: Decimal = Decimal("0"),
    battery_kwh: Decimal = Decimal("0"),
    battery_kw: Decimal = Decimal("0"),
    flexible_load_kw: Decimal = Decimal("0"),
    registered_by: User | None = None,
) -> MeterPoint:
    """A member registers a grid connection; the manager maps it to a bus afterwards."""
    if registered_by is not None and registered_by.pk != membership.user_id:
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED,
            "You can register meter points only for your own membership.",
            field="membership",
        )
    if membership.status != MembershipStatus.APPROVED:
        raise ApplicationError(
            ErrorCode.NOT_APPROVED,
            "Only approved members can register meter points.",
            field="membership",
        )
    meter_point_check_values(
        label=label,
        import_capacity_kw=import_capacity_kw,
        export_capacity_kw=export_capacity_kw,
        pv_kwp=pv_kwp,
        battery_kwh=battery_kwh,
        battery_kw=battery_kw,
        flexible_load_kw=flexible_load_kw,
    )
    with transaction.atomic():
        meter_point = MeterPoint.objects.create(
            membership=membership,
            label=label.strip(),
            import_capacity_kw=import_capacity_kw,
            export_capacity_kw=export_capacity_kw,
            pv_kwp=pv_kwp,
            battery_kwh=battery_kwh,
            battery_kw=battery_kw,
            flexible_load_kw=flexible_load_kw,
        )
        audit_record(
            kind="meter_point.registered",
            actor=registered_by,
            community=membership.community,
            meter_point=meter_point.pk,
        )
    return meter_point


METER_POINT_EDITABLE = (
    "label",
    "import_capacity_kw",
    "export_capacity_kw",
    "pv_kwp",
    "battery_kwh",
    "battery_kw",
    "flexible_load_kw",
)


@transaction.atomic
def meter_point_update(
    *, meter_point: MeterPoint, updated_by: User | None, **changes: Any
) -> MeterPoint:
    """The member (or the community's manager) changes a meter point's label, capacity or assets.

    The bus is not among the fields: only `meter_point_assign_bus` sets it.
    """
    unknown = set(changes) - set(METER_POINT_EDITABLE)
    if unknown:
        raise ApplicationError(
            ErrorCode.INVALID, f"Cannot change {', '.join(sorted(unknown))}.", field=None
        )
    meter_point = MeterPoint.objects.select_related("membership__community").get(pk=meter_point.pk)
    community = meter_point.membership.community
    if (
        updated_by is not None
        and updated_by.pk != meter_point.membership.user_id
        and not permissions.can_manage(updated_by, community)
    ):
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED, "This is not your meter point.", field="meter_point"
        )
    values = {field: getattr(meter_point, field) for field in METER_POINT_EDITABLE}
    values.update(changes)
    meter_point_check_values(**values)
    values["label"] = values["label"].strip()
    changed = [
        field for field in METER_POINT_EDITABLE if getattr(meter_point, field) != values[field]
    ]
    for field in changed:
        setattr(meter_point, field, values[field])
    if changed:
        meter_point.save(update_fields=changed)
        audit_record(
            kind="meter_point.updated",
            actor=updated_by,
            community=community,
            meter_point=meter_point.pk,
            fields=changed,
        )
    return meter_point


def check_bus(*, community: Community, bus: int) -> None:
    """Raise unless the bus is a connection bus of the community's grid model (forms use it)."""
    from grid.models import GridModel  # grid depends on accounts' models, not the reverse

    grid_model = GridModel.objects.filter(community=community).first()
    if grid_model is None:
        raise ApplicationError(
            ErrorCode.INVALID_NETWORK, "The community has no grid model yet.", field="bus"
        )
    if bus not in grid_model.connection_buses:
        raise ApplicationError(
            ErrorCode.UNKNOWN_BUS,
            f"Bus {bus} is not a connection bus of the community's grid model.",
            field="bus",
        )


@transaction.atomic
def meter_point_assign_bus(
    *, meter_point: MeterPoint, bus: int, assigned_by: User | None
) -> MeterPoint:
    """The manager connects a meter point to a bus of the community's grid model."""
    community = meter_point.membership.community
    if assigned_by is not None:
        permissions.require_manage(assigned_by, community)
    check_bus(community=community, bus=bus)
    meter_point.bus = bus
    meter_point.save(update_fields=["bus"])
    audit_record(
        kind="meter_point.bus_assigned",
        actor=assigned_by,
        community=community,
        meter_point=meter_point.pk,
        bus=bus,
    )
    return meter_point


# --- Users ------------------------------------------------------------------------------------
def user_sign_up(*, email: str, password: str, display_name: str = "") -> User:
    """Create a user who signs in with their email address; the password must pass the
    project's validators."""
    email = User.objects.normalize_email(email.strip()).lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ApplicationError(
            ErrorCode.INVALID, "Enter a valid email address.", field="email"
        ) from exc
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError(
            ErrorCode.DUPLICATE, "An account with this email address already exists.", field="email"
        )
    candidate = User(email=email, display_name=display_name.strip())
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        raise ApplicationError(ErrorCode.INVALID, " ".join(exc.messages), field="password") from exc
    try:
        with transaction.atomic():
            user = User.objects.create_user(email, password, display_name=display_name.strip())
            audit_record(kind="user.signed_up", actor=user)
    except IntegrityError as exc:  # a concurrent sign-up with the same address won the race
        raise ApplicationError(
            ErrorCode.DUPLICATE, "An account with this email address already exists.", field="email"
        ) from exc
    return user


# --- Membership decisions ---------------------------------------------------------------------
def _require_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ApplicationError(ErrorCode.REQUIRED, "Give a reason.", field="reason")
    return reason


def _membership_transition(
    *,
    membership: Membership,
    decided_by: User | None,
    allowed_from: Iterable[MembershipStatus],
    to: MembershipStatus,
    reason: str,
    kind: str,
) -> Membership:
    membership = (
        Membership.objects.select_for_update().select_related("community").get(pk=membership.pk)
    )
    if decided_by is not None:
        permissions.require_manage(decided_by, membership.community)
        if decided_by.pk == membership.user_id:
            raise ApplicationError(
                ErrorCode.INVALID_STATE, "You cannot decide on your own membership.", field="status"
            )
    allowed = tuple(allowed_from)
    if membership.status not in allowed:
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            f"A membership that is {membership.get_status_display().lower()} cannot be "
            f"changed to {to.label.lower()}.",
            field="status",
        )
    previous = membership.status
    membership.status = to
    membership.status_reason = reason
    membership.decided_at = timezone.now()
    membership.save(update_fields=["status", "status_reason", "decided_at"])
    audit_record(
        kind=kind,
        actor=decided_by,
        community=membership.community,
        membership=membership.pk,
        previous_status=previous,
        reason=reason,
    )
    return membership


@transaction.atomic
def membership_reject(
    *, membership: Membership, decided_by: User | None, reason: str
) -> Membership:
    """Turn down a pending request; the reason is logged and shown to the applicant."""
    return _membership_transition(
        membership=membership,
        decided_by=decided_by,
        allowed_from=(MembershipStatus.PENDING,),
        to=MembershipStatus.REJECTED,
        reason=_require_reason(reason),
        kind="membership.rejected",
    )


@transaction.atomic
def membership_suspend(
    *, membership: Membership, decided_by: User | None, reason: str
) -> Membership:
    """Stop an approved member from trading; they keep read access to their history."""
    return _membership_transition(
        membership=membership,
        decided_by=decided_by,
        allowed_from=(MembershipStatus.APPROVED,),
        to=MembershipStatus.SUSPENDED,
        reason=_require_reason(reason),
        kind="membership.suspended",
    )


@transaction.atomic
def membership_reinstate(
    *, membership: Membership, decided_by: User | None, reason: str = ""
) -> Membership:
    """Let a suspended member trade again (same pseudonym)."""
    return _membership_transition(
        membership=membership,
        decided_by=decided_by,
        allowed_from=(MembershipStatus.SUSPENDED,),
        to=MembershipStatus.APPROVED,
        reason=reason.strip(),
        kind="membership.reinstated",
    )


# --- API tokens -------------------------------------------------------------------------------
def _check_scopes(*, user: User, scopes: Iterable[str]) -> list[str]:
    requested = sorted(set(scopes))
    if not requested:
        raise ApplicationError(ErrorCode.REQUIRED, "Choose at least one scope.", field="scopes")
    unknown = [scope for scope in requested if scope not in TokenScope.values]
    if unknown:
        raise ApplicationError(
            ErrorCode.INVALID,
            f"Unknown scope {', '.join(unknown)}; choose from {', '.join(TokenScope.values)}.",
            field="scopes",
        )
    if TokenScope.MANAGE in requested and not permissions.manages_any_community(user):
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED,
            "The 'manage' scope is only for community managers.",
            field="scopes",
        )
    return requested


def api_token_create(
    *,
    user: User,
    name: str,
    scopes: Iterable[str],
    expires_at: dt.datetime | None = None,
    created_by: User | None = None,
) -> tuple[ApiToken, str]:
    """Create a personal access token; returns it with the plaintext, which is never stored."""
    name = name.strip()
    if not name:
        raise ApplicationError(ErrorCode.REQUIRED, "Give the token a name.", field="name")
    if not user.is_active:
        raise ApplicationError(ErrorCode.INVALID, "The user is not active.", field="user")
    checked = _check_scopes(user=user, scopes=scopes)
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
        )
        audit_record(
            kind="api_token.created",
            actor=created_by or user,
            token=token.pk,
            owner=user.pk,
            scopes=checked,
            name=name,
        )
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken, revoked_by: User | None) -> ApiToken:
    """Revoke a token at once; revoking twice is harmless."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if (
        revoked_by is not None
        and revoked_by.pk != token.user_id
        and not permissions.is_superuser(revoked_by)
    ):
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


# --- Global roles -----------------------------------------------------------------------------
def _set_regulator(*, user: User, value: bool, changed_by: User | None) -> User:
    if changed_by is not None:
        permissions.require_superuser(changed_by)
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_regulator != value:
        user.is_regulator = value
        user.save(update_fields=["is_regulator"])
        audit_record(
            kind="user.regulator_granted" if value else "user.regulator_revoked",
            actor=changed_by,
            user=user.pk,
        )
    return user


@transaction.atomic
def regulator_grant(*, user: User, granted_by: User | None) -> User:
    """Give a user the global read-only regulator role (operators only)."""
    return _set_regulator(user=user, value=True, changed_by=granted_by)


@transaction.atomic
def regulator_revoke(*, user: User, revoked_by: User | None) -> User:
    return _set_regulator(user=user, value=False, changed_by=revoked_by)


def sign_in_failure_record(*, email: str, ip_address: str | None, reason: str) -> None:
    """Audit a failed sign-in; the email is what was typed, the user may not exist."""
    actor = User.objects.filter(email__iexact=email).first() if email else None
    with transaction.atomic():
        audit_record(
            kind="auth.sign_in_failed",
            actor=actor,
            ip_address=ip_address,
            email=email[:254],
            reason=reason,
        )
