"""Admin pages for communities, market rules, the interval pipeline and the board.

Managers see only their own communities (``CommunityScopedAdmin``). Market rules are edited as a
new version through ``market_rules_update`` after a preview (``market_rules_preview``); the
pipeline page lists every interval's state, timings and errors, retries a failed step through the
pipeline's service, and shows the grid check's violations and curtailments with their trades.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db.models import Min, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts import permissions
from accounts.access import access_managed_community
from accounts.admin_scoping import CommunityScopedAdmin, CommunityScopedInline
from accounts.models import Membership, User
from config import formatting
from config.errors import ApplicationError
from grid.models import GridCheckResult
from marketplace.models import (
    Bid,
    Community,
    Interval,
    MarketRules,
    Posting,
    Region,
    RegionInterval,
    RegionResidual,
    RegionTrade,
    Trade,
)
from marketplace.services import pipeline
from marketplace.services.communities import community_rules_ensure
from marketplace.services.regions import region_communities_set
from marketplace.services.rules import (
    EDITABLE_FIELDS,
    current_rules,
    market_rules_preview,
    market_rules_update,
)

# The admin's home starts with what waits for the manager (templates/admin/peergrid_index.html).
admin.site.index_template = "admin/peergrid_index.html"
admin.site.site_header = "PeerGrid administration"
admin.site.site_title = "PeerGrid admin"
admin.site.index_title = "Run your community"


class MembershipInline(CommunityScopedInline):
    """Members at a glance; decisions are the membership admin's actions (audited services)."""

    model = Membership
    fields = ("pseudonym", "user", "role", "status", "requested_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Community)
class CommunityAdmin(CommunityScopedAdmin):
    # A manager sees and edits only the communities they manage; operators create them.
    community_lookup = "pk"
    list_display = ("name", "slug", "timezone", "currency", "region")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (MembershipInline,)
    # Operators place communities in regions on the region's page (one region at most).
    readonly_fields = ("region",)

    def save_model(self, request: HttpRequest, obj: Community, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            acting = request.user if isinstance(request.user, User) else None
            community_rules_ensure(community=obj, created_by=acting)


# Label, unit and help for each rule; ``{cur}`` is the community's currency.
RULE_TEXT: dict[str, tuple[str, str, str]] = {
    "market_structure": (
        "Market structure",
        "",
        "Bilateral: members accept bids on the board. Pool: one auction at gate closure. "
        "Composite: bilateral first, then the pool.",
    ),
    "clearing_mechanism": (
        "Clearing mechanism",
        "",
        "How the pool matches orders at gate closure.",
    ),
    "pricing_rule": ("Pricing rule", "", "How the uniform-price auction sets its one price."),
    "pricing_k": (
        "k of k-pricing",
        "0 to 1",
        "0 gives the sellers' price, 1 the buyers', 0.5 the middle.",
    ),
    "interval_minutes": ("Interval length", "minutes", "Delivery intervals, aligned in UTC."),
    "gate_closure_lead_minutes": (
        "Gate closure lead",
        "minutes",
        "How long before an interval starts it stops taking postings and bids.",
    ),
    "opening_horizon_hours": (
        "Opening horizon",
        "hours",
        "How far ahead intervals open for trading.",
    ),
    "price_floor": ("Price floor", "{cur}/kWh", "No posting or bid below this price."),
    "price_cap": ("Price cap", "{cur}/kWh", "No posting or bid above this price."),
    "retail_tariff": (
        "Grid retail tariff",
        "{cur}/kWh",
        "What buying from the outside grid costs.",
    ),
    "feed_in_tariff": (
        "Grid feed-in tariff",
        "{cur}/kWh",
        "What selling to the outside grid earns.",
    ),
    "fee_per_kwh": ("Community fee", "{cur}/kWh", "Charged on every kWh traded between members."),
    "voltage_min_pu": ("Lowest bus voltage", "p.u.", "EN 50160: 0.90."),
    "voltage_max_pu": ("Highest bus voltage", "p.u.", "EN 50160: 1.10."),
    "max_line_loading_percent": ("Line loading limit", "%", "Of each cable's rating."),
    "max_trafo_loading_percent": ("Transformer loading limit", "%", "Of the transformer's rating."),
    "curtailment_policy": (
        "Curtailment order",
        "",
        "Which trades the grid check reduces first when a limit would be crossed.",
    ),
    "loss_price_per_kwh": ("Loss price", "{cur}/kWh", ""),
    "network_charge_rule": ("Network charge rule", "", ""),
    "network_tariff_per_kwh": ("Network tariff", "{cur}/kWh per unit of use", ""),
    "min_short_circuit_ratio": ("Minimum short-circuit ratio", "", ""),
    "max_connection_kw": (
        "Maximum connection",
        "kW",
        "No meter point is approved with a larger import or export capacity.",
    ),
}


class MarketRulesForm(forms.ModelForm):
    """The editable rules, with the model's own field validation before the service's.

    Every field carries its label, unit and a line of help; errors show beside their field.
    """

    class Meta:
        model = MarketRules
        fields = EDITABLE_FIELDS

    def __init__(self, *args: Any, currency: str = "EUR", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            label, unit, help_text = RULE_TEXT.get(name, (field.label or name, "", ""))
            unit = unit.format(cur=currency)
            field.label = f"{label} ({unit})" if unit else label
            # The model's own help where this form has no shorter line.
            field.help_text = help_text or field.help_text


@admin.register(MarketRules)
class MarketRulesAdmin(CommunityScopedAdmin):
    """Rules versions are read-only history; "edit" stores a new version after a preview."""

    list_display = (
        "community",
        "created_at",
        "effective_from",
        "created_by",
        "market_structure",
        "clearing_mechanism",
        "retail_tariff",
        "feed_in_tariff",
    )
    list_filter = (("community", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("community", "created_by")
    manager_permissions = frozenset({"view", "add"})
    change_list_template = "admin/marketplace/marketrules/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[MarketRules]:
        return super().get_queryset(request).annotate(first_start=Min("intervals__start"))

    @admin.display(description="effective from", ordering="first_start")
    def effective_from(self, rules: MarketRules) -> str:
        """The start of the first interval opened under this version (none: not used yet)."""
        first = getattr(rules, "first_start", None)
        return formatting.when(first, rules.community) if first else "no interval yet"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a version is never edited in place: intervals keep the one they opened with

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "edit/<int:community_id>/",
                self.admin_site.admin_view(self.edit_view),
                name="marketplace_marketrules_edit",
            )
        ]
        return own + super().get_urls()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"rules_communities": self.scoped_communities(request).order_by("name")}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        communities = list(self.scoped_communities(request).order_by("name")[:2])
        if len(communities) == 1:
            return HttpResponseRedirect(
                reverse("admin:marketplace_marketrules_edit", args=[communities[0].pk])
            )
        return HttpResponseRedirect(reverse("admin:marketplace_marketrules_changelist"))

    def edit_view(self, request: HttpRequest, community_id: int) -> HttpResponse:
        community = access_managed_community(request.user, community_id)
        current = current_rules(community)
        currency = community.currency
        if request.method == "POST":
            form = MarketRulesForm(
                request.POST, instance=MarketRules(community=community), currency=currency
            )
        else:
            form = MarketRulesForm(instance=current, currency=currency)
        preview = None
        if request.method == "POST" and form.is_valid():
            changes = {f: form.cleaned_data[f] for f in EDITABLE_FIELDS
                       if form.cleaned_data[f] != getattr(current, f)}  # fmt: skip
            try:
                preview = market_rules_preview(community=community, changes=changes)
                if "confirm" in request.POST:
                    acting = request.user
                    assert isinstance(acting, User)
                    rules = market_rules_update(community=community, changed_by=acting, **changes)
                    if rules.pk == current.pk:
                        messages.info(request, "Nothing changed; the rules stay as they were.")
                    else:
                        applies = formatting.when(
                            preview.applies_from, community, style="%Y-%m-%d %H:%M"
                        )
                        messages.success(
                            request,
                            f"New rules for {community} apply from {applies}; "
                            f"{preview.intervals_unaffected} open interval(s) keep the old ones.",
                        )
                    return HttpResponseRedirect(
                        reverse("admin:marketplace_marketrules_changelist")
                        + f"?community__id__exact={community.pk}"
                    )
            except ApplicationError as error:
                preview = None
                form.add_error(error.field if error.field in form.fields else None, error.message)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Market rules of {community}",
            "opts": self.model._meta,
            "community": community,
            "current": current,
            "form": form,
            "preview": preview,
        }
        return TemplateResponse(request, "admin/marketplace/marketrules/edit.html", context)


class FailingFilter(admin.SimpleListFilter):
    title = "errors"
    parameter_name = "errors"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("failing", "Failing now"),
            ("held", "Held for the manager"),
            ("retried", "Had failures"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Interval]) -> QuerySet[Interval]:
        if self.value() == "failing":
            return queryset.exclude(last_error="")
        if self.value() == "held":
            return queryset.exclude(held_reason="")
        if self.value() == "retried":
            return queryset.filter(Q(failed_attempts__gt=0) | Q(timings__has_key="failures"))
        return queryset


