"""Meter readings, settlements and the hash-chained double-entry ledger.

The ledger is one global chain: every entry's hash covers its content and the hash of the entry
before it (by ``sequence``), whatever the community, so a single walk proves the whole history.
Entries and transactions are append-only: the application never updates or deletes them, and on
PostgreSQL a trigger refuses it (see migration 0002). Amounts are positive when money flows to
the account's holder and negative when the holder pays, so every balance is a plain sum.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from marketplace.models import energy_field, price_field
from units import CENT, MONEY_DIGITS, places

GENESIS_HASH = "0" * 64


def money_field(**options: Any) -> models.DecimalField:
    """Money in the community's currency, to the minor unit (cents)."""
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=places(CENT), **options)


class ReadingSource(models.TextChoices):
    API = "api", "API"
    CSV = "csv", "CSV upload"
    SIMULATED = "simulated", "Simulated (demo)"


class ReadingStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    FLAGGED = "flagged", "Flagged: awaits a manager"


class MeterReading(models.Model):
    """What a meter point imported and exported in one interval.

    A correction is a new version that names the one it supersedes; old versions stay, so a
    settlement can always say which reading it used. A reading the plausibility checks flag
    (a jump against the meter's history) is kept but settles nothing until a manager accepts it.
    """

    meter_point = models.ForeignKey(
        "accounts.MeterPoint", on_delete=models.PROTECT, related_name="readings"
    )
    interval = models.ForeignKey(
        "marketplace.Interval", on_delete=models.PROTECT, related_name="readings"
    )
    imported_kwh = energy_field()
    exported_kwh = energy_field()
    source = models.CharField(max_length=10, choices=ReadingSource.choices)
    received_at = models.DateTimeField(default=now)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.PositiveIntegerField(default=1)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    status = models.CharField(
        max_length=10,
        choices=ReadingStatus.choices,
        default=ReadingStatus.ACCEPTED,
        db_default=ReadingStatus.ACCEPTED,
    )
    flag_reason = models.CharField(max_length=300, blank=True, db_default="")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("interval", "meter_point", "version")
        constraints = [
            models.UniqueConstraint(
                fields=["meter_point", "interval", "version"], name="one_reading_per_version"
            ),
            models.CheckConstraint(
                condition=models.Q(imported_kwh__gte=0) & models.Q(exported_kwh__gte=0),
                name="reading_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"reading v{self.version} of {self.meter_point_id} in {self.interval_id}"

    @property
    def net_import_kwh(self) -> Decimal:
        return self.imported_kwh - self.exported_kwh


class AccountKind(models.TextChoices):
    MEMBER = "member", "Member"
    GRID = "grid", "Community grid account"
    FEE = "fee", "Community fee account"
    LOSSES = "losses", "Community losses account"
    REGION = "region", "Community region account (owed by or to the region's communities)"


class LedgerAccount(models.Model):
    """A member's account, or the community's grid, fee or losses account."""

    community = models.ForeignKey(
        "marketplace.Community", on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    kind = models.CharField(max_length=8, choices=AccountKind.choices)
    membership = models.OneToOneField(
        "accounts.Membership",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_account",
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ("community", "kind", "pk")
        constraints = [
            models.UniqueConstraint(
                fields=["community", "kind"],
                condition=~models.Q(kind="member"),
                name="one_grid_and_fee_account_per_community",
            ),
            models.CheckConstraint(
                condition=(models.Q(kind="member") & models.Q(membership__isnull=False))
                | (~models.Q(kind="member") & models.Q(membership__isnull=True)),
                name="member_accounts_have_a_membership",
            ),
        ]

    def __str__(self) -> str:
        if self.kind == AccountKind.MEMBER:
            return f"member account {self.membership_id}"
        return f"{self.get_kind_display()} of {self.community_id}"


class TransactionKind(models.TextChoices):
    SETTLEMENT = "settlement", "Interval settlement"
    ADJUSTMENT = "adjustment", "Late-reading adjustment"
    MANUAL = "manual", "Manual posting"


class LedgerTransaction(models.Model):
    """A balanced movement of money; ``key`` makes a retried posting unable to book twice."""

    community = models.ForeignKey(
        "marketplace.Community", on_delete=models.PROTECT, related_name="ledger_transactions"
    )
    key = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=12, choices=TransactionKind.choices)
    interval = models.ForeignKey(
        "marketplace.Interval",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_transactions",
    )
    memo = models.CharField(max_length=300, blank=True)
    posted_at = models.DateTimeField(default=now, db_index=True)
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("pk",)

    def __str__(self) -> str:
        return self.key


class EntryKind(models.TextChoices):
    PEER_PURCHASE = "peer_purchase", "Energy bought from a member"
    PEER_SALE = "peer_sale", "Energy sold to a member"
    GRID_PURCHASE = "grid_purchase", "Energy bought from the grid"
    GRID_SALE = "grid_sale", "Energy sold to the grid"
    SPREAD = "spread", "Price spread kept by the community (trade reduction)"
    FEE = "fee", "Community fee"
    NETWORK_CHARGE = "network_charge", "Network charge by use of the network"
    LOSSES = "losses", "Share of the network losses"
    IMBALANCE_IMPORT = "imbalance_import", "Shortfall bought from the grid at retail"
    IMBALANCE_EXPORT = "imbalance_export", "Surplus sold to the grid at feed-in"
    REGION_TRADE = "region_trade", "Energy traded with another community of the region"
    REGION_SHARE = "region_share", "Share of the region price against the grid tariff"
    ROUNDING = "rounding", "Rounding to the minor unit"
    MANUAL = "manual", "Manual"


class LedgerEntry(models.Model):
    """One line of a transaction on one account; never changed once written."""

    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    # Position in the global chain; contiguous, so a deleted entry leaves a visible gap.
    sequence = models.PositiveBigIntegerField(unique=True)
    kind = models.CharField(max_length=20, choices=EntryKind.choices)
    amount = money_field()
    # Energy behind the amount and the price used, for statements; null for rounding lines.
    energy_kwh = energy_field(null=True, blank=True)
    price_per_kwh = price_field(null=True, blank=True)
    interval = models.ForeignKey(
        "marketplace.Interval", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    memo = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=now)
    # Unique (Meta.constraints): two entries can never claim the same predecessor, so the chain
    # cannot fork.
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ("sequence",)
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["account", "interval"])]
        # As constraints rather than unique=True: on PostgreSQL a unique CharField also gets a
        # second (pattern) index for LIKE, which no one runs on a hash and which every entry
        # written paid for twice (a sixth of a settlement's database time).
        constraints = [
            models.UniqueConstraint(fields=["prev_hash"], name="ledger_entry_prev_hash_unique"),
            models.UniqueConstraint(fields=["hash"], name="ledger_entry_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.kind} {self.amount}"


class Settlement(models.Model):
    """How one member's interval was settled: metered energy against confirmed trades.

    The money is in the ledger; this row is the energy summary behind it. A late reading updates
    ``reading_version``/``estimated`` here and books an adjustment transaction in the ledger.
    """

    interval = models.ForeignKey(
        "marketplace.Interval", on_delete=models.PROTECT, related_name="settlements"
    )
    membership = models.ForeignKey(
        "accounts.Membership", on_delete=models.PROTECT, related_name="settlements"
    )
    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="settlements"
    )
    confirmed_bought_kwh = energy_field()
    confirmed_sold_kwh = energy_field()
    metered_import_kwh = energy_field()
    metered_export_kwh = energy_field()
    imbalance_kwh = energy_field(help_text="Metered net import minus confirmed net import.")
    estimated = models.BooleanField(
        default=False,
        help_text="Some of the member's readings were missing when the settlement window "
        "passed; the confirmed schedule stood in for them.",
    )
    settled_at = models.DateTimeField(default=now)
    adjusted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("interval", "membership")
        constraints = [
            models.UniqueConstraint(
                fields=["interval", "membership"], name="one_settlement_per_member_and_interval"
            ),
        ]

    def __str__(self) -> str:
        return f"settlement of {self.membership_id} in {self.interval_id}"


class LedgerCheckpoint(models.Model):
    """The chain's head, count and credit total after a posting, signed with the ledger key.

    Written in the posting's transaction and, once it commits, appended to the checkpoint file
    (``marketplace/ledger/checkpoints.py``). Deliberately not linked to the entries by a foreign
    key: it must survive their deletion to testify about it. On PostgreSQL triggers refuse
    UPDATE, DELETE and TRUNCATE here, as on the entries (migration 0003).
    """

    at = models.DateTimeField(default=now)
    head_sequence = models.PositiveBigIntegerField(unique=True)
    head_hash = models.CharField(max_length=64)
    entry_count = models.PositiveBigIntegerField()
    credit_total = money_field()
    mac = models.CharField(max_length=64)

    class Meta:
        ordering = ("-head_sequence",)
        get_latest_by = "head_sequence"

    def __str__(self) -> str:
        return f"checkpoint at #{self.head_sequence}"


class LedgerProblem(models.TextChoices):
    EDITED = "edited", "An entry was edited"
    LINK_BROKEN = "link_broken", "An entry was removed or inserted"
    FORGED_APPEND = "forged_append", "An entry after the last checkpoint is not signed"
    TAIL_DELETED = "tail_deleted", "Entries up to the last checkpoint are missing"
    TRUNCATED = "truncated", "The ledger is empty but a checkpoint says otherwise"
    REWRITTEN = "rewritten", "The chain does not end where the checkpoint says"
    UNBALANCED = "unbalanced", "A transaction does not sum to zero"
    CHECKPOINT_FORGED = "checkpoint_forged", "A checkpoint is not signed with the ledger key"
    CHECKPOINT_REMOVED = "checkpoint_removed", "Checkpoints were removed from the database"


class LedgerVerification(models.Model):
    """The result of one walk of the hash chain (``verify_ledger``)."""

    at = models.DateTimeField(default=now, db_index=True)
    community = models.ForeignKey(
        "marketplace.Community",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ledger_verifications",
        help_text="Empty when the whole chain was walked.",
    )
    ok = models.BooleanField()
    entries_checked = models.PositiveBigIntegerField(default=0)
    # Plain numbers, not a foreign key: the bad entry is evidence and must not be protected by it.
    first_bad_entry_id = models.PositiveBigIntegerField(null=True, blank=True)
    first_bad_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    problem = models.CharField(max_length=20, choices=LedgerProblem.choices, blank=True)
    # The checkpoint the chain was held against (sequence of its head), if there was one.
    checkpoint_sequence = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ("-at", "-pk")
        get_latest_by = ("at", "pk")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'BROKEN'}"


class ReadingImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"


class ReadingImport(models.Model):
    """A manager's CSV file of meter readings, imported by a worker in chunks with progress.

    The file is kept here so the import runs outside the upload's request (a month of readings
    is tens of thousands of rows) and resumes after a crashed worker: each chunk's readings and
    the counters below commit together, so ``rows_done`` is exactly what was imported.
    """

    community = models.ForeignKey(
        "marketplace.Community", on_delete=models.PROTECT, related_name="reading_imports"
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    file_name = models.CharField(max_length=255, blank=True)
    content = models.TextField()
    status = models.CharField(
        max_length=8, choices=ReadingImportStatus.choices, default=ReadingImportStatus.QUEUED
    )
    rows_total = models.PositiveIntegerField()
    rows_done = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    adjustments = models.PositiveIntegerField(default=0)
    # The first refused rows with their line, code and reason (the counts cover them all).
    refused_rows = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return f"{self.file_name or 'readings.csv'}: {self.rows_done}/{self.rows_total} rows"

    @property
    def percent_done(self) -> int:
        return 100 if not self.rows_total else self.rows_done * 100 // self.rows_total
