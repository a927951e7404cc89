"""Request and response shapes of the API. They parse and render; the services decide.

Input serializers check only form (types, digits, decimal places, lengths), which keeps huge
numbers, NaN and Infinity out before any service runs. Every market rule (price band, capacity,
gate closure, who may do what) is the services' job and comes back as an ``ApplicationError``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import MeterPointStatus, TokenScope
from config.errors import ErrorCode
from config.fields import DecimalInput
from marketplace.api.schema import DAY_PATTERN, FIRST_YEAR, LAST_YEAR
from marketplace.ledger.models import ReadingStatus
from marketplace.ledger.services.readings import MAX_ROWS
from marketplace.models import (
    BidStatus,
    ClearingMechanism,
    CurtailmentPolicy,
    IntervalState,
    MarketStructure,
    NetworkChargeRule,
    Posting,
    PostingStatus,
    PricingRule,
    RegionMechanism,
    RegionPart,
    Side,
    TradeSource,
)
from marketplace.selectors.board import BoardPosting
from marketplace.services.rules import INTERVAL_MINUTES, MAX_CONNECTION_LIMIT_KW, MAX_OPENING_HOURS
from units import KW, KW_DIGITS, KWH, KWH_DIGITS, PRICE, PRICE_DIGITS

MAX_ID = 2**63 - 1  # the database's bigint; larger ids cannot exist


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, as the schema says: DRF's own takes "5" and 5.0 as well."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("Give a whole number.", code="invalid")
        return int(super().to_internal_value(data))


@extend_schema_field({"type": "integer", "enum": list(INTERVAL_MINUTES)})
class IntegerChoiceField(StrictIntegerField):
    """A JSON integer from a fixed set (the interval lengths)."""

    def __init__(self, *, choices: tuple[int, ...], **kwargs: Any) -> None:
        self.choices = choices
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        value = super().to_internal_value(data)
        if value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise serializers.ValidationError(f"Choose one of: {allowed}.", code="invalid_choice")
        return value


# Python's whitespace (what ``str.strip`` and ``isspace`` take), spelt out so the schema's
# pattern means the same in every regex dialect: a text must hold one character outside it.
_SPACE = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NOT_ONLY_SPACE = f"[^{_SPACE}]"


class TextField(serializers.CharField):
    """Text taken as written (no trimming, so ``maxLength`` counts what was sent); unless blank
    is allowed it must hold a character that is not whitespace (the schema's pattern)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = str(super().to_internal_value(data))
        if not self.allow_blank and not re.search(NOT_ONLY_SPACE, value):
            raise serializers.ValidationError("This field may not be blank.", code="blank")
        return value


def id_field(*, query: bool = False, **kwargs: Any) -> serializers.IntegerField:
    """An object id; in a body a JSON integer, in a query string its digits."""
    field_class = serializers.IntegerField if query else StrictIntegerField
    return field_class(min_value=1, max_value=MAX_ID, **kwargs)


def kwh_field(**kwargs: Any) -> serializers.DecimalField:
    """Energy in kWh as a decimal string, 3 places (as stored)."""
    return DecimalInput(step=KWH, max_digits=KWH_DIGITS, **kwargs)


def price_field(**kwargs: Any) -> serializers.DecimalField:
    """Currency per kWh as a decimal string, 4 places (as stored)."""
    return DecimalInput(step=PRICE, max_digits=PRICE_DIGITS, **kwargs)


def kw_field(**kwargs: Any) -> serializers.DecimalField:
    return DecimalInput(step=KW, max_digits=KW_DIGITS, **kwargs)


# --- Who am I ---------------------------------------------------------------------------------
class MembershipSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    community = serializers.CharField(source="community.slug")
    role = serializers.CharField()
    status = serializers.CharField()
    pseudonym = serializers.CharField()


class MeSerializer(serializers.Serializer):
    email = serializers.EmailField()
    display_name = serializers.CharField()
    is_regulator = serializers.BooleanField()
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TokenScope.choices),
        help_text="What this request may do: the token's scopes, or the role's for a session.",
    )
    memberships = MembershipSerializer(many=True)


# --- Communities and rules --------------------------------------------------------------------
class CommunitySerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    timezone = serializers.CharField()
    currency = serializers.CharField()
    description = serializers.CharField()


class MarketRulesSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The rules version; each edit makes a new one.")
    community = serializers.CharField(source="community.slug")
    created_at = serializers.DateTimeField()
    market_structure = serializers.ChoiceField(choices=MarketStructure.choices)
    clearing_mechanism = serializers.ChoiceField(choices=ClearingMechanism.choices)
    pricing_rule = serializers.ChoiceField(choices=PricingRule.choices)
    pricing_k = serializers.DecimalField(max_digits=4, decimal_places=3)
    interval_minutes = serializers.IntegerField()
    gate_closure_lead_minutes = serializers.IntegerField()
    opening_horizon_hours = serializers.IntegerField()
    price_floor = price_field()
    price_cap = price_field()
    retail_tariff = price_field()
    feed_in_tariff = price_field()
    fee_per_kwh = price_field()
    voltage_min_pu = serializers.DecimalField(max_digits=4, decimal_places=3)
    voltage_max_pu = serializers.DecimalField(max_digits=4, decimal_places=3)
    max_line_loading_percent = serializers.DecimalField(max_digits=5, decimal_places=1)
    max_trafo_loading_percent = serializers.DecimalField(max_digits=5, decimal_places=1)
    curtailment_policy = serializers.ChoiceField(choices=CurtailmentPolicy.choices)
    loss_price_per_kwh = price_field(
        allow_null=True, help_text="Price of allocated network losses; null: the retail tariff."
    )
    network_charge_rule = serializers.ChoiceField(choices=NetworkChargeRule.choices)
    network_tariff_per_kwh = price_field(
        help_text="By use: per kWh per unit of use (1 = the average meter point's use of the "
        "network from the feeder head)."
    )
    min_short_circuit_ratio = serializers.DecimalField(max_digits=5, decimal_places=2)
    max_connection_kw = kw_field(
        help_text="The largest capacity a meter point may be approved with."
    )


