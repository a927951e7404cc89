"""Reads of grid models and grid-check results that the pages, the API and the pipeline share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from grid.models import GridCheckResult, GridModel
from grid.networks import bus_labels, network_from_json

if TYPE_CHECKING:
    from marketplace.models import Community, Interval


def grid_model_get(*, community: Community) -> GridModel | None:
    """The community's network, or None if the manager has not chosen one yet."""
    return GridModel.objects.filter(community=community).first()


def grid_check_result_get(*, interval: Interval) -> GridCheckResult | None:
    """What the grid check of the interval found, or None if it has not run."""
    return GridCheckResult.objects.filter(interval=interval).first()


def grid_check_result_list(*, community: Community) -> QuerySet[GridCheckResult]:
    """The community's grid checks, latest interval first (the manager's pipeline page)."""
    return (
        GridCheckResult.objects.filter(interval__community=community)
        .select_related("interval")
        .order_by("-interval__start")
    )


def grid_bus_names(*, grid_model: GridModel) -> dict[int, str]:
    """Each bus's display name (the network's own, else ``bus <index>``); empty if the stored
    network cannot be read, so a picker falls back to the numbers."""
    try:
        return bus_labels(network_from_json(grid_model.network_json))
    except Exception:  # a stored network pandapower cannot read: show numbers, never fail
        return {}
