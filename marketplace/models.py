"""Communities and their market rules, delivery intervals, postings, bids and trades."""

from __future__ import annotations

import functools
import zoneinfo
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.timezone import now

from config import formatting
from marketplace.autopilot import STRATEGY_LABELS, AutopilotStrategy
from units import KW, KW_DIGITS, KWH, KWH_DIGITS, PRICE, PRICE_DIGITS, places


def energy_field(**options: Any) -> models.DecimalField:
    """Energy in kWh, to the watt-hour."""
    return models.DecimalField(max_digits=KWH_DIGITS, decimal_places=places(KWH), **options)


def price_field(**options: Any) -> models.DecimalField:
    """A price in currency per kWh, to 1/100 of a cent."""
    return models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=places(PRICE), **options)


@functools.cache
def _time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(name: str) -> None:
    """An IANA time zone name this machine knows (``Europe/Berlin``); every page converts to it."""
    if name not in _time_zone_names():
        raise ValidationError(
            "Unknown time zone %(name)s: use an IANA name such as Europe/Berlin.",
            code="unknown_time_zone",
            params={"name": repr(name[:64])},
        )


class RegionMechanism(models.TextChoices):
    """The budget-balanced mechanisms a region clears its communities' residuals with."""

    UNIFORM = "uniform", "Uniform-price k-double auction"
    PAY_AS_BID = "pay-as-bid", "Pay-as-bid (each pair at the buyer community's bid)"
    DISCRIMINATORY = "discriminatory", "Discriminatory (each pair at ask + k (bid - ask))"


def _k_field(default: str, help_text: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal(default),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=help_text,
    )


