"""Admin pages for users, memberships, meter points, tokens and the audit log."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import ApiToken, AuditEvent, Membership, MeterPoint, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "display_name", "is_staff", "is_regulator", "is_active")
    search_fields = ("email", "display_name")
    fieldsets = (
        (None, {"fields": ("email", "password", "display_name")}),
        ("Roles", {"fields": ("is_active", "is_staff", "is_regulator", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("pseudonym", "user", "community", "role", "status", "requested_at")
    list_filter = ("community", "role", "status")


@admin.register(MeterPoint)
class MeterPointAdmin(admin.ModelAdmin):
    list_display = ("label", "membership", "import_capacity_kw", "export_capacity_kw", "bus")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "expires_at", "revoked_at")
    readonly_fields = ("digest", "prefix")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "kind", "actor", "community")
    list_filter = ("kind",)
