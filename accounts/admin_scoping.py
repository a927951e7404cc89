"""Admin scoping: a community manager in the admin sees and edits only their own communities.

`CommunityScopedAdmin` is a ModelAdmin mixin any app's admin can reuse. Superusers keep Django's
normal permissions. A staff user who manages at least one community gets the permissions named in
`manager_permissions` (no Django groups needed), but only on rows of the communities they manage:
the queryset is filtered (so another community's object is "not found" by URL), each object is
checked again, and foreign-key choices are narrowed the same way.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.db.models.fields.related import ForeignKey
from django.forms import ModelChoiceField
from django.http import HttpRequest

from accounts import permissions
from accounts.models import Membership, MeterPoint
from marketplace.models import Community


def _is_manager_in_admin(request: HttpRequest) -> bool:
    user = request.user
    return (
        bool(getattr(user, "is_staff", False))
        and not permissions.is_superuser(user)
        and permissions.manages_any_community(user)
    )


class CommunityScopedAdmin(admin.ModelAdmin):
    """Restrict a ModelAdmin to the communities the signed-in manager runs.

    `community_lookup` is the ORM path from the model to its community ("community",
    "membership__community"; "pk" for Community itself).
    """

    community_lookup: str = "community"
    manager_permissions: frozenset[str] = frozenset({"view", "change"})

    # --- rows ---
    def scoped_communities(self, request: HttpRequest) -> QuerySet[Community]:
        return permissions.managed_communities(request.user)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if permissions.is_superuser(request.user):
            return queryset
        lookup = f"{self.community_lookup}__in"
        return queryset.filter(**{lookup: self.scoped_communities(request)})

    def _in_scope(self, request: HttpRequest, obj: Model | None) -> bool:
        if obj is None:
            return True
        community = permissions.community_of(obj)
        return community is not None and permissions.can_manage(request.user, community)

    def _manager_may(self, request: HttpRequest, action: str, obj: Model | None) -> bool:
        return (
            action in self.manager_permissions
            and _is_manager_in_admin(request)
            and self._in_scope(request, obj)
        )

    # --- permissions ---
    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or _is_manager_in_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if permissions.is_superuser(request.user):
            return super().has_view_permission(request, obj)
        return self._manager_may(request, "view", obj) or self._manager_may(request, "change", obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if permissions.is_superuser(request.user):
            return super().has_change_permission(request, obj)
        return self._manager_may(request, "change", obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        if permissions.is_superuser(request.user):
            return super().has_add_permission(request, *args)
        return self._manager_may(request, "add", None)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if permissions.is_superuser(request.user):
            return super().has_delete_permission(request, obj)
        return self._manager_may(request, "delete", obj)

    # --- choices in forms ---
    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if not permissions.is_superuser(request.user):
            communities = self.scoped_communities(request)
            if db_field.related_model is Community:
                kwargs["queryset"] = communities
            elif db_field.related_model is Membership:
                kwargs["queryset"] = Membership.objects.filter(community__in=communities)
            elif db_field.related_model is MeterPoint:
                kwargs["queryset"] = MeterPoint.objects.filter(
                    membership__community__in=communities
                )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class CommunityScopedInline(admin.TabularInline):
    """A read-only inline whose rows a manager may see when they manage the parent's community."""

    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if permissions.is_superuser(request.user):
            return True
        if obj is None:
            # Django asks without an object when it builds the inline's queryset, which it
            # already limits to the parent's rows; the parent was checked when it was opened.
            return _is_manager_in_admin(request)
        community = permissions.community_of(obj)
        return community is not None and permissions.can_manage(request.user, community)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
