"""Admin pages for communities, market rules and the board."""

from django.contrib import admin

from accounts.admin_scoping import CommunityScopedAdmin, CommunityScopedInline
from accounts.models import Membership
from marketplace.models import Bid, Community, Interval, MarketRules, Posting, Trade


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
    list_display = ("name", "slug", "timezone", "currency")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (MembershipInline,)


@admin.register(MarketRules)
class MarketRulesAdmin(admin.ModelAdmin):
    list_display = ("community", "created_at", "market_structure", "clearing_mechanism")


@admin.register(Interval)
class IntervalAdmin(admin.ModelAdmin):
    list_display = ("community", "start", "gate_closure_at", "state", "failed_attempts")
    list_filter = ("community", "state")


@admin.register(Posting)
class PostingAdmin(admin.ModelAdmin):
    list_display = ("interval", "side", "quantity_kwh", "limit_price_per_kwh", "status")


@admin.register(Bid)
class BidAdmin(admin.ModelAdmin):
    list_display = ("posting", "quantity_kwh", "price_per_kwh", "status")


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ("interval", "source", "quantity_kwh", "price_per_kwh", "confirmed_kwh")
