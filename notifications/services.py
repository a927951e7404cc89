"""Delivering notifications (in the app and by e-mail), members' choices, marking them read."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from notifications.events import Event
from notifications.messages import Message, messages_for
from notifications.models import Notification, NotificationKind, NotificationPreference

logger = logging.getLogger(__name__)

# Without a choice of their own a member gets every kind in the app and by e-mail, except a
# mail for every settled interval (one each quarter-hour): that one is in the app only.
DEFAULTS: dict[str, tuple[bool, bool]] = dict.fromkeys(NotificationKind.values, (True, True))
DEFAULTS[NotificationKind.SETTLEMENT] = (True, False)


def notification_preferences(*, user: User) -> dict[str, tuple[bool, bool]]:
    """Every kind with (in the app, by e-mail) for this member."""
    chosen = {p.kind: (p.in_app, p.email) for p in NotificationPreference.objects.filter(user=user)}
    return {kind: chosen.get(kind, DEFAULTS[kind]) for kind in NotificationKind.values}


@transaction.atomic
def notification_preferences_set(*, user: User, choices: Mapping[str, tuple[bool, bool]]) -> None:
    for kind, (in_app, email) in choices.items():
        if kind not in NotificationKind.values:
            continue
        NotificationPreference.objects.update_or_create(
            user=user, kind=kind, defaults={"in_app": in_app, "email": email}
        )


def notifications_mark_read(*, user: User, ids: Iterable[int] | None = None) -> int:
    """Mark the user's unread notifications (all, or those in ``ids``) read; how many."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())


def _absolute(url: str) -> str:
    return settings.PEERGRID_BASE_URL.rstrip("/") + url if url.startswith("/") else url


def notification_deliver(*, message: Message) -> Notification | None:
    """Store and e-mail one message as the member chose; at most once per event and member.

    The row is written first (its unique key is the guard against a second delivery); the
    e-mail follows and its time is recorded, so a retry after a failed send mails again but a
    retry after a good one does not.
    """
    user = User.objects.filter(pk=message.user_id, is_active=True).first()
    if user is None:
        return None
    in_app, email = notification_preferences(user=user)[message.kind]
    if not (in_app or email):
        return None
    try:
        with transaction.atomic():
            notification, _ = Notification.objects.get_or_create(
                user=user,
                key=message.key,
                defaults={
                    "kind": message.kind,
                    "title": message.title,
                    "body": message.body,
                    "url": message.url,
                    "shown": in_app,
                },
            )
    except IntegrityError:  # the same event delivered concurrently: the other one has it
        return Notification.objects.filter(user=user, key=message.key).first()
    if email and notification.emailed_at is None and user.email:
        settings_url = _absolute("/notifications/settings/")
        send_mail(
            subject=f"PeerGrid: {message.title}",
            message=f"{message.body}\n\n{_absolute(message.url)}\n\n"
            f"Choose which messages you get: {settings_url}\n",
            from_email=None,
            recipient_list=[user.email],
        )
        Notification.objects.filter(pk=notification.pk).update(emailed_at=timezone.now())
    return notification


def notification_event_handle(*, event: Event, object_id: int) -> int:
    """Build and deliver every message of one event; how many were delivered."""
    delivered = 0
    for message in messages_for(event, object_id):
        delivered += notification_deliver(message=message) is not None
    logger.info("notifications: %s %s -> %d delivered", event, object_id, delivered)
    return delivered