class Region(models.Model):
    """Communities that trade their residuals with each other before the outside grid.

    Each interval, once its communities are confirmed, every community's manager offers its
    surplus or requests its deficit (``marketplace.clearing.region``) and the region clears them
    with its mechanism; only what is left goes to the outside grid. Operators create regions.
    """

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    clearing_mechanism = models.CharField(
        max_length=24, choices=RegionMechanism.choices, default=RegionMechanism.UNIFORM
    )
    pricing_k = _k_field("0.5", "The k of the k-double auction and of discriminatory pricing.")
    offer_k = _k_field(
        "0", "A surplus is offered at feed-in + offer k x (retail - feed-in) of its community."
    )
    request_k = _k_field(
        "1", "A deficit is requested at feed-in + request k x (retail - feed-in) of its community."
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Community(models.Model):
    """An energy community: its members trade with each other under one set of market rules."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    timezone = models.CharField(
        max_length=64,
        default="Europe/Berlin",
        validators=[validate_time_zone],
        help_text="An IANA time zone, e.g. Europe/Berlin; for display and daily figures only.",
    )
    currency = models.CharField(max_length=3, default="EUR")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)
    # When the rolling horizon next needs an interval opened (its last interval's end minus the
    # horizon); null until first opened. Lets beat's tick visit only the communities that are
    # due instead of every community on every tick.
    horizon_due_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)
    # At most one region: a community's residual can be offered in one second-level market only.
    region = models.ForeignKey(
        Region,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="communities",
        help_text="The region whose communities trade their residuals with this one.",
    )

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "communities"

    def __str__(self) -> str:
        return self.name


class MarketStructure(models.TextChoices):
    BILATERAL = "bilateral", "Fully decentralised (bilateral)"
    POOL = "pool", "Community-based (pooled double auction)"
    COMPOSITE = "composite", "Composite (bilateral first, then the pool)"


class ClearingMechanism(models.TextChoices):
    UNIFORM = "uniform", "Uniform-price k-double auction"
    PAY_AS_BID = "pay-as-bid", "Pay-as-bid (each pair at the buyer's bid)"
    DISCRIMINATORY = "discriminatory", "Discriminatory (each pair at ask + k (bid - ask))"
    TRADE_REDUCTION = (
        "trade-reduction",
        "McAfee trade reduction (truthful for single-unit traders only)",
    )
    ORDER_TRADE_REDUCTION = (
        "order-trade-reduction",
        "Trade reduction on whole orders (truthful in price for multi-unit orders)",
    )
    # Community pricing rules over quantities: the community is every member's counterparty.
    MID_MARKET_RATE = "mid-market-rate", "Mid-market rate (Long et al. 2017)"
    SUPPLY_DEMAND_RATIO = "supply-demand-ratio", "Supply-demand ratio (Liu et al. 2017)"
    BILL_SHARING = "bill-sharing", "Bill sharing over the month (Long et al. 2017)"


class PricingRule(models.TextChoices):
    MIDPOINT = "midpoint", "k = 0.5 (midpoint)"
    K_PRICING = "k", "k-pricing with the rules' k"


class CurtailmentPolicy(models.TextChoices):
    SENSITIVITY = "sensitivity", "By sensitivity to the violated quantity"
    LAST_ON_FIRST_OFF = "last_on_first_off", "Last on, first off"


class NetworkChargeRule(models.TextChoices):
    FLAT = "flat", "Flat: the community fee per kWh, wherever the energy goes"
    BY_USE = "by_use", "By use of the network: per kWh per unit of use"


class MarketRules(models.Model):
    """One version of a community's market rules.

    Rules are never edited in place: a change is a new version, and each interval keeps the
    version it was opened under, so a change applies only to intervals not yet open.
    """

    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="rules")
    created_at = models.DateTimeField(default=now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    market_structure = models.CharField(
        max_length=16, choices=MarketStructure.choices, default=MarketStructure.COMPOSITE
    )
    clearing_mechanism = models.CharField(
        max_length=24, choices=ClearingMechanism.choices, default=ClearingMechanism.UNIFORM
    )
    pricing_rule = models.CharField(
        max_length=10, choices=PricingRule.choices, default=PricingRule.MIDPOINT
    )
    pricing_k = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.5"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
    )
    interval_minutes = models.PositiveSmallIntegerField(
        choices=[(15, "15 minutes"), (30, "30 minutes"), (60, "60 minutes")], default=15
    )
    gate_closure_lead_minutes = models.PositiveIntegerField(
        default=5, validators=[MaxValueValidator(24 * 60)]
    )
    opening_horizon_hours = models.PositiveIntegerField(
        default=24, validators=[MinValueValidator(1), MaxValueValidator(24 * 14)]
    )
    price_floor = price_field(default=Decimal("0.0000"))
    price_cap = price_field(default=Decimal("0.5000"))
    retail_tariff = price_field(default=Decimal("0.3200"))
    feed_in_tariff = price_field(default=Decimal("0.0800"))
    fee_per_kwh = price_field(default=Decimal("0.0050"))
    voltage_min_pu = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.900"))
    voltage_max_pu = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("1.100"))
    max_line_loading_percent = models.DecimalField(
        max_digits=5, decimal_places=1, default=Decimal("100.0")
    )
    max_trafo_loading_percent = models.DecimalField(
        max_digits=5, decimal_places=1, default=Decimal("100.0")
    )
    curtailment_policy = models.CharField(
        max_length=20, choices=CurtailmentPolicy.choices, default=CurtailmentPolicy.SENSITIVITY
    )
    loss_price_per_kwh = price_field(
        null=True,
        blank=True,
        help_text="What a kWh of network losses costs the member it is allocated to; "
        "empty: the retail tariff.",
    )
    network_charge_rule = models.CharField(
        max_length=8, choices=NetworkChargeRule.choices, default=NetworkChargeRule.FLAT
    )
    network_tariff_per_kwh = price_field(
        default=Decimal("0.0100"),
        help_text="By use: the charge per kWh per unit of use; one unit is what the average "
        "meter point uses to take energy from the outside grid.",
    )
    min_short_circuit_ratio = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("3.00"),
        help_text="Short-circuit power over the inverter export at a bus; below it, the bus's "
        "exports are curtailed (system strength).",
    )

    max_connection_kw = models.DecimalField(
        max_digits=KW_DIGITS,
        decimal_places=places(KW),
        default=Decimal("30.000"),
        help_text="The largest import or export capacity a meter point may be approved with.",
    )

    class Meta:
        ordering = ("community", "-created_at", "-pk")
        verbose_name_plural = "market rules"
        get_latest_by = ("created_at", "pk")

    def __str__(self) -> str:
        return f"{self.community} rules of {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def effective_loss_price_per_kwh(self) -> Decimal:
        return self.retail_tariff if self.loss_price_per_kwh is None else self.loss_price_per_kwh


class IntervalState(models.TextChoices):
    OPEN = "open", "Open"
    GATE_CLOSED = "gate_closed", "Gate closed"
    CLEARED = "cleared", "Cleared"
    GRID_CHECKED = "grid_checked", "Grid checked"
    CONFIRMED = "confirmed", "Confirmed"
    SETTLED = "settled", "Settled"


class Interval(models.Model):
    """A delivery interval of a community, aligned to its length in UTC."""

    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="intervals")
    rules = models.ForeignKey(MarketRules, on_delete=models.PROTECT, related_name="intervals")
    start = models.DateTimeField()
    end = models.DateTimeField()
    gate_closure_at = models.DateTimeField()
    state = models.CharField(
        max_length=16, choices=IntervalState.choices, default=IntervalState.OPEN
    )
    state_changed_at = models.DateTimeField(default=now)
    # When each state was reached and how long its step took, for the pipeline pages.
    timings = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    failed_attempts = models.PositiveIntegerField(default=0)
    # Why the grid check could not confirm the interval (infeasible, or the network does not
    # converge): the pipeline leaves a held interval to the manager until they retry it.
    held_reason = models.TextField(blank=True, db_default="")
    # The newest meter reading of this interval that settlement had seen when it last found
    # readings missing (0: none yet); until a newer one arrives or the settlement window passes,
    # the interval is not due again, so the tick does not retry a waiting settlement every time.
    settlement_seen_reading = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ("community", "start")
        constraints = [
            models.UniqueConstraint(fields=["community", "start"], name="one_interval_per_start"),
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="end_after_start"
            ),
        ]
        indexes = [models.Index(fields=["state", "gate_closure_at"])]

    def __str__(self) -> str:
        # The community's name and zone when it is loaded (admin lists select it); a str() of
        # an interval never costs a query.
        if Interval.community.is_cached(self):
            return (
                f"{self.community.name} · {formatting.span(self.start, self.end, self.community)}"
            )
        return (
            f"Interval of community {self.community_id} · {formatting.span(self.start, self.end)}"
        )

    @property
    def hours(self) -> Decimal:
        return Decimal((self.end - self.start).total_seconds()) / Decimal(3600)


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class PostingStatus(models.TextChoices):
    OPEN = "open", "Open"
    FILLED = "filled", "Filled"
    CLOSED = "closed", "Closed at gate closure"
    CANCELLED = "cancelled", "Cancelled"
    EXCLUDED = "excluded", "Excluded at clearing"


class Posting(models.Model):
    """An offer to sell or a request to buy energy in one interval (an order)."""

    interval = models.ForeignKey(Interval, on_delete=models.PROTECT, related_name="postings")
    membership = models.ForeignKey(
        "accounts.Membership", on_delete=models.PROTECT, related_name="postings"
    )
    meter_point = models.ForeignKey(
        "accounts.MeterPoint", on_delete=models.PROTECT, related_name="postings"
    )
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity_kwh = energy_field()
    limit_price_per_kwh = price_field()
    allocated_kwh = energy_field(default=Decimal("0"))
    auto_accept_best_bids = models.BooleanField(
        default=True, help_text="At gate closure, accept the best remaining bids automatically."
    )
    # A purchase the grid check may curtail (battery or EV charging, a heat pump): demand that
    # can wait. Only buy requests carry it; exports can always be curtailed at the inverter.
    flexible = models.BooleanField(
        default=False,
        db_default=False,
        help_text="A flexible purchase (battery, EV, heat pump) the grid check may curtail.",
    )
    status = models.CharField(
        max_length=10, choices=PostingStatus.choices, default=PostingStatus.OPEN
    )
    submitted_at = models.DateTimeField(default=now, db_index=True)
    # Why clearing left it out (``excluded``): one order it cannot take must not stop the rest.
    exclusion_reason = models.CharField(max_length=300, blank=True, db_default="")
    # Posted by the member's autopilot (``Autopilot``), not by the member's own hand.
    autopilot = models.BooleanField(
        default=False, db_default=False, help_text="Posted by the member's autopilot."
    )

    class Meta:
        ordering = ("interval", "submitted_at", "pk")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity_kwh__gt=0), name="posting_quantity_positive"
            ),
            # The autopilot posts at most once per interval for a meter point, whatever races.
            models.UniqueConstraint(
                fields=["interval", "meter_point"],
                condition=models.Q(autopilot=True),
                name="one_autopilot_posting_per_interval",
            ),
            models.CheckConstraint(
                condition=models.Q(allocated_kwh__gte=0)
                & models.Q(allocated_kwh__lte=models.F("quantity_kwh")),
                name="posting_never_over_allocated",
            ),
        ]
        indexes = [models.Index(fields=["interval", "status", "side"])]

    def __str__(self) -> str:
        what = "Offer" if self.side == Side.SELL else "Request"
        price = formatting.price(self.limit_price_per_kwh)
        return f"{what} of {formatting.kwh(self.quantity_kwh)} at {price}"

    @property
    def remaining_kwh(self) -> Decimal:
        return self.quantity_kwh - self.allocated_kwh


class Autopilot(models.Model):
    """A member's standing instruction to post for one of their meter points, within limits.

    Off until the member switches it on; switching it off keeps the row (and its limits) for
    the next time. The strategies are ``marketplace.autopilot``'s.
    """

    meter_point = models.OneToOneField(
        "accounts.MeterPoint", on_delete=models.PROTECT, related_name="autopilot"
    )
    membership = models.ForeignKey(
        "accounts.Membership", on_delete=models.PROTECT, related_name="autopilots"
    )
    enabled = models.BooleanField(default=False)
    strategy = models.CharField(
        max_length=20,
        choices=[(s.value, label) for s, label in STRATEGY_LABELS.items()],
        default=AutopilotStrategy.BETWEEN_TARIFFS.value,
    )
    max_buy_kwh = energy_field(help_text="At most this much bought per interval.")
    max_sell_kwh = energy_field(help_text="At most this much sold per interval.")
    sell_floor_per_kwh = price_field(help_text="Never sell below this price.")
    buy_ceiling_per_kwh = price_field(help_text="Never buy above this price.")
    changed_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ("membership", "meter_point")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_buy_kwh__gte=0) & models.Q(max_sell_kwh__gte=0),
                name="autopilot_limits_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(sell_floor_per_kwh__lte=models.F("buy_ceiling_per_kwh")),
                name="autopilot_floor_not_above_ceiling",
            ),
        ]

    def __str__(self) -> str:
        return f"Autopilot of meter point {self.meter_point_id} ({'on' if self.enabled else 'off'})"


class BidStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"
    EXPIRED = "expired", "Expired at gate closure"
    POOLED = "pooled", "Traded in the pool at gate closure"
    EXCLUDED = "excluded", "Left out at clearing (see its exclusion reason)"


class Bid(models.Model):
    """Another member's bid on a posting: a buyer on a sell posting, a seller on a buy posting."""

    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="bids")
    membership = models.ForeignKey(
        "accounts.Membership", on_delete=models.PROTECT, related_name="bids"
    )
    meter_point = models.ForeignKey(
        "accounts.MeterPoint", on_delete=models.PROTECT, related_name="bids"
    )
    quantity_kwh = energy_field()
    price_per_kwh = price_field()
    accepted_kwh = energy_field(default=Decimal("0"))
    status = models.CharField(max_length=10, choices=BidStatus.choices, default=BidStatus.PENDING)
    submitted_at = models.DateTimeField(default=now, db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Why clearing left the bid out (status ``excluded``), as for a posting; "" otherwise.
    exclusion_reason = models.CharField(max_length=300, blank=True, db_default="")

    class Meta:
        ordering = ("posting", "submitted_at", "pk")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity_kwh__gt=0), name="bid_quantity_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(accepted_kwh__gte=0)
                & models.Q(accepted_kwh__lte=models.F("quantity_kwh")),
                name="bid_never_over_accepted",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"Bid of {formatting.kwh(self.quantity_kwh)} at {formatting.price(self.price_per_kwh)} "
            f"on posting {self.posting_id}"
        )


