"""A simulation scenario (TOML or JSON): network, households and assets, market, strategy, period.

Everything in a scenario file is untrusted: ``scenario_parse`` checks every field and raises
``ScenarioInvalid`` naming the field's path (``households[2].battery.power_kw``) and the reason.

    name = "Elecbay case 5.1"
    seed = 7
    start = "2026-06-21T00:00:00Z"
    days = 1                         # or hours = 6 for a shorter run
    network = "cigre_lv"
    flexible_control = "game"        # or "thermostat": how water heaters and EVs are run

    [market]                         # any market rule; defaults are the community defaults
    market_structure = "pool"
    clearing_mechanism = "uniform"
    interval_minutes = 60

    [[households]]                   # a group of identical households
    count = 10
    strategy = "truthful"            # truthful, zi-c, roth-erev
    load_profile = "H0-A"
    peak_kw = 4.0
    pv_kwp = 5.0
    battery = { capacity_kwh = 10.0, power_kw = 5.0 }
    water_heater = { volume_l = 200.0, power_kw = 3.0, litres_per_day = 150.0 }
    ev = { charger_kw = 11.0, energy_need_kwh = 12.0, arrival_hour = 18.0, departure_hour = 7.0 }
    heat_pump = { power_kw = 3.0, heat_loss_kw_per_k = 0.2, thermal_capacity_kwh_per_k = 8.0,
                  min_c = 19.5, max_c = 22.5 }  # space heating by price within the comfort band

    [[plants]]                       # community plants selling to the members
    kind = "wind"                    # wind, chp, pv (SimBench profiles)
    kw = 30.0
    cost_per_kwh = 0.09
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import MISSING, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grid.networks import REFERENCE_NETWORKS
from simulation.assets import PV, AssetInvalid, Battery, ElectricVehicle, HeatPump, WaterHeater
from simulation.profiles import HOUSEHOLD_PROFILES, PLANT_PROFILES
from simulation.strategies import STRATEGIES

FLEXIBLE_CONTROLS = ("game", "thermostat")
MAX_DAYS = 366
MAX_HOUSEHOLDS = 5000
# Market rules a scenario may set; the market's own validation checks their values.
MARKET_FIELDS = (
    "market_structure",
    "clearing_mechanism",
    "pricing_rule",
    "pricing_k",
    "interval_minutes",
    "gate_closure_lead_minutes",
    "price_floor",
    "price_cap",
    "retail_tariff",
    "feed_in_tariff",
    "fee_per_kwh",
    "curtailment_policy",
    "max_connection_kw",
)


class ScenarioInvalid(ValueError):  # noqa: N818 - reads like assets.AssetInvalid
    """A scenario field that cannot be: ``path`` names it, the message says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


@dataclass(frozen=True, slots=True)
class HouseholdSpec:
    """One group of identical households (each gets its own seeded randomness)."""

    count: int
    strategy: str
    load_profile: str
    peak_kw: float
    pv: PV | None
    battery: Battery | None
    water_heater: WaterHeater | None
    litres_per_day: float
    ev: ElectricVehicle | None
    label: str
    heat_pump: HeatPump | None = None


@dataclass(frozen=True, slots=True)
class PlantSpec:
    """A community plant (wind, CHP or PV) that sells its output at ``cost_per_kwh`` or more."""

    kind: str
    kw: float
    cost_per_kwh: float
    label: str


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    seed: int
    start: datetime
    days: int
    hours: int
    network: str
    flexible_control: str
    market: dict[str, Any]
    households: tuple[HouseholdSpec, ...]
    plants: tuple[PlantSpec, ...] = field(default=())

    @property
    def household_count(self) -> int:
        return sum(group.count for group in self.households)


