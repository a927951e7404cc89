"""What a member is told (in the app and by e-mail), and which kinds they want."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.timezone import now


class NotificationKind(models.TextChoices):
    MEMBERSHIP_APPROVED = "membership_approved", "My membership is approved"
    METER_POINT_APPROVED = "meter_point_approved", "My meter point is approved"
    BID_RECEIVED = "bid_received", "Someone bids on my posting"
    BID_ACCEPTED = "bid_accepted", "My bid is accepted"
    BID_REJECTED = "bid_rejected", "My bid is rejected"
    TRADE_CURTAILED = "trade_curtailed", "A trade of mine is curtailed by the grid check"
    SETTLEMENT = "settlement", "An interval of mine is settled"
    STATEMENT = "statement", "My monthly statement is ready"


class Notification(models.Model):
    """One message to one user. ``key`` names the event, so a retried task never tells twice."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    key = models.CharField(max_length=120)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=now)
    # False when the member turned the in-app list off for this kind but kept the e-mail.
    shown = models.BooleanField(default=True)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-pk")
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="one_notification_per_event")
        ]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return f"{self.title} (to {self.user})"


class NotificationPreference(models.Model):
    """A member's choice for one kind; without a row, both channels are on."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    in_app = models.BooleanField(default=True)
    email = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="one_preference_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.get_kind_display()}"
