"""Signal receivers, for the audit log only: failed sign-ins from any form (pages and admin)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.services import sign_in_failure_record


@receiver(user_login_failed)
def audit_sign_in_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    email = str(credentials.get("username") or credentials.get("email") or "")
    ip_address = request.META.get("REMOTE_ADDR") if request is not None else None
    sign_in_failure_record(email=email, ip_address=ip_address, reason="bad_credentials")
