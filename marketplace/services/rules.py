"""Editing a community's market rules: validate, then store a new version (never in place).

Each interval keeps the rules version it was opened under (``Interval.rules``), so an edit applies
only to intervals opened after it; intervals already open keep trading under the old version.

Decisions documented here:

* ``price_floor <= feed_in_tariff`` and ``retail_tariff <= price_cap`` are *not* required. The
  tariffs are what the outside grid pays and charges, and a manager may deliberately cap peer
  prices below retail (to share the gains with buyers) or set a floor above feed-in (to reward
  local producers). Both are legal but unusual, so ``market_rules_preview`` reports them as
  warnings instead of refusing them.
* ``feed_in_tariff <= retail_tariff`` *is* required: otherwise the community could buy from the
  grid and sell back to it at a profit on every kWh, an arbitrage the pool would exploit.
* k-pricing prices the uniform k-double auction and discriminatory pairs only
  (``marketplace.clearing.clear`` refuses ``k`` for the other mechanisms), so ``pricing_rule="k"``
  needs one of those two; ``midpoint`` is k = 0.5 for them and means nothing for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record
from config.errors import ApplicationError, ErrorCode
from marketplace.clearing import K_MECHANISMS
from marketplace.models import (
    ClearingMechanism,
    Community,
    CurtailmentPolicy,
    MarketRules,
    MarketStructure,
    NetworkChargeRule,
    PricingRule,
)
from units import UnitError, parse_decimal

# The fields a manager may change; everything else (community, created_at, ...) is bookkeeping.
EDITABLE_FIELDS: tuple[str, ...] = (
    "market_structure",
    "clearing_mechanism",
    "pricing_rule",
    "pricing_k",
    "interval_minutes",
    "gate_closure_lead_minutes",
    "opening_horizon_hours",
    "price_floor",
    "price_cap",
    "retail_tariff",
    "feed_in_tariff",
    "fee_per_kwh",
    "voltage_min_pu",
    "voltage_max_pu",
    "max_line_loading_percent",
    "max_trafo_loading_percent",
    "curtailment_policy",
    "loss_price_per_kwh",
    "network_charge_rule",
    "network_tariff_per_kwh",
    "min_short_circuit_ratio",
    "max_connection_kw",
)
# Rules that may be empty, and what an empty one means.
NULLABLE_FIELDS = frozenset({"loss_price_per_kwh"})  # empty: the retail tariff
INTERVAL_MINUTES = (15, 30, 60)
MAX_OPENING_HOURS = 24 * 14
# A community's members are households and small businesses behind one transformer; 10 MW is
# far beyond any of their connections and keeps capacity x hours well inside the kWh columns.
MAX_CONNECTION_LIMIT_KW = Decimal("10000")
_CHOICES: dict[str, type[models.TextChoices]] = {
    "market_structure": MarketStructure,
    "clearing_mechanism": ClearingMechanism,
    "pricing_rule": PricingRule,
    "curtailment_policy": CurtailmentPolicy,
    "network_charge_rule": NetworkChargeRule,
}
_INTEGER_FIELDS = ("interval_minutes", "gate_closure_lead_minutes", "opening_horizon_hours")


def current_rules(community: Community) -> MarketRules:
    """The community's newest rules version: the one new intervals open under."""
    return MarketRules.objects.filter(community=community).latest()


def _fail(field: str, message: str, code: ErrorCode = ErrorCode.OUT_OF_RANGE) -> ApplicationError:
    return ApplicationError(code, message, field=field)


def _decimal(field: str, value: Any) -> Decimal:
    """A Decimal with no more places than the model field stores; floats are refused."""
    places = MarketRules._meta.get_field(field).decimal_places  # type: ignore[union-attr]
    try:
        return parse_decimal(value, step=Decimal(1).scaleb(-places))
    except UnitError as exc:
        raise _fail(field, exc.message, ErrorCode(exc.code)) from None