class MarketRulesUpdateSerializer(serializers.Serializer):
    """Any subset of the rules; the service validates the whole and stores a new version.

    A field that is not a rule is refused (``not_editable``) rather than ignored: a misspelt
    ``fee_per_kwH`` must not answer 200 with the fee unchanged.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {
                        name[:100]: [
                            serializers.ErrorDetail(
                                "This is not a market rule that can be edited.",
                                code="not_editable",
                            )
                        ]
                        for name in unknown[:20]
                    }
                )
        return super().to_internal_value(data)

    market_structure = serializers.ChoiceField(choices=MarketStructure.choices, required=False)
    clearing_mechanism = serializers.ChoiceField(choices=ClearingMechanism.choices, required=False)
    pricing_rule = serializers.ChoiceField(choices=PricingRule.choices, required=False)
    # Each rule's own bounds (``check_market_rules``) are stated here so the schema says them;
    # the rules' relations (floor below cap, fee below cap, lead within the horizon, the
    # voltage band's order) span fields and stay the service's (``out_of_range`` and kin).
    pricing_k = DecimalInput(
        step=Decimal("0.001"), max_digits=4, min_value=Decimal(0), max_value=Decimal(1),
        required=False,
    )  # fmt: skip
    interval_minutes = IntegerChoiceField(choices=INTERVAL_MINUTES, required=False)
    gate_closure_lead_minutes = StrictIntegerField(
        min_value=0, max_value=MAX_OPENING_HOURS * 60 - 1, required=False
    )
    opening_horizon_hours = StrictIntegerField(
        min_value=1, max_value=MAX_OPENING_HOURS, required=False
    )
    price_floor = price_field(required=False, min_value=Decimal(0))
    price_cap = price_field(required=False, min_value=PRICE)
    retail_tariff = price_field(required=False, min_value=Decimal(0))
    feed_in_tariff = price_field(required=False, min_value=Decimal(0))
    fee_per_kwh = price_field(required=False, min_value=Decimal(0))
    voltage_min_pu = DecimalInput(
        step=Decimal("0.001"), max_digits=4, min_value=Decimal("0.8"), max_value=Decimal("1.2"),
        required=False,
    )  # fmt: skip
    voltage_max_pu = DecimalInput(
        step=Decimal("0.001"), max_digits=4, min_value=Decimal("0.8"), max_value=Decimal("1.2"),
        required=False,
    )  # fmt: skip
    max_line_loading_percent = DecimalInput(
        step=Decimal("0.1"), max_digits=5, min_value=Decimal("0.1"), max_value=Decimal(200),
        required=False,
    )  # fmt: skip
    max_trafo_loading_percent = DecimalInput(
        step=Decimal("0.1"), max_digits=5, min_value=Decimal("0.1"), max_value=Decimal(200),
        required=False,
    )  # fmt: skip
    curtailment_policy = serializers.ChoiceField(choices=CurtailmentPolicy.choices, required=False)
    loss_price_per_kwh = price_field(required=False, allow_null=True, min_value=Decimal(0))
    network_charge_rule = serializers.ChoiceField(choices=NetworkChargeRule.choices, required=False)
    network_tariff_per_kwh = price_field(required=False, min_value=Decimal(0))
    min_short_circuit_ratio = DecimalInput(
        step=Decimal("0.01"), max_digits=5, min_value=Decimal(1), max_value=Decimal(100),
        required=False,
    )  # fmt: skip
    max_connection_kw = kw_field(required=False, min_value=KW, max_value=MAX_CONNECTION_LIMIT_KW)


# --- Intervals, depth, grid checks ------------------------------------------------------------
class IntervalResultsSerializer(serializers.Serializer):
    trades = serializers.IntegerField(source="trade_count")
    peer_kwh = kwh_field(allow_null=True)
    average_peer_price_per_kwh = price_field(allow_null=True)
    grid_kwh = kwh_field(allow_null=True)
    confirmed_kwh = kwh_field(allow_null=True)
    curtailed_kwh = kwh_field(allow_null=True)
    grid_feasible = serializers.BooleanField(
        allow_null=True, help_text="The grid check's verdict; null until it has run."
    )


class IntervalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    community = serializers.CharField(source="community.slug")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    gate_closure_at = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=IntervalState.choices)
    state_changed_at = serializers.DateTimeField()
    rules = serializers.IntegerField(
        source="rules_id", help_text="The rules version it runs under."
    )
    results = serializers.SerializerMethodField()

    @extend_schema_field(IntervalResultsSerializer)
    def get_results(self, interval: Any) -> dict[str, Any]:
        peer = interval.peer_kwh
        value = interval.peer_value
        interval.average_peer_price_per_kwh = value / peer if value and peer else None
        return dict(IntervalResultsSerializer(interval).data)


class RegionSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    description = serializers.CharField()
    clearing_mechanism = serializers.ChoiceField(choices=RegionMechanism.choices)
    pricing_k = serializers.DecimalField(max_digits=4, decimal_places=3)
    offer_k = serializers.DecimalField(
        max_digits=4, decimal_places=3,
        help_text="A surplus is offered at feed-in + offer_k (retail - feed-in).",
    )  # fmt: skip
    request_k = serializers.DecimalField(
        max_digits=4, decimal_places=3,
        help_text="A deficit is requested at feed-in + request_k (retail - feed-in).",
    )  # fmt: skip
    communities = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.SlugField()))
    def get_communities(self, region: Any) -> list[str]:
        return [community.slug for community in region.communities.all()]


class RegionResidualSerializer(serializers.Serializer):
    community = serializers.CharField(source="community.slug")
    part = serializers.ChoiceField(choices=RegionPart.choices)
    import_kwh = kwh_field(help_text="Confirmed kWh its members bought from the grid.")
    export_kwh = kwh_field(help_text="Confirmed kWh its members sold to the grid.")
    side = serializers.CharField(help_text="buy (a deficit), sell (a surplus) or empty.")
    quantity_kwh = kwh_field(help_text="The manager's order: the net residual.")
    limit_price_per_kwh = price_field(allow_null=True)
    traded_kwh = kwh_field(help_text="Traded with other communities of the region.")
    outside_kwh = kwh_field(help_text="What of the order went to the outside grid after all.")


class RegionTradeSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    seller = serializers.CharField(source="seller.community.slug")
    buyer = serializers.CharField(source="buyer.community.slug")
    quantity_kwh = kwh_field()
    price_per_kwh = price_field()


class RegionIntervalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    region = serializers.CharField(source="region.slug")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    cleared_at = serializers.DateTimeField()
    mechanism = serializers.ChoiceField(choices=RegionMechanism.choices)
    pricing_k = serializers.DecimalField(max_digits=4, decimal_places=3)
    offer_k = serializers.DecimalField(max_digits=4, decimal_places=3)
    request_k = serializers.DecimalField(max_digits=4, decimal_places=3)
    price_per_kwh = price_field(allow_null=True, help_text="The uniform price, if any.")
    traded_kwh = kwh_field(help_text="Energy traded between the communities.")
    residuals = RegionResidualSerializer(many=True)
    trades = RegionTradeSerializer(many=True)


class DepthLevelSerializer(serializers.Serializer):
    price_per_kwh = price_field()
    cumulative_kwh = kwh_field()


class DepthSerializer(serializers.Serializer):
    interval = serializers.IntegerField()
    supply = DepthLevelSerializer(many=True, help_text="Ascending price: sellers' curve.")
    demand = DepthLevelSerializer(many=True, help_text="Descending price: buyers' curve.")


class ViolationSerializer(serializers.Serializer):
    kind = serializers.CharField()
    element = serializers.CharField(allow_blank=True)
    value = serializers.FloatField(allow_null=True)
    limit = serializers.FloatField(allow_null=True)
    caused_by_trades = serializers.BooleanField(
        help_text="Exports or flexible purchases push it past what curtailment can reach."
    )
    needs_grid_action = serializers.BooleanField(
        help_text="Broken even with every export and flexible purchase curtailed: for the manager."
    )


_VIOLATION_KEYS = ("kind", "element", "value", "limit", "caused_by_trades", "needs_grid_action")


class StrengthEventSerializer(serializers.Serializer):
    bus = serializers.IntegerField()
    short_circuit_mva = serializers.FloatField(help_text="IEC 60909 maximum S''k of the bus.")
    export_kw = serializers.FloatField(help_text="The inverter export scheduled at the bus.")
    ratio = serializers.FloatField(help_text="Short-circuit power over that export.")
    min_ratio = serializers.FloatField()
    hostable_kw = serializers.FloatField(help_text="The export the bus can take.")


class GridCheckSerializer(serializers.Serializer):
    """Anonymised: no per-trade curtailments, no per-bus values, no meter points."""

    interval = serializers.IntegerField(source="interval_id")
    checked_at = serializers.DateTimeField()
    feasible = serializers.BooleanField()
    held_reason = serializers.CharField(
        allow_blank=True, help_text="Why an infeasible interval is held for the manager."
    )
    power_flows = serializers.IntegerField()
    min_vm_pu = serializers.FloatField(allow_null=True)
    max_vm_pu = serializers.FloatField(allow_null=True)
    max_line_loading_percent = serializers.FloatField(allow_null=True)
    max_trafo_loading_percent = serializers.FloatField(allow_null=True)
    losses_kw = serializers.FloatField(allow_null=True)
    losses_kwh = serializers.DecimalField(
        max_digits=14,
        decimal_places=3,
        allow_null=True,
        help_text="The final state's losses in the interval, shared by the meter points that "
        "cause them (by normalised marginal loss factors) and settled at the loss price.",
    )
    strength_events = StrengthEventSerializer(
        many=True, help_text="Buses whose scheduled export broke the minimum short-circuit ratio."
    )
    strength_curtailed_kwh = serializers.DecimalField(
        max_digits=14, decimal_places=3, help_text="Export curtailed for system strength."
    )
    violations = serializers.SerializerMethodField()
    curtailments = serializers.SerializerMethodField(help_text="How many trades were curtailed.")
    trades_checked = serializers.IntegerField()
    scheduled_kwh = serializers.DecimalField(max_digits=14, decimal_places=3)
    curtailed_kwh = serializers.DecimalField(max_digits=14, decimal_places=3)

    @extend_schema_field(ViolationSerializer(many=True))
    def get_violations(self, result: Any) -> list[dict[str, Any]]:
        rows = []
        for violation in result.violations or []:
            row = {key: violation.get(key) for key in _VIOLATION_KEYS}
            if row["kind"] == "unmapped_meter_point":
                row["element"] = ""  # the element names a meter point: not for everyone
            row["element"] = row["element"] or ""
            row["caused_by_trades"] = bool(row["caused_by_trades"])
            row["needs_grid_action"] = bool(row["needs_grid_action"])
            rows.append(row)
        return rows

    def get_curtailments(self, result: Any) -> int:
        return len(result.curtailments or [])


# --- Board, postings, bids, trades ------------------------------------------------------------
class BoardQuerySerializer(serializers.Serializer):
    community = serializers.SlugField(max_length=60)
    interval = id_field(query=True, required=False)
    side = serializers.ChoiceField(choices=Side.choices, required=False)


class BoardPostingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    interval = serializers.IntegerField(source="interval_id")
    interval_start = serializers.DateTimeField()
    gate_closure_at = serializers.DateTimeField()
    side = serializers.ChoiceField(choices=Side.choices)
    pseudonym = serializers.CharField()
    quantity_kwh = kwh_field()
    remaining_kwh = kwh_field()
    limit_price_per_kwh = price_field()
    submitted_at = serializers.DateTimeField()
    pending_bids = serializers.IntegerField()
    best_bid_price_per_kwh = price_field(allow_null=True)


def _iso(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _decimal(value: Decimal, step: Decimal) -> str:
    """A decimal as DRF's ``DecimalField`` writes it: quantized to ``step``, plain digits."""
    return f"{value.quantize(step):f}"


