"""Reference networks, JSON upload validation, bus mapping and geometry."""

from __future__ import annotations

import json
import re
import sys

import pandapower as pp
import pytest

from grid.networks import (
    REFERENCE_NETWORKS,
    NetworkInvalid,
    bus_labels,
    connection_buses,
    network_from_json,
    network_geometry,
    network_to_json,
    reference_network,
    validate_network,
)


@pytest.fixture(scope="module")
def cigre():
    return reference_network("cigre_lv")


def test_registry_lists_required_networks():
    for name in (
        "cigre_lv",
        "kerber_landnetz_kabel_1",
        "1-LV-rural1--0-sw",
        "1-LV-semiurb4--0-sw",
        "1-LV-urban6--0-sw",
        "1-MV-semiurb--0-sw",
        "1-MV-urban--0-sw",
    ):
        assert name in REFERENCE_NETWORKS
        assert REFERENCE_NETWORKS[name].label
        assert REFERENCE_NETWORKS[name].description


@pytest.mark.parametrize("name", ["cigre_lv", "kerber_landnetz_kabel_1"])
def test_reference_networks_validate(name):
    validate_network(reference_network(name))


def test_reference_network_is_a_fresh_copy():
    first = reference_network("cigre_lv")
    first.load.loc[:, "p_mw"] = 0.0
    assert reference_network("cigre_lv").load.p_mw.sum() > 0


def test_unknown_reference_network():
    with pytest.raises(NetworkInvalid, match="unknown reference network 'nope'"):
        reference_network("nope")


def test_json_round_trip(cigre):
    net = network_from_json(network_to_json(cigre))
    assert len(net.bus) == len(cigre.bus)
    assert len(net.load) == len(cigre.load)
    validate_network(net)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is not json", "not JSON"),
        ('{"a": 1}', "not a pandapower network"),
        ("[1, 2, 3]", "not a pandapower network"),
        ('"a string"', "not a pandapower network"),
    ],
)
def test_bad_uploads(text, message):
    with pytest.raises(NetworkInvalid, match=message) as info:
        network_from_json(text)
    assert "\n" not in str(info.value)


def test_net_without_ext_grid(cigre):
    net = network_from_json(network_to_json(cigre))
    net.ext_grid = net.ext_grid.iloc[0:0]
    with pytest.raises(NetworkInvalid, match="no external grid"):
        validate_network(network_from_json(network_to_json(net)))


def test_net_without_buses():
    with pytest.raises(NetworkInvalid, match="no buses"):
        validate_network(pp.create_empty_network())


def test_non_converging_net(cigre):
    net = network_from_json(network_to_json(cigre))
    net.load.loc[:, "p_mw"] *= 1000.0
    with pytest.raises(NetworkInvalid, match="does not converge"):
        validate_network(net)


def test_connection_buses_are_load_buses(cigre):
    assert connection_buses(cigre) == sorted(int(b) for b in set(cigre.load.bus))


def test_connection_buses_without_loads_are_lv_non_slack(cigre):
    net = network_from_json(network_to_json(cigre))
    net.load = net.load.iloc[0:0]
    buses = connection_buses(net)
    assert int(net.ext_grid.bus.iloc[0]) not in buses
    assert all(net.bus.vn_kv.loc[b] <= 1.0 for b in buses)
    assert len(buses) == int((net.bus.vn_kv <= 1.0).sum())


def test_bus_labels(cigre):
    labels = bus_labels(cigre)
    assert labels[19] == "Bus R18"
    assert set(labels) == {int(b) for b in cigre.bus.index}


def test_geometry_uses_geodata_and_is_json(cigre):
    geometry = network_geometry(cigre)
    assert geometry["source"] == "geodata"
    assert len(geometry["buses"]) == len(cigre.bus)
    assert len(geometry["lines"]) == len(cigre.line)
    assert {t["lv_bus"] for t in geometry["trafos"]} == {int(b) for b in cigre.trafo.lv_bus}
    json.dumps(geometry, allow_nan=False)


def test_geometry_layout_without_geodata(cigre):
    net = network_from_json(network_to_json(cigre))
    net.bus["geo"] = None
    geometry = network_geometry(net)
    assert geometry["source"] == "layout"
    points = {b["bus"]: (b["x"], b["y"]) for b in geometry["buses"]}
    assert set(points) == {int(b) for b in net.bus.index}
    slack = int(net.ext_grid.bus.iloc[0])
    assert points[slack][1] == 0.0
    assert all(y <= 0.0 for _, y in points.values())
    json.dumps(geometry, allow_nan=False)


def _with_object(text: str, obj: dict[str, object]) -> str:
    """The network's JSON with one foreign object put into its tables' dict."""
    document = json.loads(text)
    document["_object"]["injected"] = obj
    return json.dumps(document)


@pytest.mark.parametrize(
    ("obj", "named"),
    [
        ({"_module": "os", "_class": "function", "_object": "system"}, "os.function"),
        ({"_module": "this", "_class": "function", "_object": "s"}, "this.function"),
        ({"_module": "subprocess", "_class": "Popen", "_object": "[]"}, "subprocess.Popen"),
        ({"_module": "builtins", "_class": "eval", "_object": "1"}, "builtins.eval"),
        ({"_module": "pandapower.control", "_class": "ConstControl", "_object": "{}"},
         "pandapower.control.ConstControl"),
        ({"_module": ["os"], "_class": "system"}, "['os'].system"),
        ({"_class": "DataFrame"}, "None.DataFrame"),
    ],
)  # fmt: skip
def test_upload_names_only_allowed_types_and_nothing_else_is_imported(
    cigre, obj: dict[str, object], named: str
) -> None:
    sys.modules.pop("this", None)
    with pytest.raises(NetworkInvalid, match=re.escape(named)):
        network_from_json(_with_object(network_to_json(cigre), obj))
    assert "this" not in sys.modules  # refused before anything was imported


def test_a_foreign_object_inside_a_tables_embedded_json_is_refused(cigre) -> None:
    document = json.loads(network_to_json(cigre))
    table = document["_object"]["bus"]
    inner = json.loads(table["_object"])
    inner["data"][0][0] = json.dumps({"_module": "os", "_class": "function", "_object": "system"})
    table["_object"] = json.dumps(inner)
    with pytest.raises(NetworkInvalid, match=re.escape("os.function")):
        network_from_json(json.dumps(document))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # beyond what the JSON parser itself may recurse
        '{"a": ' * 40 + "1" + "}" * 40,
        json.dumps({"_module": "pandapower.auxiliary", "_class": "pandapowerNet",
                    "_object": "[" * 33 + "]" * 33}),
    ],
    ids=["parser-deep", "object-deep", "embedded-deep"],
)  # fmt: skip
def test_nesting_beyond_the_limit_is_refused(text: str) -> None:
    with pytest.raises(NetworkInvalid, match="nests deeper than 32 levels"):
        network_from_json(text)
