"""Writes of the audit log: every service appends its event here, inside its own transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import AuditEvent, User
from marketplace.models import Community


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