def board_posting_data(row: BoardPosting) -> dict[str, Any]:
    """What ``BoardPostingSerializer`` renders (a test pins the equality), built directly: the
    board is the hottest read, and DRF's per-field machinery was most of its cost."""
    best = row.best_bid_price_per_kwh
    return {
        "id": row.id,
        "interval": row.interval_id,
        "interval_start": _iso(row.interval_start),
        "gate_closure_at": _iso(row.gate_closure_at),
        "side": row.side,
        "pseudonym": row.pseudonym,
        "quantity_kwh": str(row.quantity_kwh.quantize(KWH)),
        "remaining_kwh": str(row.remaining_kwh.quantize(KWH)),
        "limit_price_per_kwh": str(row.limit_price_per_kwh.quantize(PRICE)),
        "submitted_at": _iso(row.submitted_at),
        "pending_bids": row.pending_bids,
        "best_bid_price_per_kwh": None if best is None else str(best.quantize(PRICE)),
    }


class PostingCreateSerializer(serializers.Serializer):
    interval = id_field()
    meter_point = id_field(help_text="One of your meter points in the interval's community.")
    side = serializers.ChoiceField(choices=Side.choices)
    quantity_kwh = kwh_field(min_value=KWH)
    limit_price_per_kwh = price_field()
    auto_accept_best_bids = serializers.BooleanField(default=True)
    flexible = serializers.BooleanField(
        default=False,
        help_text=(
            "A flexible purchase (battery or EV charging, heat pump) that the grid check may "
            "curtail; only for side=buy."
        ),
    )