class TradeSource(models.TextChoices):
    BILATERAL = "bilateral", "Bilateral (accepted bid)"
    POOL = "pool", "Community pool"
    COMMUNITY = "community", "Community pricing rule (members matched at the rule's prices)"
    GRID = "grid", "With the outside grid"


class Trade(models.Model):
    """Energy agreed between a buyer and a seller for one interval.

    A null buyer or seller is the outside grid, traded through the community. The trade is
    provisional until the grid check confirms it; `confirmed_kwh` is what will be delivered.
    """

    interval = models.ForeignKey(Interval, on_delete=models.PROTECT, related_name="trades")
    source = models.CharField(max_length=10, choices=TradeSource.choices)
    # Unique per (interval, source): makes a re-run of a clearing step unable to book twice.
    sequence = models.PositiveIntegerField()
    buyer = models.ForeignKey(
        "accounts.Membership",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="purchases",
    )
    seller = models.ForeignKey(
        "accounts.Membership", null=True, blank=True, on_delete=models.PROTECT, related_name="sales"
    )
    buyer_meter_point = models.ForeignKey(
        "accounts.MeterPoint", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    seller_meter_point = models.ForeignKey(
        "accounts.MeterPoint", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    posting = models.ForeignKey(
        Posting, null=True, blank=True, on_delete=models.PROTECT, related_name="trades"
    )
    bid = models.OneToOneField(
        Bid, null=True, blank=True, on_delete=models.PROTECT, related_name="trade"
    )
    quantity_kwh = energy_field()
    price_per_kwh = price_field(help_text="What the buyer pays per kWh.")
    seller_price_per_kwh = price_field(help_text="What the seller receives per kWh.")
    # The later of the two orders' submission times: "last on, first off" curtails by it.
    orders_submitted_at = models.DateTimeField()
    created_at = models.DateTimeField(default=now)
    confirmed_kwh = energy_field(null=True, blank=True)
    curtailed_kwh = energy_field(default=Decimal("0"))
    curtailment_reason = models.CharField(max_length=300, blank=True)
    # The buyer's order was a flexible purchase (its posting's ``flexible``), so the grid check
    # may curtail the buyer's side; copied at clearing because pool trades name no posting.
    buyer_flexible = models.BooleanField(default=False, db_default=False)
    # Units of use of the network each member side is charged for (set by the grid check):
    # half the pair's use each for a bilateral trade, all of it for a trade with the outside
    # grid, each side's own use from the feeder head in the pool. Null: not on the network.
    buyer_network_use = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    seller_network_use = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ("interval", "source", "sequence")
        constraints = [
            models.UniqueConstraint(
                fields=["interval", "source", "sequence"], name="one_trade_per_sequence"
            ),
            models.CheckConstraint(
                condition=models.Q(quantity_kwh__gt=0), name="trade_quantity_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(buyer__isnull=False) | models.Q(seller__isnull=False),
                name="trade_has_a_member",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_source_display()}: {formatting.kwh(self.quantity_kwh)} at "
            f"{formatting.price(self.price_per_kwh)}"
        )


class RegionInterval(models.Model):
    """One delivery interval of a region's market: its communities' intervals of the same
    start and end, cleared once (the unique constraint makes a second clearing impossible)."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="intervals")
    start = models.DateTimeField()
    end = models.DateTimeField()
    cleared_at = models.DateTimeField(default=now)
    # The region's rules as they were when it cleared (a region's rules are edited in place).
    mechanism = models.CharField(max_length=24, choices=RegionMechanism.choices)
    pricing_k = models.DecimalField(max_digits=4, decimal_places=3)
    offer_k = models.DecimalField(max_digits=4, decimal_places=3)
    request_k = models.DecimalField(max_digits=4, decimal_places=3)
    price_per_kwh = price_field(null=True, blank=True, help_text="The uniform price, if any.")
    traded_kwh = energy_field(default=Decimal("0"))

    class Meta:
        ordering = ("region", "start")
        constraints = [
            models.UniqueConstraint(
                fields=["region", "start", "end"], name="one_region_interval_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.region} · {formatting.span(self.start, self.end)}"


class RegionPart(models.TextChoices):
    TRADED = "traded", "Took part"
    NO_RESIDUAL = "no_residual", "Took part with nothing to trade"
    HELD = "held", "Held by the grid check: left out"
    LATE = "late", "Not confirmed when delivery began: left out"
    SETTLED = "settled", "Settled before the region cleared: left out"


class RegionResidual(models.Model):
    """One community's part in a region interval: its residual, its order and what it traded."""

    region_interval = models.ForeignKey(
        RegionInterval, on_delete=models.PROTECT, related_name="residuals"
    )
    interval = models.OneToOneField(
        Interval, on_delete=models.PROTECT, related_name="region_residual"
    )
    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="+")
    part = models.CharField(max_length=12, choices=RegionPart.choices)
    import_kwh = energy_field(default=Decimal("0"), help_text="Confirmed grid purchases.")
    export_kwh = energy_field(default=Decimal("0"), help_text="Confirmed grid sales.")
    side = models.CharField(max_length=4, choices=Side.choices, blank=True)
    quantity_kwh = energy_field(default=Decimal("0"), help_text="The manager's order.")
    limit_price_per_kwh = price_field(null=True, blank=True)
    traded_kwh = energy_field(default=Decimal("0"), help_text="Traded with other communities.")

    class Meta:
        ordering = ("region_interval", "community")

    def __str__(self) -> str:
        return f"{self.community_id} in {self.region_interval_id}"

    @property
    def outside_kwh(self) -> Decimal:
        """What of the order went to the outside grid after all."""
        return self.quantity_kwh - self.traded_kwh


class RegionTrade(models.Model):
    """Energy one community's manager sold another's in a region interval."""

    region_interval = models.ForeignKey(
        RegionInterval, on_delete=models.PROTECT, related_name="trades"
    )
    sequence = models.PositiveIntegerField()
    buyer = models.ForeignKey(RegionResidual, on_delete=models.PROTECT, related_name="purchases")
    seller = models.ForeignKey(RegionResidual, on_delete=models.PROTECT, related_name="sales")
    quantity_kwh = energy_field()
    price_per_kwh = price_field(help_text="What the buyer community pays the seller's per kWh.")

    class Meta:
        ordering = ("region_interval", "sequence")
        constraints = [
            models.UniqueConstraint(
                fields=["region_interval", "sequence"], name="one_region_trade_per_sequence"
            ),
            models.CheckConstraint(
                condition=models.Q(quantity_kwh__gt=0), name="region_trade_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{formatting.kwh(self.quantity_kwh)} at {formatting.price(self.price_per_kwh)}"


class IdempotencyRecord(models.Model):
    """A request made with an Idempotency-Key (or a board form's one-time token), and its answer.

    In the database rather than the cache, so a flushed or restarted cache never lets a retried
    request run twice. One row per caller and key: the unique index is what makes a concurrent
    duplicate lose. While the first request runs, ``status`` is null and ``expires_at`` is near
    (a crashed request frees its key then); once answered, the row keeps the answer until it
    expires, and expired rows are deleted periodically or taken over by the next claim.
    """

    # Who called: "t<token id>" or "u<user id>", so two callers never share a key.
    caller = models.CharField(max_length=32)
    # SHA-256 of the client's key, so a long or odd key costs a fixed 64 characters.
    key_digest = models.CharField(max_length=64)
    # SHA-256 of method, path and canonical body: a reused key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["caller", "key_digest"], name="one_record_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.caller} {self.key_digest[:12]} ({self.status or 'running'})"
