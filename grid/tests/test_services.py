"""Django side of the grid: uploading networks and the parsed-network cache."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandapower as pp
import pytest

from accounts.services import meter_point_assign_bus
from config.errors import ApplicationError, ErrorCode
from grid import services as grid_services
from grid.models import GridModel, NetworkSource
from grid.networks import network_to_json, reference_network
from grid.services import grid_model_net, grid_model_upload
from marketplace.tests.pipeline.helpers import community_with_homes

pytestmark = pytest.mark.django_db
START = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)


def _on_buses(homes, buses):
    for home, bus in zip(homes, buses, strict=True):
        home.meter_point = meter_point_assign_bus(
            meter_point=home.meter_point, bus=bus, assigned_by=None
        )


# --- Upload ----------------------------------------------------------------------------------


def test_upload_valid_network_replaces_the_reference():
    community, _ = community_with_homes(homes=0)
    text = network_to_json(reference_network("kerber_landnetz_kabel_1"))
    grid_model = grid_model_upload(community=community, json_text=text)
    assert grid_model.source == NetworkSource.UPLOAD
    assert grid_model.reference_name == ""
    assert grid_model.connection_buses
    assert GridModel.objects.get(community=community).pk == grid_model.pk
    assert len(grid_model_net(grid_model).bus) == len(
        reference_network("kerber_landnetz_kabel_1").bus
    )


def _no_ext_grid() -> str:
    net = reference_network("cigre_lv")
    net.ext_grid.drop(net.ext_grid.index, inplace=True)
    return network_to_json(net)


def _diverging() -> str:
    net = reference_network("kerber_landnetz_kabel_1")
    net.load["p_mw"] = 50.0  # 50 MW on a 0.4 kV feeder: no power flow solution
    return network_to_json(net)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json at all", "not JSON"),
        (json.dumps({"hello": "world"}), "not a pandapower network"),
        (_no_ext_grid(), "external grid"),
        (_diverging(), "does not converge"),
    ],
    ids=["not-json", "other-json", "no-ext-grid", "diverges"],
)
def test_upload_invalid_network_is_refused_with_its_reason(text, reason):
    community, _ = community_with_homes(homes=0)
    before = GridModel.objects.get(community=community)
    with pytest.raises(ApplicationError) as caught:
        grid_model_upload(community=community, json_text=text)
    assert caught.value.code == ErrorCode.INVALID_NETWORK
    assert caught.value.field == "network_file"
    assert reason in caught.value.message
    after = GridModel.objects.get(community=community)
    assert (after.source, after.uploaded_at) == (NetworkSource.REFERENCE, before.uploaded_at)


def test_net_cache_follows_a_new_upload():
    community, _ = community_with_homes(homes=0)
    first = grid_model_net(GridModel.objects.get(community=community))
    assert grid_model_net(GridModel.objects.get(community=community)) is first  # cached
    net = pp.from_json_string(network_to_json(first))
    net.load["p_mw"] *= 0.5
    grid_model_upload(community=community, json_text=network_to_json(net))
    again = grid_model_net(GridModel.objects.get(community=community))
    assert again is not first
    assert again.load.p_mw.sum() == pytest.approx(first.load.p_mw.sum() * 0.5)


def test_network_cache_keeps_the_most_recently_used_networks(settings):
    """More communities than the cache holds: the least recently used network goes, not the
    oldest one (first-in-first-out evicted a community checked every interval, then re-parsed
    it although its network never changed); the size is a setting."""
    settings.PEERGRID_NETWORK_CACHE_SIZE = 2
    models = [
        GridModel.objects.get(community=community_with_homes(homes=0)[0]) for _ in range(3)
    ]  # each saved one into the cache; the first is gone already
    hot, warm, cold = models
    stats = grid_services.NETWORK_CACHE_STATS
    grid_services.grid_network(warm)
    grid_services.grid_network(cold)
    misses = stats["misses"]
    grid_services.grid_network(hot)  # evicted by the third save: parsed again
    assert stats["misses"] == misses + 1
    for _ in range(3):  # hot is checked every interval, the others by turns
        grid_services.grid_network(hot)
        grid_services.grid_network(warm)
        grid_services.grid_network(hot)
        grid_services.grid_network(cold)
    # Least recently used: hot never misses again; warm and cold take turns in the other place.
    assert stats["misses"] == misses + 1 + 6
    assert len(grid_services._NETWORK_CACHE) == 2
    assert (hot.pk, hot.uploaded_at) in grid_services._NETWORK_CACHE


def test_a_cached_network_is_not_read_from_the_database_again():
    """The grid check reads a grid model's version, not its multi-megabyte JSON, while the
    process has the network prepared."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from marketplace.services.grid_check import interval_grid_check
    from marketplace.tests.pipeline.helpers import interval_at

    community, _ = community_with_homes(homes=1)
    interval_grid_check(interval=interval_at(community, START))  # the studies' first reading
    interval = interval_at(community, START + timedelta(minutes=15))
    with CaptureQueriesContext(connection) as queries:
        interval_grid_check(interval=interval)
    sql = " ".join(q["sql"] for q in queries)
    assert "grid_gridmodel" in sql
    assert "network_json" not in sql
    assert "profiles_csv" not in sql