class PostingModifySerializer(serializers.Serializer):
    quantity_kwh = kwh_field(
        min_value=KWH,
        required=False,
        help_text="Lowering only the quantity keeps the posting's time priority; it cannot go "
        "below the kWh already traded.",
    )
    limit_price_per_kwh = price_field(
        required=False,
        help_text="A new price (or a higher quantity) takes a new time priority; pending bids "
        "the new price no longer admits expire.",
    )


class BidModifySerializer(serializers.Serializer):
    quantity_kwh = kwh_field(
        min_value=KWH,
        required=False,
        help_text="Lowering only the quantity keeps the bid's time priority; it cannot exceed "
        "what the posting still has.",
    )
    price_per_kwh = price_field(
        required=False,
        help_text="A new price (or a higher quantity) takes a new time priority; it must stay "
        "one the posting can accept.",
    )


class PostingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    community = serializers.CharField(source="interval.community.slug")
    interval = serializers.IntegerField(source="interval_id")
    interval_start = serializers.DateTimeField(source="interval.start")
    meter_point = serializers.IntegerField(source="meter_point_id")
    side = serializers.ChoiceField(choices=Side.choices)
    quantity_kwh = kwh_field()
    allocated_kwh = kwh_field()
    remaining_kwh = kwh_field()
    limit_price_per_kwh = price_field()
    auto_accept_best_bids = serializers.BooleanField()
    flexible = serializers.BooleanField()
    autopilot = serializers.BooleanField(
        help_text="Posted by the member's autopilot (switched on on its page), not by hand."
    )
    status = serializers.ChoiceField(choices=PostingStatus.choices)
    exclusion_reason = serializers.CharField(
        help_text="Why clearing left it out (status `excluded`); empty otherwise."
    )
    submitted_at = serializers.DateTimeField()
    pending_bids = serializers.IntegerField(default=0)


def posting_data(posting: Posting) -> dict[str, Any]:
    """What ``PostingSerializer`` renders (a test pins the equality), built directly: it is the
    answer to every order post, where DRF's per-field machinery (a deep copy of 17 fields per
    answer, then a lookup and a conversion per field) cost more CPU than the order's insert.
    The posting's interval and its community are read already (the service locked them)."""
    interval = posting.interval
    pending = getattr(posting, "pending_bids", 0)
    return {
        "id": posting.pk,
        "community": interval.community.slug,
        "interval": posting.interval_id,
        "interval_start": _iso(interval.start),
        "meter_point": posting.meter_point_id,
        "side": str(posting.side),
        "quantity_kwh": _decimal(posting.quantity_kwh, KWH),
        "allocated_kwh": _decimal(posting.allocated_kwh, KWH),
        "remaining_kwh": _decimal(posting.remaining_kwh, KWH),
        "limit_price_per_kwh": _decimal(posting.limit_price_per_kwh, PRICE),
        "auto_accept_best_bids": bool(posting.auto_accept_best_bids),
        "flexible": bool(posting.flexible),
        "autopilot": bool(posting.autopilot),
        "status": str(posting.status),
        "exclusion_reason": str(posting.exclusion_reason),
        "submitted_at": _iso(posting.submitted_at),
        "pending_bids": None if pending is None else int(pending),
    }


