"""Writes for accounts: communities, memberships and meter points. One transaction each."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import (
    AuditEvent,
    Membership,
    MembershipRole,
    MembershipStatus,
    MeterPoint,
    User,
)
from config.errors import ApplicationError, ErrorCode
from marketplace.models import Community

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
    """A user asks to join a community as a prosumer; a manager decides later."""
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
) -> MeterPoint:
    """A member registers a grid connection; the manager maps it to a bus afterwards."""
    if membership.status != MembershipStatus.APPROVED:
        raise ApplicationError(
            ErrorCode.NOT_APPROVED,
            "Only approved members can register meter points.",
            field="membership",
        )
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
    with transaction.atomic():
        return MeterPoint.objects.create(
            membership=membership,
            label=label.strip(),
            import_capacity_kw=import_capacity_kw,
            export_capacity_kw=export_capacity_kw,
            pv_kwp=pv_kwp,
            battery_kwh=battery_kwh,
            battery_kw=battery_kw,
            flexible_load_kw=flexible_load_kw,
        )


@transaction.atomic
def meter_point_assign_bus(
    *, meter_point: MeterPoint, bus: int, assigned_by: User | None
) -> MeterPoint:
    """The manager connects a meter point to a bus of the community's grid model."""
    from grid.models import GridModel  # grid depends on accounts' models, not the reverse

    community = meter_point.membership.community
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
