"""Reads of a member's notifications: the bell's count and the list."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from notifications.models import Notification


def notifications_unread_count(*, user: User) -> int:
    return Notification.objects.filter(user=user, shown=True, read_at__isnull=True).count()


def notifications_of(*, user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user, shown=True).order_by("-created_at", "-pk")