class BidCreateSerializer(serializers.Serializer):
    posting = id_field()
    meter_point = id_field(help_text="One of your meter points in the posting's community.")
    quantity_kwh = kwh_field(min_value=KWH)
    price_per_kwh = price_field()


class BidAcceptSerializer(serializers.Serializer):
    quantity_kwh = kwh_field(
        min_value=KWH,
        required=False,
        help_text="Accept only part; without it, as much as both allow.",
    )


class BidSerializer(serializers.Serializer):
    """A bid as its bidder sees it."""

    id = serializers.IntegerField()
    posting = serializers.IntegerField(source="posting_id")
    community = serializers.CharField(source="posting.interval.community.slug")
    interval = serializers.IntegerField(source="posting.interval_id")
    meter_point = serializers.IntegerField(source="meter_point_id")
    quantity_kwh = kwh_field()
    price_per_kwh = price_field()
    accepted_kwh = kwh_field()
    status = serializers.ChoiceField(choices=BidStatus.choices)
    exclusion_reason = serializers.CharField(
        help_text="Why clearing left it out (status `excluded`); empty otherwise."
    )
    submitted_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class PostingBidSerializer(serializers.Serializer):
    """A bid on one's own posting: the bidder is a pseudonym."""

    id = serializers.IntegerField()
    pseudonym = serializers.CharField()
    quantity_kwh = kwh_field()
    price_per_kwh = price_field()
    accepted_kwh = kwh_field()
    status = serializers.ChoiceField(choices=BidStatus.choices)
    submitted_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class TradeSerializer(serializers.Serializer):
    """A trade from the caller's side: what they bought or sold, from whom (a pseudonym)."""

    id = serializers.IntegerField()
    community = serializers.CharField(source="interval.community.slug")
    interval = serializers.IntegerField(source="interval_id")
    interval_start = serializers.DateTimeField(source="interval.start")
    source = serializers.ChoiceField(choices=TradeSource.choices)  # type: ignore[assignment]
    side = serializers.SerializerMethodField()
    counterpart = serializers.SerializerMethodField(
        help_text="The other member's pseudonym, or `grid` for the outside grid."
    )
    quantity_kwh = kwh_field()
    price_per_kwh = price_field(help_text="What the buyer pays per kWh.")
    seller_price_per_kwh = price_field(help_text="What the seller receives per kWh.")
    confirmed_kwh = kwh_field(allow_null=True)
    curtailed_kwh = kwh_field()
    curtailment_reason = serializers.CharField()
    network_use = serializers.SerializerMethodField(
        help_text="Units of use of the network the caller's side is charged for (1 = the "
        "average meter point's use from the feeder head); null before the grid check or off "
        "the network."
    )
    created_at = serializers.DateTimeField()

    def _buying(self, trade: Any) -> bool:
        return trade.buyer_id in self.context.get("membership_ids", ())

    @extend_schema_field(serializers.ChoiceField(choices=Side.choices))
    def get_side(self, trade: Any) -> str:
        return Side.BUY.value if self._buying(trade) else Side.SELL.value

    def get_counterpart(self, trade: Any) -> str:
        other = trade.seller_pseudonym if self._buying(trade) else trade.buyer_pseudonym
        return other or "grid"

    @extend_schema_field(serializers.DecimalField(max_digits=8, decimal_places=4, allow_null=True))
    def get_network_use(self, trade: Any) -> str | None:
        use = trade.buyer_network_use if self._buying(trade) else trade.seller_network_use
        return None if use is None else str(use)


# --- Meter points and readings ----------------------------------------------------------------
class MeterPointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    community = serializers.CharField(source="membership.community.slug")
    label = serializers.CharField()  # type: ignore[assignment]
    import_capacity_kw = kw_field()
    export_capacity_kw = kw_field()
    pv_kwp = kw_field()
    battery_kwh = kw_field()
    battery_kw = kw_field()
    flexible_load_kw = kw_field()
    bus = serializers.IntegerField(allow_null=True, help_text="Set by the community manager.")
    status = serializers.ChoiceField(
        choices=MeterPointStatus.choices,
        help_text="Only an approved meter point posts, bids, reports readings and is settled.",
    )
    status_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class MeterPointApproveSerializer(serializers.Serializer):
    """What the manager confirms; anything left out keeps the member's declaration."""

    import_capacity_kw = kw_field(required=False, min_value=KW)
    export_capacity_kw = kw_field(required=False, min_value=KW)
    bus = StrictIntegerField(
        required=False, min_value=0, max_value=10**6,
        help_text="A connection bus of the community's network (required once it has one).",
    )  # fmt: skip
    network_elements = serializers.ListField(
        child=TextField(max_length=40), required=False, max_length=50,
        help_text="The loads and generators on the bus it stands for, e.g. ['load 3'].",
    )  # fmt: skip
    power_factor = DecimalInput(
        step=Decimal("0.001"), max_digits=4, min_value=Decimal("0.5"), max_value=Decimal(1),
        required=False,
    )  # fmt: skip


