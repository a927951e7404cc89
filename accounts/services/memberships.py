"""Writes for memberships: requests, decisions (approve, reject, suspend, reinstate) and managers.

An actor of `None` means the system itself (seeding, an operator's command) and is not checked.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import permissions
from accounts.models import Membership, MembershipRole, MembershipStatus, User
from accounts.services.audit import audit_record
from config.errors import ApplicationError, ErrorCode
from marketplace.models import Community
from notifications.events import Event, announce

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
    announce(Event.MEMBERSHIP_APPROVED, membership.pk)
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
    announce(Event.MEMBERSHIP_APPROVED, membership.pk)
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