def scenario_read(path: Path) -> dict[str, Any]:
    """A scenario file's data (``.toml`` or ``.json``), not yet checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioInvalid("file", f"cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = path.suffix.lstrip(".") or "JSON"
        raise ScenarioInvalid("file", f"is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioInvalid("scenario", "must be a table (a JSON object)")
    # TOML dates come back as datetimes; JSON (for Celery and the database) needs text.
    if isinstance(data.get("start"), datetime):
        data["start"] = data["start"].isoformat()
    return data


# What ``--compare`` may vary: every household's strategy, a top-level field or a market rule.
VARIABLE_FIELDS = ("strategy", "flexible_control", "network", "seed", *MARKET_FIELDS)


def scenario_variant(data: dict[str, Any], field_name: str, value: Any) -> dict[str, Any]:
    """A copy of the scenario data with one field changed (``strategy`` applies to every group)."""
    if field_name not in VARIABLE_FIELDS:
        raise ScenarioInvalid(
            field_name, f"cannot be compared; choose one of {list(VARIABLE_FIELDS)}"
        )
    changed = json.loads(json.dumps(data))
    if field_name == "strategy":
        for group in changed.get("households", []):
            if isinstance(group, dict):
                group["strategy"] = value
    elif field_name in MARKET_FIELDS:
        changed.setdefault("market", {})[field_name] = value
    else:
        changed[field_name] = value
    return changed


def _get(data: dict[str, Any], key: str, path: str, kind: Any, default: Any) -> Any:
    value = data.get(key, default)
    if value is None and default is None:
        return None
    # bool is an int to Python; a flag is not a count.
    if isinstance(value, bool) and kind is not bool:
        raise ScenarioInvalid(f"{path}{key}", "must be a number or text, not true/false")
    if not isinstance(value, kind):
        raise ScenarioInvalid(f"{path}{key}", f"has the wrong type ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ScenarioInvalid(f"{path}{key}", "must be a finite number")
    return value


def _choice(value: str, choices: Any, path: str) -> str:
    if value not in choices:
        raise ScenarioInvalid(path, f"{value!r} is not one of {sorted(choices)}")
    return value


def _asset(cls: Any, data: Any, path: str) -> Any:
    if data is None or data is False:
        return None
    if not isinstance(data, dict):
        raise ScenarioInvalid(path, "must be a table of the asset's limits")
    extra = set(data) - set(cls.__dataclass_fields__) - {"litres_per_day"}
    if extra:
        raise ScenarioInvalid(f"{path}.{sorted(extra)[0]}", "is not a field of this asset")
    values = {k: v for k, v in data.items() if k != "litres_per_day"}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioInvalid(f"{path}.{key}", "must be a number")
    for name, spec in cls.__dataclass_fields__.items():
        if name not in values and spec.default is MISSING:
            raise ScenarioInvalid(f"{path}.{name}", "is required")
    try:
        return cls(**{k: float(v) for k, v in values.items()})
    except AssetInvalid as exc:
        raise ScenarioInvalid(f"{path}.{exc.field}", exc.reason) from None


def household_spec(data: Any, path: str = "", label: str = "households") -> HouseholdSpec:
    """One checked group of households; ``path`` prefixes the field names in errors."""
    if not isinstance(data, dict):
        raise ScenarioInvalid(path.rstrip("."), "must be a table")
    count = _get(data, "count", path, int, 1)
    if not 1 <= count <= MAX_HOUSEHOLDS:
        raise ScenarioInvalid(f"{path}count", f"must be within 1 and {MAX_HOUSEHOLDS}")
    strategy = _choice(_get(data, "strategy", path, str, "truthful"), STRATEGIES, f"{path}strategy")
    profile = _choice(
        _get(data, "load_profile", path, str, "H0-A"), HOUSEHOLD_PROFILES, f"{path}load_profile"
    )
    peak_kw = float(_get(data, "peak_kw", path, int | float, 4.0))
    if not 0 < peak_kw <= 100:
        raise ScenarioInvalid(f"{path}peak_kw", "must be above 0 and at most 100 kW")
    pv_kwp = float(_get(data, "pv_kwp", path, int | float, 0.0))
    if pv_kwp < 0 or pv_kwp > 100:
        raise ScenarioInvalid(f"{path}pv_kwp", "must be within 0 and 100 kWp")
    heater_data = data.get("water_heater")
    litres = 0.0
    if isinstance(heater_data, dict):
        litres = heater_data.get("litres_per_day", 150.0)
        if (
            isinstance(litres, bool)
            or not isinstance(litres, int | float)
            or not 0 <= litres <= 1000
        ):
            raise ScenarioInvalid(f"{path}water_heater.litres_per_day", "must be within 0 and 1000")
    return HouseholdSpec(
        count=count,
        strategy=strategy,
        load_profile=profile,
        peak_kw=peak_kw,
        pv=PV(pv_kwp) if pv_kwp > 0 else None,
        battery=_asset(Battery, data.get("battery"), f"{path}battery"),
        water_heater=_asset(WaterHeater, heater_data, f"{path}water_heater"),
        litres_per_day=float(litres),
        ev=_asset(ElectricVehicle, data.get("ev"), f"{path}ev"),
        heat_pump=_asset(HeatPump, data.get("heat_pump"), f"{path}heat_pump"),
        label=_get(data, "label", path, str, label)[:40],
    )


def plant_spec(data: Any, path: str = "") -> PlantSpec:
    """One checked community plant; ``path`` prefixes the field names in errors."""
    if not isinstance(data, dict):
        raise ScenarioInvalid(path.rstrip("."), "must be a table")
    kind = _choice(_get(data, "kind", path, str, "wind"), PLANT_PROFILES, f"{path}kind")
    kw = float(_get(data, "kw", path, int | float, 0))
    if not 0 < kw <= 5000:
        raise ScenarioInvalid(f"{path}kw", "must be above 0 and at most 5,000 kW")
    cost = float(_get(data, "cost_per_kwh", path, int | float, 0.0))
    if not 0 <= cost <= 10:
        raise ScenarioInvalid(f"{path}cost_per_kwh", "must be within 0 and 10")
    return PlantSpec(kind, kw, cost, _get(data, "label", path, str, f"{kind} plant")[:40])


def scenario_parse(data: Any) -> Scenario:
    """Check a scenario given as parsed TOML or JSON."""
    if not isinstance(data, dict):
        raise ScenarioInvalid("scenario", "must be a table (a JSON object)")
    name = _get(data, "name", "", str, "simulation")[:100]
    seed = _get(data, "seed", "", int, 1)
    start_value = _get(data, "start", "", str | datetime, "2026-06-21T00:00:00Z")
    if isinstance(start_value, str):
        try:
            start_value = datetime.fromisoformat(start_value)
        except ValueError:
            raise ScenarioInvalid("start", "must be an ISO 8601 date and time") from None
    if start_value.tzinfo is None:
        raise ScenarioInvalid("start", "needs a UTC offset (e.g. 2026-06-21T00:00:00Z)")
    days = _get(data, "days", "", int, 1)
    if not 1 <= days <= MAX_DAYS:
        raise ScenarioInvalid("days", f"must be within 1 and {MAX_DAYS}")
    hours = _get(data, "hours", "", int, days * 24)
    if not 1 <= hours <= MAX_DAYS * 24:
        raise ScenarioInvalid("hours", f"must be within 1 and {MAX_DAYS * 24}")
    network = _choice(_get(data, "network", "", str, "cigre_lv"), REFERENCE_NETWORKS, "network")
    control = _choice(
        _get(data, "flexible_control", "", str, "thermostat"), FLEXIBLE_CONTROLS, "flexible_control"
    )
    market = _get(data, "market", "", dict, {})
    for key in market:
        _choice(key, MARKET_FIELDS, f"market.{key}")
    groups = _get(data, "households", "", list, [])
    if not groups:
        raise ScenarioInvalid("households", "needs at least one group of households")
    households = tuple(
        household_spec(group, f"households[{i}].", f"group {i + 1}")
        for i, group in enumerate(groups)
    )
    total = sum(group.count for group in households)
    if total > MAX_HOUSEHOLDS:
        raise ScenarioInvalid("households", f"at most {MAX_HOUSEHOLDS} households in all")
    plants = tuple(
        plant_spec(p, f"plants[{i}].") for i, p in enumerate(_get(data, "plants", "", list, []))
    )
    return Scenario(
        name=name,
        seed=seed,
        start=start_value.astimezone(UTC),
        days=days,
        hours=hours,
        network=network,
        flexible_control=control,
        market=dict(market),
        households=households,
        plants=plants,
    )
