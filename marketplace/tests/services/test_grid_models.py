"""A network change never strands meter points: refused with the list, or remapped in one step."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import MeterPoint
from accounts.services import meter_point_assign_bus
from config.errors import ApplicationError
from grid.models import GridModel
from grid.networks import network_to_json, reference_network
from marketplace.services.grid_models import grid_network_change
from marketplace.tests.pipeline.helpers import community_with_homes

pytestmark = pytest.mark.django_db


def _kerber_json() -> str:
    return network_to_json(reference_network("kerber_landnetz_kabel_1"))


def test_upload_that_would_strand_meter_points_is_refused_with_the_list():
    community, homes = community_with_homes(homes=2)  # on CIGRE LV buses
    before = GridModel.objects.get(community=community).uploaded_at
    with pytest.raises(ApplicationError) as refused:
        grid_network_change(community=community, changed_by=None, json_text=_kerber_json())
    assert refused.value.field == "remapping"
    for home in homes:
        assert f"meter point {home.meter_point.pk}" in refused.value.message
    assert GridModel.objects.get(community=community).uploaded_at == before  # nothing written


def test_upload_with_a_remapping_is_accepted_in_one_step():
    community, homes = community_with_homes(homes=2)
    net = reference_network("kerber_landnetz_kabel_1")
    load_buses = sorted({int(b) for b in net.load.bus})
    first_load = int(net.load.index[net.load.bus == load_buses[0]][0])
    remapping = "meter_point,bus,elements\n" + "\n".join(
        [
            f"{homes[0].meter_point.pk},{load_buses[0]},load {first_load}",
            f"{homes[1].meter_point.pk},{load_buses[1]},",
        ]
    )
    grid_model = grid_network_change(
        community=community, changed_by=None, json_text=_kerber_json(), remapping=remapping
    )
    assert grid_model.reference_name == ""
    placed = {mp.pk: (mp.bus, mp.network_elements) for mp in MeterPoint.objects.all()}
    assert placed[homes[0].meter_point.pk] == (load_buses[0], [f"load {first_load}"])
    assert placed[homes[1].meter_point.pk] == (load_buses[1], [])
    assert grid_model.elements[f"load {first_load}"] == load_buses[0]


def test_remapping_errors_name_the_line():
    community, homes = community_with_homes(homes=1)
    with pytest.raises(ApplicationError, match="line 1: '999999' is not a meter point"):
        grid_network_change(
            community=community, changed_by=None, json_text=_kerber_json(), remapping="999999,1,"
        )
    with pytest.raises(ApplicationError, match="line 2: bus 'x'"):
        grid_network_change(
            community=community,
            changed_by=None,
            json_text=_kerber_json(),
            remapping=f"meter_point,bus,elements\n{homes[0].meter_point.pk},x,",
        )


def test_same_network_again_strands_nothing():
    community, _ = community_with_homes(homes=3)
    grid_network_change(community=community, changed_by=None, reference_name="cigre_lv")
    assert GridModel.objects.get(community=community).reference_name == "cigre_lv"


def test_named_element_must_be_on_the_meter_points_bus():
    _, homes = community_with_homes(homes=1)
    mp = meter_point_assign_bus(
        meter_point=homes[0].meter_point,
        bus=19,
        assigned_by=None,
        network_elements=["load 5"],  # CIGRE LV's load at bus 19
        power_factor=Decimal("0.950"),
    )
    assert (mp.bus, mp.network_elements, mp.power_factor) == (19, ["load 5"], Decimal("0.950"))
    with pytest.raises(ApplicationError, match="not a load or generator on bus 18"):
        meter_point_assign_bus(meter_point=mp, bus=18, assigned_by=None)
    with pytest.raises(ApplicationError, match=r"between 0\.5 and 1"):
        meter_point_assign_bus(
            meter_point=mp, bus=19, assigned_by=None, power_factor=Decimal("0.2")
        )
