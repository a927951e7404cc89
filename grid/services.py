"""Writes for grid models: choosing a reference network for a community."""

from __future__ import annotations

from django.db import transaction

from grid.models import GridModel, NetworkSource
from grid.networks import connection_buses, network_to_json, reference_network
from marketplace.models import Community


@transaction.atomic
def grid_model_use_reference(*, community: Community, name: str) -> GridModel:
    """Give the community one of the built-in reference networks (replacing any other)."""
    net = reference_network(name)
    grid_model, _ = GridModel.objects.update_or_create(
        community=community,
        defaults={
            "source": NetworkSource.REFERENCE,
            "reference_name": name,
            "network_json": network_to_json(net),
            "connection_buses": connection_buses(net),
        },
    )
    return grid_model
