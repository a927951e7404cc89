"""Admin pages for users, memberships, meter points, tokens and the audit log.

Community managers see only their own communities (`CommunityScopedAdmin`); status changes,
bus assignments, regulator grants and token revocations go through the services, so they are
checked and audited the same way as on every other channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from accounts import permissions, services
from accounts.admin_scoping import CommunityScopedAdmin, CommunityScopedInline
from accounts.forms import AdminSignInForm, ReasonForm
from accounts.models import ApiToken, AuditEvent, Membership, MeterPoint, User
from config.errors import ApplicationError
from grid.selectors import grid_bus_names

# The admin's sign-in is throttled like the pages' (failures count towards the same lock).
admin.site.login_form = AdminSignInForm


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "display_name", "is_staff", "is_regulator", "is_active")
    list_filter = ("is_staff", "is_regulator", "is_superuser", "is_active")
    search_fields = ("email", "display_name")
    # The regulator role changes only through the audited actions below.
    readonly_fields = ("is_regulator", "last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("email", "password", "display_name")}),
        ("Roles", {"fields": ("is_active", "is_staff", "is_regulator", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    actions = ("grant_regulator", "revoke_regulator")

    def _set_regulator(self, request: HttpRequest, queryset: QuerySet[User], grant: bool) -> None:
        acting = request.user
        assert isinstance(acting, User)
        try:
            for user in queryset:
                if grant:
                    services.regulator_grant(user=user, granted_by=acting)
                else:
                    services.regulator_revoke(user=user, revoked_by=acting)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        verb = "granted" if grant else "revoked"
        self.message_user(request, f"Regulator role {verb} for {queryset.count()} user(s).")

    @admin.action(description="Grant the regulator role", permissions=["change"])
    def grant_regulator(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_regulator(request, queryset, grant=True)

    @admin.action(description="Revoke the regulator role", permissions=["change"])
    def revoke_regulator(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_regulator(request, queryset, grant=False)


MembershipService = Callable[..., Membership]


class MeterPointInline(CommunityScopedInline):
    """The member's meter points with their caps and bus, on the membership's page."""

    model = MeterPoint
    fields = (
        "label",
        "status",
        "bus",
        "import_capacity_kw",
        "export_capacity_kw",
        "pv_kwp",
        "battery_kwh",
    )
    readonly_fields = fields
    show_change_link = True


@admin.register(Membership)
class MembershipAdmin(CommunityScopedAdmin):
    list_display = ("pseudonym", "user", "community", "role", "status", "requested_at")
    list_filter = ("status", "role", ("community", admin.RelatedOnlyFieldListFilter))
    search_fields = ("pseudonym", "user__email")
    list_select_related = ("user", "community")
    # Every change of status goes through an action (a service): checked, reasoned, audited.
    readonly_fields = (
        "user",
        "community",
        "role",
        "status",
        "pseudonym",
        "status_reason",
        "requested_at",
        "decided_at",
        "activity",
        "audit_log",
    )
    actions = ("approve", "reject", "suspend", "reinstate")
    inlines = (MeterPointInline,)

    @admin.display(description="activity")
    def activity(self, membership: Membership) -> str:
        # Counts only: the manager opens the postings, bids and trades lists for details.
        return (
            f"{membership.postings.count()} postings, {membership.bids.count()} bids, "
            f"{membership.purchases.count()} purchases, {membership.sales.count()} sales"
        )

    @admin.display(description="audit log")
    def audit_log(self, membership: Membership) -> str:
        url = reverse("admin:accounts_auditevent_changelist")
        return format_html(
            '<a href="{}?actor__id__exact={}">events by this member</a>', url, membership.user_id
        )

    def _decide(
        self,
        request: HttpRequest,
        queryset: QuerySet[Membership],
        *,
        service: MembershipService,
        verb: str,
        reason_required: bool,
    ) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            reason = form.cleaned_data["reason"].strip()
            if reason_required and not reason:
                form.add_error("reason", "Give a reason; the member sees it and it is logged.")
            else:
                done = 0
                for membership in queryset:
                    try:
                        service(membership=membership, decided_by=request.user, reason=reason)
                    except ApplicationError as error:
                        self.message_user(request, f"{membership}: {error.message}", messages.ERROR)
                    else:
                        done += 1
                if done:
                    self.message_user(request, f"{verb.capitalize()}: {done} membership(s).")
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb.capitalize()} memberships",
            "opts": self.model._meta,
            "queryset": queryset,
            "form": form,
            "verb": verb,
            "action": request.POST.get("action", ""),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "reason_required": reason_required,
        }
        return TemplateResponse(request, "accounts/admin/membership_reason.html", context)

    @admin.action(description="Approve selected memberships", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Membership]) -> HttpResponse | None:
        return self._decide(
            request,
            queryset,
            service=services.membership_approve,
            verb="approve",
            reason_required=False,
        )

    @admin.action(description="Reject selected requests (with a reason)", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[Membership]) -> HttpResponse | None:
        return self._decide(
            request,
            queryset,
            service=services.membership_reject,
            verb="reject",
            reason_required=True,
        )

    @admin.action(description="Suspend selected members (with a reason)", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Membership]) -> HttpResponse | None:
        return self._decide(
            request,
            queryset,
            service=services.membership_suspend,
            verb="suspend",
            reason_required=True,
        )

    @admin.action(description="Reinstate selected suspended members", permissions=["change"])
    def reinstate(
        self, request: HttpRequest, queryset: QuerySet[Membership]
    ) -> HttpResponse | None:
        return self._decide(
            request,
            queryset,
            service=services.membership_reinstate,
            verb="reinstate",
            reason_required=False,
        )


def _bus_choice(bus: int, name: str | None) -> str:
    if not name or name == f"bus {bus}":
        return f"Bus {bus}"
    return f"{name} (bus {bus})"


class MeterPointAdminForm(forms.ModelForm):
    """The bus is a choice among the community's grid connection buses, checked by the service;
    the network elements it stands for and its power factor go with it."""

    bus = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, choices=())
    approve = forms.BooleanField(
        required=False,
        label="Approve",
        help_text=(
            "Approve this meter point with the capacities and the place on the network above: "
            "only then can it post, bid, report readings and be settled. Capacities may not "
            "exceed the community's maximum connection."
        ),
    )
    network_elements = forms.CharField(
        required=False,
        label="Network elements",
        help_text=(
            "The loads and generators on its bus this meter point stands for, e.g. "
            "'load 3; sgen 1'. Empty: an equal share of the bus's elements with the other "
            "meter points there."
        ),
    )

    class Meta:
        model = MeterPoint
        fields = (*services.METER_POINT_EDITABLE, "bus", "network_elements", "power_factor")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buses: list[int] = []
        names: dict[int, str] = {}
        if self.instance.pk:
            grid_model = getattr(self.instance.membership.community, "grid_model", None)
            if grid_model is not None:
                buses = list(grid_model.connection_buses)
                names = grid_bus_names(grid_model=grid_model)
        field = self.fields["bus"]
        assert isinstance(field, forms.TypedChoiceField)
        # Named as on the grid page's drawing, with the index the network uses.
        field.choices = [
            ("", "— not assigned —"),
            *((bus, _bus_choice(bus, names.get(bus))) for bus in buses),
        ]
        self.initial["network_elements"] = "; ".join(self.instance.network_elements or [])
        self.fields["power_factor"].required = False  # left empty: it stays as it is

    def clean_power_factor(self) -> Any:
        return self.cleaned_data.get("power_factor") or self.instance.power_factor

    def clean_network_elements(self) -> list[str]:
        text = self.cleaned_data.get("network_elements") or ""
        return [name.strip() for name in str(text).split(";") if name.strip()]

    def clean_bus(self) -> int | None:
        bus: int | None = self.cleaned_data.get("bus")
        if bus is not None and self.instance.pk:
            try:
                services.check_bus(community=self.instance.membership.community, bus=bus)
            except ApplicationError as error:
                raise ValidationError(error.message, code=error.code.value) from error
        return bus


@admin.register(MeterPoint)
class MeterPointAdmin(CommunityScopedAdmin):
    community_lookup = "membership__community"
    form = MeterPointAdminForm
    list_display = (
        "label",
        "membership",
        "status",
        "import_capacity_kw",
        "export_capacity_kw",
        "bus",
        "network_elements",
        "power_factor",
    )
    list_filter = ("status",)
    list_select_related = ("membership__community",)
    search_fields = ("label", "membership__pseudonym")
    readonly_fields = ("membership", "created_at", "status", "status_reason", "decided_at")
    actions = ("approve", "reject")

    @admin.action(description="Approve selected meter points as declared", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[MeterPoint]) -> None:
        acting = request.user
        assert isinstance(acting, User)
        approved = 0
        for meter_point in queryset.select_related("membership__community").order_by("pk"):
            try:
                services.meter_point_approve(meter_point=meter_point, approved_by=acting)
            except ApplicationError as error:
                self.message_user(request, f"{meter_point}: {error.message}", messages.ERROR)
            else:
                approved += 1
        if approved:
            self.message_user(request, f"Approved {approved} meter point(s).")

    @admin.action(description="Reject selected meter points", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[MeterPoint]) -> None:
        acting = request.user
        assert isinstance(acting, User)
        for meter_point in queryset.order_by("pk"):
            services.meter_point_reject(
                meter_point=meter_point, rejected_by=acting, reason="Rejected by the manager."
            )
        self.message_user(request, f"Rejected {queryset.count()} meter point(s).")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # Members register their own meter points (with their own capacities) on their pages.
        return False

    def save_model(
        self, request: HttpRequest, obj: MeterPoint, form: forms.ModelForm, change: bool
    ) -> None:
        acting = request.user
        assert isinstance(acting, User)
        changes = {
            name: form.cleaned_data[name]
            for name in services.METER_POINT_EDITABLE
            if name in form.changed_data
        }
        try:
            if form.cleaned_data.get("approve"):
                # One step: the capacities and the place the manager confirms are approved.
                services.meter_point_approve(
                    meter_point=obj,
                    approved_by=acting,
                    import_capacity_kw=form.cleaned_data["import_capacity_kw"],
                    export_capacity_kw=form.cleaned_data["export_capacity_kw"],
                    bus=form.cleaned_data["bus"],
                    network_elements=form.cleaned_data["network_elements"],
                    power_factor=form.cleaned_data["power_factor"],
                )
                changes = {k: v for k, v in changes.items() if not k.endswith("_capacity_kw")}
                if changes:
                    services.meter_point_update(meter_point=obj, updated_by=acting, **changes)
                obj.refresh_from_db()
                return
            if changes:
                services.meter_point_update(meter_point=obj, updated_by=acting, **changes)
            placement = {"bus", "network_elements", "power_factor"}
            if placement & set(form.changed_data) and form.cleaned_data["bus"] is not None:
                services.meter_point_assign_bus(
                    meter_point=obj,
                    bus=form.cleaned_data["bus"],
                    assigned_by=acting,
                    network_elements=form.cleaned_data["network_elements"],
                    power_factor=form.cleaned_data["power_factor"],
                )
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
        obj.refresh_from_db()


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Operators only: to find and revoke a leaked token. Tokens are created by their owners."""

    list_display = ("name", "user", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__email")
    readonly_fields = (
        "user",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    exclude = ("digest",)
    actions = ("revoke",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_superuser(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_superuser(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_superuser(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        acting = request.user
        assert isinstance(acting, User)
        for token in queryset:
            services.api_token_revoke(token=token, revoked_by=acting)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(CommunityScopedAdmin):
    """Read-only for everyone; managers see their communities' events, operators all."""

    manager_permissions = frozenset({"view"})
    list_display = ("at", "kind", "actor", "community", "ip_address")
    list_filter = ("kind",)
    search_fields = ("kind", "actor__email")
    list_select_related = ("actor", "community")
    readonly_fields = ("at", "kind", "actor", "community", "detail", "ip_address")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
