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