class MeterPointRejectSerializer(serializers.Serializer):
    reason = TextField(max_length=500, required=False, allow_blank=True)


class MeterPointCreateSerializer(serializers.Serializer):
    community = serializers.SlugField(max_length=60)
    label = TextField(max_length=100)  # type: ignore[assignment]
    import_capacity_kw = kw_field(min_value=KW)
    export_capacity_kw = kw_field(min_value=KW)
    pv_kwp = kw_field(required=False, min_value=Decimal(0))
    battery_kwh = kw_field(required=False, min_value=Decimal(0))
    battery_kw = kw_field(required=False, min_value=Decimal(0))
    flexible_load_kw = kw_field(required=False, min_value=Decimal(0))


class ReadingInputSerializer(serializers.Serializer):
    meter_point = id_field()
    interval = id_field(required=False, help_text="The interval's id, or give interval_start.")
    interval_start = serializers.DateTimeField(
        required=False, help_text="The interval's start with a time zone (UTC preferred)."
    )
    imported_kwh = kwh_field()
    exported_kwh = kwh_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "interval" not in attrs and "interval_start" not in attrs:
            raise serializers.ValidationError({"interval": "Give interval or interval_start."})
        return attrs


class ReadingsUploadSerializer(serializers.Serializer):
    readings = ReadingInputSerializer(  # type: ignore[call-arg] # ListSerializer takes it
        many=True, allow_empty=False, max_length=MAX_ROWS
    )


class ReadingRowSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="Position in the submitted list, from 1.")
    accepted = serializers.BooleanField()
    code = serializers.CharField(help_text="Why it was refused (an error code); empty if accepted.")
    reason = serializers.CharField()
    reading_id = serializers.IntegerField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)
    unchanged = serializers.BooleanField(help_text="Identical to the stored reading; not stored.")
    flagged = serializers.BooleanField(
        help_text="Stored but not counted (a jump against the meter's history, `reading_jump`): "
        "it settles once a manager accepts it."
    )


class ReadingReportSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Rows stored, flagged ones included.")
    refused = serializers.IntegerField()
    flagged = serializers.IntegerField(help_text="Rows stored but awaiting a manager.")
    rows = ReadingRowSerializer(many=True)
    adjustment_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Ledger adjustments booked for readings of already settled intervals.",
    )


class MeterReadingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    meter_point = serializers.IntegerField(source="meter_point_id")
    interval = serializers.IntegerField(source="interval_id")
    interval_start = serializers.DateTimeField(source="interval.start")
    imported_kwh = kwh_field()
    exported_kwh = kwh_field()
    source = serializers.CharField()  # type: ignore[assignment]
    received_at = serializers.DateTimeField()
    version = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=ReadingStatus.choices, help_text="A flagged reading settles nothing yet."
    )
    flag_reason = serializers.CharField()


# --- Settlements and statements ---------------------------------------------------------------
class SettlementSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    community = serializers.CharField(source="interval.community.slug")
    interval = serializers.IntegerField(source="interval_id")
    interval_start = serializers.DateTimeField(source="interval.start")
    confirmed_bought_kwh = kwh_field()
    confirmed_sold_kwh = kwh_field()
    metered_import_kwh = kwh_field()
    metered_export_kwh = kwh_field()
    imbalance_kwh = kwh_field()
    estimated = serializers.BooleanField()
    settled_at = serializers.DateTimeField()
    adjusted_at = serializers.DateTimeField(allow_null=True)


def money_field(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=16, decimal_places=2, **kwargs)


class StatementMonthSerializer(serializers.Serializer):
    year = serializers.IntegerField()
    month = serializers.IntegerField()


class StatementQuerySerializer(serializers.Serializer):
    member = TextField(
        max_length=40,
        required=False,
        help_text="A member's pseudonym (the community's managers only).",
    )


