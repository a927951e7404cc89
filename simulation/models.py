"""What the simulation stores: scenario runs and the demo's own robot households."""

from __future__ import annotations

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

    The demo's agents post only for these; anyone else who joins the demo community trades by
    hand.
    """

    meter_point = models.OneToOneField(
        "accounts.MeterPoint", on_delete=models.CASCADE, related_name="simulated_household"
    )
    assets = models.JSONField(default=dict, help_text="Asset limits (see simulation.assets).")
    strategy = models.CharField(max_length=20, default="truthful")

    def __str__(self) -> str:
        return f"robot household {self.meter_point_id}"
