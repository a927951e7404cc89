"""Users, their memberships in communities, meter points, API tokens and the audit log."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from units import KW, KW_DIGITS, places


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person; the email address is the login."""

    email = models.EmailField(unique=True)
    display_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(
        default=False, help_text="May sign in to the admin (community managers and operators)."
    )
    is_regulator = models.BooleanField(
        default=False,
        help_text="Global read-only access to all communities' anonymised market data.",
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ("email",)

    def __str__(self) -> str:
        return self.email


class MembershipRole(models.TextChoices):
    PROSUMER = "prosumer", "Prosumer"
    MANAGER = "manager", "Community manager"


class MembershipStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUSPENDED = "suspended", "Suspended"


class Membership(models.Model):
    """A user's place in one community; the pseudonym is all other members ever see."""

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="memberships")
    community = models.ForeignKey(
        "marketplace.Community", on_delete=models.PROTECT, related_name="memberships"
    )
    role = models.CharField(
        max_length=16, choices=MembershipRole.choices, default=MembershipRole.PROSUMER
    )
    status = models.CharField(
        max_length=16, choices=MembershipStatus.choices, default=MembershipStatus.PENDING
    )
    pseudonym = models.CharField(max_length=40, blank=True)
    status_reason = models.CharField(max_length=500, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("community", "pseudonym", "pk")
        constraints = [
            models.UniqueConstraint(fields=["user", "community"], name="one_membership_per_user"),
            models.UniqueConstraint(
                fields=["community", "pseudonym"],
                condition=~models.Q(pseudonym=""),
                name="unique_pseudonym_per_community",
            ),
        ]

    def __str__(self) -> str:
        who = self.pseudonym or "pending member"
        if Membership.community.is_cached(self):
            return f"{who} in {self.community.name}"
        return f"{who} in community {self.community_id}"

    @property
    def is_approved(self) -> bool:
        return self.status == MembershipStatus.APPROVED

    @property
    def is_manager(self) -> bool:
        return self.role == MembershipRole.MANAGER and self.is_approved


NON_NEGATIVE = [MinValueValidator(Decimal("0"))]


def power_field(**options: Any) -> models.DecimalField:
    """Power in kW (or energy in kWh for storage), to the watt."""
    return models.DecimalField(max_digits=KW_DIGITS, decimal_places=places(KW), **options)


class MeterPointStatus(models.TextChoices):
    PENDING = "pending", "Awaiting the manager's approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class MeterPoint(models.Model):
    """A prosumer's connection to the grid, with its physical capacity and assets.

    The member declares it; it trades and settles only once the community's manager has
    approved it with its capacities and its place on the network (``status``).
    """

    membership = models.ForeignKey(
        Membership, on_delete=models.PROTECT, related_name="meter_points"
    )
    label = models.CharField(max_length=100)
    import_capacity_kw = power_field(validators=[MinValueValidator(Decimal("0.001"))])
    export_capacity_kw = power_field(validators=[MinValueValidator(Decimal("0.001"))])
    pv_kwp = power_field(default=Decimal("0"), validators=NON_NEGATIVE)
    battery_kwh = power_field(default=Decimal("0"), validators=NON_NEGATIVE)
    battery_kw = power_field(default=Decimal("0"), validators=NON_NEGATIVE)
    flexible_load_kw = power_field(default=Decimal("0"), validators=NON_NEGATIVE)
    # Index of the bus in the community's pandapower network; set by the community manager.
    bus = models.PositiveIntegerField(null=True, blank=True)
    # The network elements this meter point stands for, e.g. ["load 3", "sgen 1"]; empty: an
    # equal share of its bus's loads and generators with the other meter points there.
    network_elements = models.JSONField(default=list, blank=True)
    power_factor = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("1.000"),
        validators=[MinValueValidator(Decimal("0.500")), MaxValueValidator(Decimal("1.000"))],
        help_text="Of the meter point's net power; reactive power is drawn (lagging).",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # A member's declaration proves nothing: the manager confirms the connection's capacities
    # (the grid operator's connection agreement) and its bus before it may trade.
    status = models.CharField(
        max_length=10,
        choices=MeterPointStatus.choices,
        default=MeterPointStatus.PENDING,
        db_default=MeterPointStatus.PENDING,
    )
    status_reason = models.CharField(max_length=500, blank=True, db_default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("membership", "label")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(import_capacity_kw__gt=0) & models.Q(export_capacity_kw__gt=0),
                name="meter_point_capacity_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def is_approved(self) -> bool:
        return self.status == MeterPointStatus.APPROVED


class TokenScope(models.TextChoices):
    READ = "read", "Read market data and my own data"
    TRADE = "trade", "Post orders and bids, accept and cancel"
    METER = "meter", "Register and read my meter points"
    METER_DATA = "meter_data", "Send a community's meter readings (its metering operator)"
    MANAGE = "manage", "Manage my communities (managers only)"


class ApiToken(models.Model):
    """A personal access token; only its SHA-256 digest is stored, the token is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    # The community whose meter readings a ``meter_data`` token sends (its manager issued it
    # for the metering operator's meter data service); null for every other token.
    community = models.ForeignKey(
        "marketplace.Community",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="meter_data_tokens",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditEvent(models.Model):
    """An append-only record of a security-relevant event."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    community = models.ForeignKey(
        "marketplace.Community",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    kind = models.CharField(max_length=64, db_index=True)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ("-at", "-pk")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}"


class SignUpRequest(models.Model):
    """A sign-up waiting for its address to be confirmed.

    The sign-up form takes only an address, so it stores nothing secret and answers the same
    whether the address has an account; the account (name, password) is made from the mailed
    link by whoever controls the address. Used once (``confirmed_at``, and ``user`` the account
    it made), expiring with the link. A sign-up for an address that had an account already is
    recorded too (``user`` that account, never confirmed), so both cases write the same rows.
    """

    email = models.EmailField()
    requested_at = models.DateTimeField(default=timezone.now, db_index=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("-requested_at", "-pk")

    def __str__(self) -> str:
        return f"sign-up of {self.email} at {self.requested_at:%Y-%m-%d %H:%M}"


class RateCounter(models.Model):
    """A counter with an expiry, for the sign-in and password-reset limits (``accounts.signin``).

    In the database, not the cache: each attempt is one ``INSERT ... ON CONFLICT DO UPDATE SET
    count = count + 1 ... RETURNING count``, atomic on PostgreSQL and SQLite alike, which the
    embedded file cache's read-modify-write ``incr`` is not. A lock is a row whose
    ``expires_at`` is its end. Times are seconds since the epoch, the throttle's own clock.
    """

    key = models.CharField(max_length=100, unique=True)
    count = models.IntegerField(default=0)
    expires_at = models.FloatField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key} = {self.count}"