class StatementIndexSerializer(serializers.Serializer):
    community = serializers.CharField()
    pseudonym = serializers.CharField()
    balance = money_field(help_text="> 0: the community owes you; < 0: you owe it.")
    months = StatementMonthSerializer(many=True)


class StatementRowSerializer(serializers.Serializer):
    interval_start = serializers.DateTimeField()
    bought_kwh = kwh_field()
    sold_kwh = kwh_field()
    purchases = money_field()
    sales = money_field()
    fees = money_field()
    network_charges = money_field(help_text="Network charges by use of the network.")
    losses_kwh = kwh_field(help_text="The member's share of the network losses.")
    losses = money_field(help_text="What that share cost (< 0) or was credited (> 0).")
    imported_kwh = kwh_field()
    exported_kwh = kwh_field()
    imbalance_kwh = kwh_field()
    imbalance = money_field()
    adjustments = money_field()
    estimated = serializers.BooleanField()
    total = money_field()
    balance = money_field()
    grid_only = money_field(help_text="The same metered energy at the grid's tariffs only.")


class StatementSerializer(serializers.Serializer):
    community = serializers.CharField(source="community.slug")
    pseudonym = serializers.CharField(source="membership.pseudonym")
    currency = serializers.CharField(source="community.currency")
    month_start = serializers.DateTimeField()
    month_end = serializers.DateTimeField()
    opening_balance = money_field()
    closing_balance = money_field()
    total = money_field()
    grid_only_total = money_field()
    savings = money_field(help_text="How much better off than with the grid alone (> 0 saved).")
    rows = StatementRowSerializer(many=True)


# --- Statistics -------------------------------------------------------------------------------
MAX_STATISTICS_DAYS = 366


@extend_schema_field({"type": "string", "format": "date", "pattern": DAY_PATTERN})
class DayField(serializers.DateField):
    """A local day written YYYY-MM-DD in the years the statistics cover (the schema's pattern)."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str) or not re.fullmatch(DAY_PATTERN[1:-1], value):
            raise serializers.ValidationError(
                f"Give a day as YYYY-MM-DD between {FIRST_YEAR} and {LAST_YEAR}.", code="invalid"
            )
        return super().to_internal_value(value)


class StatisticsQuerySerializer(serializers.Serializer):
    community = serializers.SlugField(max_length=60, required=False)
    first_day = DayField(
        required=False,
        help_text="First local day (default: six days before today); not after last_day, at "
        f"most {MAX_STATISTICS_DAYS} days before it (else `bad_range`).",
    )
    last_day = DayField(required=False, help_text="Last local day (default: today).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("first_day", "last_day"):
            if name in attrs and not FIRST_YEAR <= attrs[name].year <= LAST_YEAR:
                raise serializers.ValidationError(
                    {name: f"Give a day between {FIRST_YEAR} and {LAST_YEAR}."}, code="max_value"
                )
        first, last = attrs.get("first_day"), attrs.get("last_day")
        # Across fields, so no schema keyword can say it: a code of its own (``bad_range``).
        if first and last and first > last:
            raise serializers.ValidationError(
                {"last_day": "The last day is before the first."}, code=ErrorCode.BAD_RANGE.value
            )
        if first and last and (last - first).days > MAX_STATISTICS_DAYS:
            raise serializers.ValidationError(
                {"last_day": f"At most {MAX_STATISTICS_DAYS} days at a time."},
                code=ErrorCode.BAD_RANGE.value,
            )
        return attrs


class CommunityStatisticsSerializer(serializers.Serializer):
    """The regulators' dashboard figures for one community (same definitions, see README)."""

    community = serializers.CharField()
    first_day = serializers.DateField()
    last_day = serializers.DateField()
    intervals = serializers.IntegerField()
    cleared_intervals = serializers.IntegerField()
    trades = serializers.IntegerField()
    p2p_kwh = serializers.DecimalField(max_digits=18, decimal_places=3)
    from_grid_kwh = serializers.DecimalField(max_digits=18, decimal_places=3)
    to_grid_kwh = serializers.DecimalField(max_digits=18, decimal_places=3)
    self_sufficiency = serializers.FloatField(
        allow_null=True, help_text="P2P energy / (P2P energy + energy from the grid)."
    )
    self_consumption = serializers.FloatField(
        allow_null=True, help_text="P2P energy / (P2P energy + energy to the grid)."
    )
    average_p2p_price_per_kwh = price_field(
        allow_null=True, help_text="Volume-weighted price of the P2P trades."
    )
    curtailed_kwh = serializers.DecimalField(max_digits=18, decimal_places=3)
    approved_members = serializers.IntegerField()
