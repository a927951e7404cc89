"""Each community's grid model: a pandapower network stored with where it came from."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class NetworkSource(models.TextChoices):
    REFERENCE = "reference", "Built-in reference network"
    UPLOAD = "upload", "Uploaded pandapower JSON"


class GridModel(models.Model):
    """The network a community's trades are checked against."""

    community = models.OneToOneField(
        "marketplace.Community", on_delete=models.CASCADE, related_name="grid_model"
    )
    source = models.CharField(max_length=10, choices=NetworkSource.choices)
    reference_name = models.CharField(max_length=60, blank=True)
    network_json = models.TextField(help_text="The pandapower network, as pandapower JSON.")
    # Buses prosumers may be connected to, cached so forms need not load the network.
    connection_buses = models.JSONField(default=list, blank=True)
    uploaded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.community} grid ({self.reference_name or self.source})"


class GridCheckResult(models.Model):
    """What the grid check of one interval found and did; written once, by the pipeline step."""

    interval = models.OneToOneField(
        "marketplace.Interval", on_delete=models.CASCADE, related_name="grid_check"
    )
    grid_model = models.ForeignKey(
        GridModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    checked_at = models.DateTimeField(default=timezone.now)
    feasible = models.BooleanField()
    power_flows = models.PositiveIntegerField()
    # Floats on purpose: these are power-flow results, not energy or money. Null when the last
    # power flow did not converge (there is no value to show).
    min_vm_pu = models.FloatField(null=True, blank=True)
    max_vm_pu = models.FloatField(null=True, blank=True)
    max_line_loading_percent = models.FloatField(null=True, blank=True)
    max_trafo_loading_percent = models.FloatField(null=True, blank=True)
    losses_kw = models.FloatField(null=True, blank=True)
    # [{"kind", "element", "value", "limit", "caused_by_trades"}], as found before curtailment.
    violations = models.JSONField(default=list, blank=True)
    # [{"trade", "curtailed_kwh", "reason"}]: what was taken off which trade and why.
    curtailments = models.JSONField(default=list, blank=True)
    trades_checked = models.PositiveIntegerField(default=0)
    scheduled_kwh = models.DecimalField(max_digits=14, decimal_places=3, default=0)
    curtailed_kwh = models.DecimalField(max_digits=14, decimal_places=3, default=0)
    # {"<bus>": vm_pu} and {"<line>": loading_percent} of the final state, for drawing the grid.
    bus_vm_pu = models.JSONField(default=dict, blank=True)
    line_loading_percent = models.JSONField(default=dict, blank=True)
    duration_s = models.FloatField()
    # The losses of the final state as energy, and the members' shares of it by normalised
    # marginal loss factors (grid.losses): {"<meter point id>": "kWh"}; negative is a credit.
    # What the members' shares do not cover is the part of elements no member stands for.
    losses_kwh = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    loss_allocation = models.JSONField(default=dict, db_default={}, blank=True)
    # [{"bus", "short_circuit_mva", "export_kw", "ratio", "min_ratio", "hostable_kw"}]
    strength_events = models.JSONField(default=list, db_default=[], blank=True)
    strength_curtailed_kwh = models.DecimalField(
        max_digits=14, decimal_places=3, default=0, db_default=0
    )

    class Meta:
        ordering = ("-interval__start",)

    def __str__(self) -> str:
        verdict = "feasible" if self.feasible else "infeasible"
        return f"grid check of {self.interval_id}: {verdict}, {self.power_flows} power flows"
