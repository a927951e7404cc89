"""Reads of a member's notifications: the bell's count and the list."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from notifications.models import Notification


def unread_notifications() -> QuerySet[Notification]:
    return Notification.objects.filter(shown=True, read_at__isnull=True)


def notifications_unread_count(*, user: User) -> int:
    return unread_notifications().filter(user=user).count()


def notifications_of(*, user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user, shown=True).order_by("-created_at", "-pk")
