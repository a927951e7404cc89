"""Scenario files are untrusted: every bad field is refused with its path and the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulation.scenario import ScenarioInvalid, scenario_parse, scenario_read, scenario_variant

GOOD: dict[str, Any] = {
    "name": "t",
    "start": "2026-06-21T10:00:00Z",
    "hours": 3,
    "market": {"market_structure": "pool", "interval_minutes": 60},
    "households": [{"count": 2, "pv_kwp": 5.0, "battery": {"capacity_kwh": 8, "power_kw": 4}}],
}


def test_a_good_scenario_parses() -> None:
    scenario = scenario_parse(GOOD)
    assert scenario.household_count == 2
    assert scenario.hours == 3
    assert scenario.households[0].battery is not None
    assert scenario.households[0].battery.capacity_kwh == 8


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"days": 0}, "days"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-06-21T10:00:00"}, "start"),
        ({"network": "atlantis"}, "network"),
        ({"flexible_control": "magic"}, "flexible_control"),
        ({"market": {"colour": "blue"}}, "market.colour"),
        ({"households": []}, "households"),
        ({"households": [{"count": 0}]}, "households[0].count"),
        ({"households": [{"count": True}]}, "households[0].count"),
        ({"households": [{"strategy": "oracle"}]}, "households[0].strategy"),
        (
            {"households": [{"battery": {"capacity_kwh": -1, "power_kw": 3}}]},
            "households[0].battery.capacity_kwh",
        ),
        (
            {"households": [{"battery": {"capacity_kwh": 5, "power_kw": 3, "colour": 1}}]},
            "households[0].battery.colour",
        ),
        (
            {"households": [{"water_heater": {"min_c": 80, "max_c": 60}}]},
            "households[0].water_heater.min_c",
        ),
        ({"households": [{"ev": {"arrival_hour": "six"}}]}, "households[0].ev.arrival_hour"),
        ({"households": [{"peak_kw": float("inf")}]}, "households[0].peak_kw"),
        ({"plants": [{"kind": "fusion", "kw": 5}]}, "plants[0].kind"),
        ({"plants": [{"kind": "wind", "kw": 0}]}, "plants[0].kw"),
    ],
)
def test_bad_fields_are_refused_with_their_path(change: dict, path: str) -> None:
    with pytest.raises(ScenarioInvalid) as caught:
        scenario_parse({**GOOD, **change})
    assert caught.value.path == path


def test_files_are_read_as_toml_or_json(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('name = "x"\nstart = 2026-06-21T10:00:00Z\n[[households]]\ncount = 1\n')
    data = scenario_read(toml)
    assert data["start"].startswith("2026-06-21T10:00")  # TOML dates become text for JSON
    scenario_parse(data)
    js = tmp_path / "s.json"
    js.write_text(json.dumps(GOOD))
    assert scenario_read(js)["name"] == "t"
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(ScenarioInvalid, match="not valid toml"):
        scenario_read(bad)
    with pytest.raises(ScenarioInvalid):
        scenario_read(tmp_path / "missing.json")


def test_variants_change_one_field() -> None:
    data = scenario_variant(GOOD, "strategy", "zi-c")
    assert data["households"][0]["strategy"] == "zi-c"
    assert "strategy" not in GOOD["households"][0]  # the original is untouched
    market = scenario_variant(GOOD, "clearing_mechanism", "pay-as-bid")["market"]
    assert market == {
        "market_structure": "pool",
        "interval_minutes": 60,
        "clearing_mechanism": "pay-as-bid",
    }
    with pytest.raises(ScenarioInvalid):
        scenario_variant(GOOD, "households", [])