def _normalise(changes: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for field, value in changes.items():
        if field not in EDITABLE_FIELDS:
            raise _fail(
                field, "This is not a market rule that can be edited.", ErrorCode.NOT_EDITABLE
            )
        if field in NULLABLE_FIELDS and value in (None, ""):
            clean[field] = None
        elif field in _CHOICES:
            if value not in _CHOICES[field].values:
                allowed = ", ".join(_CHOICES[field].values)
                raise _fail(field, f"Choose one of: {allowed}.", ErrorCode.UNKNOWN_CHOICE)
            clean[field] = str(value)
        elif field in _INTEGER_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(field, "Give a whole number.", ErrorCode.NOT_AN_INTEGER)
            clean[field] = value
        else:
            clean[field] = _decimal(field, value)
    return clean


def check_market_rules(values: dict[str, Any]) -> None:
    """Validate a complete set of rule values; raises ``ApplicationError`` naming the field."""
    if values["interval_minutes"] not in INTERVAL_MINUTES:
        raise _fail("interval_minutes", "The interval length must be 15, 30 or 60 minutes.")
    if not 1 <= values["opening_horizon_hours"] <= MAX_OPENING_HOURS:
        raise _fail("opening_horizon_hours", "The opening horizon must be 1 to 336 hours.")
    lead = values["gate_closure_lead_minutes"]
    if lead < 0:
        raise _fail("gate_closure_lead_minutes", "The gate closure lead cannot be negative.")
    if lead >= values["opening_horizon_hours"] * 60:
        raise _fail(
            "gate_closure_lead_minutes",
            "Gate closure must come after intervals open: make the lead shorter than the "
            "opening horizon.",
        )
    if values["price_floor"] < 0:
        raise _fail("price_floor", "The price floor cannot be negative.")
    if values["price_floor"] >= values["price_cap"]:
        raise _fail("price_cap", "The price cap must be above the price floor.")
    for field in ("retail_tariff", "feed_in_tariff"):
        if values[field] < 0:
            raise _fail(field, "A tariff cannot be negative.")
    if values["feed_in_tariff"] > values["retail_tariff"]:
        raise _fail(
            "feed_in_tariff",
            "The feed-in tariff cannot exceed the retail tariff (the community would profit "
            "from buying and selling the same energy).",
        )
    if values["fee_per_kwh"] < 0:
        raise _fail("fee_per_kwh", "The community fee cannot be negative.")
    if values["fee_per_kwh"] >= values["price_cap"]:
        # A fee of the whole price or more leaves a seller nothing (or less) for every kWh.
        raise _fail("fee_per_kwh", "The community fee must be below the price cap.")
    if values["loss_price_per_kwh"] is not None and values["loss_price_per_kwh"] < 0:
        raise _fail("loss_price_per_kwh", "The loss price cannot be negative.")
    if values["network_tariff_per_kwh"] < 0:
        raise _fail("network_tariff_per_kwh", "The network tariff cannot be negative.")
    if not 1 <= values["min_short_circuit_ratio"] <= 100:
        raise _fail("min_short_circuit_ratio", "The minimum short-circuit ratio must be 1 to 100.")
    if not 0 < values["max_connection_kw"] <= MAX_CONNECTION_LIMIT_KW:
        raise _fail(
            "max_connection_kw",
            f"The maximum connection must be above 0 and at most {MAX_CONNECTION_LIMIT_KW} kW.",
        )
    if not 0 <= values["pricing_k"] <= 1:
        raise _fail("pricing_k", "k must be between 0 and 1.")
    vmin, vmax = values["voltage_min_pu"], values["voltage_max_pu"]
    if not Decimal("0.8") <= vmin < vmax <= Decimal("1.2"):
        min_ok = Decimal("0.8") <= vmin < Decimal("1.2")
        field = "voltage_max_pu" if min_ok else "voltage_min_pu"
        raise _fail(field, "The voltage band must satisfy 0.8 <= minimum < maximum <= 1.2 p.u.")
    for field in ("max_line_loading_percent", "max_trafo_loading_percent"):
        if not 0 < values[field] <= 200:
            raise _fail(field, "A loading limit must be above 0 % and at most 200 %.")
    if (
        values["pricing_rule"] == PricingRule.K_PRICING
        and values["clearing_mechanism"] not in K_MECHANISMS
    ):
        raise _fail(
            "pricing_rule",
            "k-pricing applies to the uniform-price and discriminatory auctions only.",
            ErrorCode.INCONSISTENT_RULES,
        )


def rules_warnings(values: dict[str, Any]) -> list[str]:
    """Legal but unusual settings the manager should see before saving."""
    warnings: list[str] = []
    if values["price_floor"] > values["feed_in_tariff"]:
        warnings.append(
            "The price floor is above the feed-in tariff: sellers who cannot find a buyer at "
            "the floor get only the feed-in tariff from the grid."
        )
    if values["price_cap"] < values["retail_tariff"]:
        warnings.append(
            "The price cap is below the retail tariff: buyers never pay peers as much as the "
            "grid charges, which favours buyers."
        )
    return warnings


def _values_of(rules: MarketRules) -> dict[str, Any]:
    return {field: getattr(rules, field) for field in EDITABLE_FIELDS}


@transaction.atomic
def market_rules_update(
    *, community: Community, changed_by: User | None, **changes: Any
) -> MarketRules:
    """Validate ``changes`` against the current rules and store them as a new version.

    Only intervals opened from now on use the new version. Raises ``ApplicationError`` with the
    offending field; nothing is written then. An edit that changes nothing returns the current
    version without creating another.
    """
    current = current_rules(community)
    clean = _normalise(changes)
    values = _values_of(current) | clean
    check_market_rules(values)
    if values == _values_of(current):
        return current
    rules = MarketRules.objects.create(
        community=community, created_by=changed_by, created_at=timezone.now(), **values
    )
    audit_record(
        kind="market_rules.changed",
        actor=changed_by,
        community=community,
        rules=rules.pk,
        previous_rules=current.pk,
        changes={k: str(v) for k, v in clean.items() if getattr(current, k) != v},
    )
    return rules


@dataclass(frozen=True, slots=True)
class RuleChange:
    field: str
    label: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.label}: {self.old} → {self.new}"


@dataclass(frozen=True, slots=True)
class RulesPreview:
    """What an edit would change, from which interval on, and what looks unusual."""

    changes: list[RuleChange]
    warnings: list[str]
    # The first interval start that would open under the new rules; earlier ones keep theirs.
    applies_from: datetime
    intervals_unaffected: int  # already open (or past) intervals that keep the old version


def market_rules_preview(
    *, community: Community, changes: dict[str, Any], now: datetime | None = None
) -> RulesPreview:
    """The manager's preview of an edit: differences, warnings and the intervals affected.

    Validates exactly as ``market_rules_update`` would (same errors), writes nothing.
    """
    from marketplace.services.intervals import next_unopened_start

    now = now or timezone.now()
    current = current_rules(community)
    clean = _normalise(changes)
    values = _values_of(current) | clean
    check_market_rules(values)
    diffs = []
    for field in EDITABLE_FIELDS:
        old, new = getattr(current, field), values[field]
        if old != new:
            label = str(getattr(MarketRules._meta.get_field(field), "verbose_name", field))
            diffs.append(RuleChange(field, label, str(old), str(new)))
    applies_from = next_unopened_start(
        community=community, now=now, interval_minutes=values["interval_minutes"]
    )
    unaffected = community.intervals.filter(end__gt=now).count()
    return RulesPreview(diffs, rules_warnings(values), applies_from, unaffected)