class TradeInline(CommunityScopedInline):
    model = Trade
    fields = ("source", "sequence", "seller", "buyer", "quantity_kwh", "price_per_kwh",
              "confirmed_kwh", "curtailed_kwh", "curtailment_reason")  # fmt: skip
    readonly_fields = fields
    show_change_link = True


@admin.register(Interval)
class IntervalAdmin(CommunityScopedAdmin):
    """The pipeline page: every interval's state, step timings and errors, per community."""

    list_display = ("start", "community", "state", "gate_closure_at", "step_seconds",
                    "failed_attempts", "error", "held")  # fmt: skip
    list_filter = (("community", admin.RelatedOnlyFieldListFilter), "state", FailingFilter)
    list_select_related = ("community",)
    date_hierarchy = "start"
    ordering = ("-start",)
    manager_permissions = frozenset({"view"})
    readonly_fields = ("community", "rules", "start", "end", "gate_closure_at", "state",
                       "state_changed_at", "failed_attempts", "last_error", "held_reason",
                       "timings")  # fmt: skip
    inlines = (TradeInline,)
    actions = ("retry_failed_step",)
    change_form_template = "admin/marketplace/interval/change_form.html"

    @admin.display(description="step durations (s)")
    def step_seconds(self, interval: Interval) -> str:
        timings = interval.timings or {}
        steps = [s for s in pipeline.NEXT_STATE.values() if isinstance(timings.get(s), dict)]
        done = [f"{state}: {timings[state].get('seconds')}" for state in steps]
        return ", ".join(done) or "-"

    @admin.display(description="last error")
    def error(self, interval: Interval) -> str:
        text = interval.last_error
        return text if len(text) <= 80 else text[:79] + "…"

    @admin.display(description="held for the manager")
    def held(self, interval: Interval) -> str:
        text = interval.held_reason
        return text if len(text) <= 80 else text[:79] + "…"

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return permissions.is_superuser(request.user) or permissions.manages_any_community(
            request.user
        )

    @admin.action(
        description="Retry the failed or held step of selected intervals", permissions=["retry"]
    )
    def retry_failed_step(self, request: HttpRequest, queryset: QuerySet[Interval]) -> None:
        # The pipeline's own step service: compare-and-set, records a new failure if it fails,
        # holds the interval again if the grid check still finds no safe schedule.
        done, failed, skipped = 0, 0, 0
        for interval in queryset.filter(
            Q(failed_attempts__gt=0) | ~Q(last_error="") | ~Q(held_reason="")
        ):
            if pipeline.NEXT_STATE.get(interval.state) is None:
                skipped += 1
                continue
            try:
                moved = pipeline.interval_retry(interval=interval)
            except Exception as error:  # recorded on the interval by the pipeline
                failed += 1
                self.message_user(request, f"{interval}: {error}", messages.ERROR)
            else:
                done += bool(moved)
                skipped += not moved
        self.message_user(
            request, f"Retried: {done} step(s) done, {failed} failed again, {skipped} not due."
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        interval = self.get_object(request, object_id)
        extra: dict[str, Any] = {}
        if interval is not None:
            check = GridCheckResult.objects.filter(interval=interval).first()
            trade_ids = [c.get("trade") for c in (check.curtailments if check else [])]
            trades = Trade.objects.in_bulk([t for t in trade_ids if t is not None])
            steps = [(state, (interval.timings or {}).get(state))
                     for state in pipeline.NEXT_STATE.values()]  # fmt: skip
            extra = {
                "grid_check": check,
                "curtailments": [
                    {**c, "trade_obj": trades.get(c.get("trade"))}
                    for c in (check.curtailments if check else [])
                ],
                "steps": steps,
                "failures": (interval.timings or {}).get("failures", []),
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


class _ReadOnlyScoped(CommunityScopedAdmin):
    manager_permissions = frozenset({"view"})
    community_lookup = "interval__community"


@admin.register(Posting)
class PostingAdmin(_ReadOnlyScoped):
    list_display = ("interval", "side", "quantity_kwh", "limit_price_per_kwh", "flexible",
                    "status", "exclusion_reason")  # fmt: skip
    list_filter = ("side", "flexible", "status")
    list_select_related = ("interval",)


@admin.register(Bid)
class BidAdmin(_ReadOnlyScoped):
    community_lookup = "posting__interval__community"
    list_display = ("posting", "quantity_kwh", "price_per_kwh", "status", "exclusion_reason")
    list_filter = ("status",)


@admin.register(Trade)
class TradeAdmin(_ReadOnlyScoped):
    list_display = ("interval", "source", "quantity_kwh", "price_per_kwh", "buyer_flexible",
                    "confirmed_kwh", "curtailed_kwh", "interval_link")  # fmt: skip
    list_filter = ("source",)
    list_select_related = ("interval",)

    @admin.display(description="pipeline")
    def interval_link(self, trade: Trade) -> str:
        url = reverse("admin:marketplace_interval_change", args=[trade.interval_id])
        return format_html('<a href="{}">interval</a>', url)


class RegionForm(forms.ModelForm):
    """The region's rules and the communities it holds (each in one region at most)."""

    communities = forms.ModelMultipleChoiceField(
        queryset=Community.objects.order_by("name"),
        required=False,
        widget=FilteredSelectMultiple("communities", is_stacked=False),
        help_text="A community already in another region must leave it first.",
    )

    class Meta:
        model = Region
        fields = ("name", "slug", "description", "clearing_mechanism", "pricing_k", "offer_k",
                  "request_k")  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["communities"].initial = list(self.instance.communities.all())

    def clean_communities(self) -> list[Community]:
        chosen = list(self.cleaned_data.get("communities") or [])
        taken = [c.name for c in chosen if c.region_id not in (None, self.instance.pk)]
        if taken:
            raise forms.ValidationError(
                "A community belongs to at most one region; already in another: "
                + ", ".join(sorted(taken))
                + "."
            )
        return chosen


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    """Operators (superusers) create regions and place communities in them."""

    form = RegionForm
    list_display = ("name", "slug", "clearing_mechanism", "pricing_k", "offer_k", "request_k",
                    "community_names")  # fmt: skip
    prepopulated_fields = {"slug": ("name",)}

    @admin.display(description="communities")
    def community_names(self, region: Region) -> str:
        return ", ".join(c.name for c in region.communities.all()) or "-"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Region]:
        return super().get_queryset(request).prefetch_related("communities")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        try:
            region_communities_set(
                region=form.instance, communities=form.cleaned_data["communities"]
            )
        except ApplicationError as error:  # a race with another region's page
            self.message_user(request, error.message, messages.ERROR)


class RegionResidualInline(admin.TabularInline):
    model = RegionResidual
    fields = ("community", "part", "import_kwh", "export_kwh", "side", "quantity_kwh",
              "limit_price_per_kwh", "traded_kwh")  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RegionTradeInline(admin.TabularInline):
    model = RegionTrade
    fields = ("sequence", "seller", "buyer", "quantity_kwh", "price_per_kwh")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RegionInterval)
class RegionIntervalAdmin(admin.ModelAdmin):
    """What each region's market did per period: read-only, like the pipeline page."""

    list_display = ("start", "region", "mechanism", "price_per_kwh", "traded_kwh", "cleared_at")
    list_filter = ("region",)
    date_hierarchy = "start"
    ordering = ("-start",)
    readonly_fields = ("region", "start", "end", "cleared_at", "mechanism", "pricing_k",
                       "offer_k", "request_k", "price_per_kwh", "traded_kwh")  # fmt: skip
    inlines = (RegionResidualInline, RegionTradeInline)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
