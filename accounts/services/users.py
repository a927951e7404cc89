"""Writes for users: making an account and the global regulator role."""

from __future__ import annotations

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from accounts import permissions
from accounts.models import User
from accounts.services.audit import audit_record
from config.errors import ApplicationError, ErrorCode


def email_normalised(email: str) -> str:
    """The address as accounts store it (trimmed, lower case), or a field error if it is none."""
    email = User.objects.normalize_email(email.strip()).lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ApplicationError(
            ErrorCode.INVALID_EMAIL, "Enter a valid email address.", field="email"
        ) from exc
    return email


def user_create(*, email: str, password: str, display_name: str = "") -> User:
    """Create a user who signs in with their email address; the password must pass the
    project's validators.

    The sign-up pages call it only once the address is confirmed (``accounts.services.sign_up``),
    so its "already exists" answer only ever reaches the address's owner.
    """
    email = email_normalised(email)
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError(
            ErrorCode.DUPLICATE, "An account with this email address already exists.", field="email"
        )
    candidate = User(email=email, display_name=display_name.strip())
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        raise ApplicationError(
            ErrorCode.WEAK_PASSWORD, " ".join(exc.messages), field="password"
        ) from exc
    try:
        with transaction.atomic():
            user = User.objects.create_user(email, password, display_name=display_name.strip())
            audit_record(kind="user.signed_up", actor=user)
    except IntegrityError as exc:  # a concurrent sign-up with the same address won the race
        raise ApplicationError(
            ErrorCode.DUPLICATE, "An account with this email address already exists.", field="email"
        ) from exc
    return user


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
