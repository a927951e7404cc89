"""What the simulation stores: scenario runs, the robots' own households, members' autopilots."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class SimulationRun(models.Model):
    """One scenario (or one variant of a sweep) run by a worker or the command."""

    name = models.CharField(max_length=100)
    variant = models.CharField(max_length=100, blank=True)
    sweep = models.CharField(max_length=40, blank=True, db_index=True)
    scenario = models.JSONField(help_text="The scenario as parsed from its file.")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    intervals_done = models.PositiveIntegerField(default=0)
    intervals_total = models.PositiveIntegerField(default=0)
    community = models.ForeignKey(
        "marketplace.Community", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    summary = models.JSONField(default=dict, blank=True)
    report_dir = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return f"{self.name} {self.variant}".strip()


class SimulatedHousehold(models.Model):
    """A meter point that belongs to a robot household of the demo (never a real member's).

    The demo's agents post only for these and for meter points whose member switched the
    autopilot on; anyone else who joins the demo community trades only by hand.
    """

    meter_point = models.OneToOneField(
        "accounts.MeterPoint", on_delete=models.CASCADE, related_name="simulated_household"
    )
    assets = models.JSONField(default=dict, help_text="Asset limits (see simulation.assets).")
    strategy = models.CharField(max_length=20, default="truthful")
    state = models.JSONField(default=dict, blank=True, help_text="Battery and tank state.")

    def __str__(self) -> str:
        return f"robot household {self.meter_point_id}"


class Autopilot(models.Model):
    """A member's permission for an agent to post for one of their meter points, within limits."""

    meter_point = models.OneToOneField(
        "accounts.MeterPoint", on_delete=models.CASCADE, related_name="autopilot"
    )
    enabled = models.BooleanField(default=False)
    strategy = models.CharField(max_length=20, default="truthful")
    max_buy_price_per_kwh = models.DecimalField(
        max_digits=8, decimal_places=4, validators=[MinValueValidator(Decimal("0"))]
    )
    min_sell_price_per_kwh = models.DecimalField(
        max_digits=8, decimal_places=4, validators=[MinValueValidator(Decimal("0"))]
    )
    max_kwh_per_interval = models.DecimalField(
        max_digits=10,
        decimal_places=3,
        validators=[MinValueValidator(Decimal("0.001")), MaxValueValidator(Decimal("10000"))],
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"autopilot for meter point {self.meter_point_id}"


class AutopilotPosting(models.Model):
    """A posting the autopilot made, so the member sees what it did and why."""

    autopilot = models.ForeignKey(Autopilot, on_delete=models.CASCADE, related_name="postings")
    posting = models.OneToOneField(
        "marketplace.Posting", on_delete=models.CASCADE, related_name="autopilot_record"
    )
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return f"autopilot posting {self.posting_id}"
