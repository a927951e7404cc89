"""Sign-up by confirmed address: the form tells nobody whether an address has an account.

The sign-up form takes only an email address, and every valid one gets the same page and
the same work (a sign-up row and an audit row written, one mail rendered and sent after
commit), so neither the answer nor its time tells. The mail
differs: a new address gets a signed, expiring, single-use link to make its account (its name
and password are chosen there, by whoever controls the address, so nothing secret is stored
before that and nobody can pre-register someone else's address with a password they know); an
address that has an account gets a mail saying someone tried to sign up with it, with the links
to sign in and to reset the password. Only the confirmation page, which only the address's
owner can open, may say that an account exists.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts import signin
from accounts.models import SignUpRequest, User
from accounts.services.audit import audit_record
from accounts.services.users import email_normalised, user_create
from config.errors import ApplicationError, ErrorCode

logger = logging.getLogger(__name__)

SIGN_UP_LINK_MAX_AGE = dt.timedelta(hours=24)
# The signature's purpose: a sign-up link is not valid as any other signed value of the site.
_SALT = "accounts.sign-up-link"


def _absolute(path: str) -> str:
    return f"{settings.PEERGRID_BASE_URL.rstrip('/')}{path}"


def sign_up_link(request: SignUpRequest) -> str:
    """The confirmation link's path: the request's id, signed with a timestamp."""
    token = signing.dumps({"r": request.pk}, salt=_SALT)
    return reverse("accounts:signup_confirm", args=[token])


def _mail(template: str, context: dict[str, Any]) -> tuple[str, str]:
    subject = render_to_string(f"registration/{template}_subject.txt", context)
    body = render_to_string(f"registration/{template}_email.txt", context)
    return " ".join(subject.split()), body


def _send(*, to: str, subject: str, body: str) -> None:
    try:
        send_mail(subject, body, None, [to])
    except Exception:  # the mail server's trouble; the page must not tell which branch ran
        logger.exception("The sign-up mail could not be sent")


def sign_up_request(*, email: str, ip_address: str | None) -> None:
    """Mail whoever controls ``email``: a link to make their account, or, if the address has
    an account already, a note that someone tried to sign up with it.

    Raises only for an address that is not one (the same for every caller). Over the hourly
    limit of mails per address or IP (``accounts.signin``) it sends nothing, silently.
    """
    email = email_normalised(email)
    if not signin.sign_up_mail_allowed(email=email, ip_address=ip_address):
        return
    now = timezone.now()
    with transaction.atomic():
        # Requests older than their link can never be used; keep the table small.
        SignUpRequest.objects.filter(requested_at__lt=now - SIGN_UP_LINK_MAX_AGE).delete()
        user = User.objects.filter(email__iexact=email).first()
        hours = int(SIGN_UP_LINK_MAX_AGE.total_seconds() // 3600)
        # Both branches write the same rows, so the time taken does not tell them apart: the
        # sign-up (for an address with an account it records the attempt, with that account,
        # and no link to it is ever sent) and an audit event.
        pending = SignUpRequest.objects.create(email=email, requested_at=now, user=user)
        if user is None:
            audit_record(kind="user.sign_up_requested", ip_address=ip_address, email=email)
            subject, body = _mail(
                "sign_up_confirm", {"link": _absolute(sign_up_link(pending)), "hours": hours}
            )
        else:
            audit_record(kind="user.sign_up_existing", actor=user, ip_address=ip_address)
            can_reset = user.is_active and user.has_usable_password()
            uid = urlsafe_base64_encode(force_bytes(user.pk))
            token = default_token_generator.make_token(user)
            reset = reverse("accounts:password_reset_confirm", args=[uid, token])
            subject, body = _mail(
                "sign_up_existing",
                {
                    "login": _absolute(reverse("accounts:login")),
                    "reset": _absolute(reset) if can_reset else "",
                    "reset_days": settings.PASSWORD_RESET_TIMEOUT // 86400,
                    "active": user.is_active,
                },
            )
        transaction.on_commit(lambda: _send(to=email, subject=subject, body=body))


def sign_up_link_check(*, token: str) -> SignUpRequest:
    """The sign-up a confirmation link stands for, if it may still make an account.

    Refused, each with its own code and a message for the page: a link that is not ours
    (tampered, cut off), one past its 24 hours, one already used, and an address that has an
    account by now (only the address's owner has the link, so saying so tells nobody else).
    """
    try:
        payload = signing.loads(token, salt=_SALT, max_age=SIGN_UP_LINK_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise ApplicationError(
            ErrorCode.LINK_EXPIRED,
            "This link has expired: a sign-up link works for 24 hours. Sign up again for a "
            "new one.",
        ) from exc
    except signing.BadSignature as exc:
        raise ApplicationError(
            ErrorCode.LINK_INVALID,
            "This link is not valid. Copy it whole from the mail, or sign up again for a new one.",
        ) from exc
    request_id = payload.get("r") if isinstance(payload, dict) else None
    request = (
        SignUpRequest.objects.filter(pk=request_id).first() if isinstance(request_id, int) else None
    )
    if request is None:
        raise ApplicationError(
            ErrorCode.LINK_INVALID, "This link is not valid any more. Sign up again for a new one."
        )
    if request.confirmed_at is not None:
        raise ApplicationError(
            ErrorCode.LINK_USED,
            "This link was used already: the account it made is active. Sign in with it.",
        )
    if User.objects.filter(email__iexact=request.email).exists():
        raise ApplicationError(
            ErrorCode.DUPLICATE,
            "This address has an account already. Sign in, or reset the password if you have "
            "forgotten it.",
        )
    return request


def user_sign_up_confirm(*, token: str, password: str, display_name: str = "") -> User:
    """Make the account a confirmation link stands for, with the name and password its
    owner chose; the link is used up."""
    with transaction.atomic():
        request = sign_up_link_check(token=token)
        request = SignUpRequest.objects.select_for_update().get(pk=request.pk)
        if request.confirmed_at is not None:  # confirmed by a parallel request meanwhile
            raise ApplicationError(
                ErrorCode.LINK_USED,
                "This link was used already: the account it made is active. Sign in with it.",
            )
        user = user_create(email=request.email, password=password, display_name=display_name)
        request.confirmed_at = timezone.now()
        request.user = user
        request.save(update_fields=["confirmed_at", "user"])
    return user
