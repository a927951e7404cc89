"""Admin pages: meter readings with a community CSV import, and the ledger, read-only.

Managers see only their own communities' rows (``CommunityScopedAdmin``); nobody, not even a
superuser, can add, change or delete ledger rows here: money moves only through the services.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from accounts import permissions
from accounts.admin_scoping import CommunityScopedAdmin
from accounts.models import User
from config.errors import ApplicationError
from marketplace.ledger.models import (
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    LedgerVerification,
    MeterReading,
    ReadingImportStatus,
    ReadingStatus,
    Settlement,
)
from marketplace.ledger.selectors import reading_imports_visible
from marketplace.ledger.services import CSV_COLUMNS, meter_reading_accept
from marketplace.ledger.services.reading_imports import reading_import_create
from marketplace.models import Community


class ReadOnlyAdmin(CommunityScopedAdmin):
    manager_permissions = frozenset({"view"})

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadingsCsvForm(forms.Form):
    community = forms.ModelChoiceField(queryset=Community.objects.none())
    file = forms.FileField(
        help_text=f"UTF-8 CSV with the columns {', '.join(CSV_COLUMNS)}; interval_start in "
        "ISO 8601 with a time zone, e.g. 2026-06-01T10:00:00Z."
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        community = self.fields["community"]
        assert isinstance(community, forms.ModelChoiceField)
        community.queryset = permissions.managed_communities(user)


@admin.register(MeterReading)
class MeterReadingAdmin(ReadOnlyAdmin):
    community_lookup = "interval__community"
    list_display = (
        "interval", "meter_point", "version", "imported_kwh", "exported_kwh", "source",
        "status", "flag_reason", "received_at",
    )  # fmt: skip
    list_filter = (
        "status", "source", ("interval__community", admin.RelatedOnlyFieldListFilter),
    )  # fmt: skip
    list_select_related = ("interval", "meter_point")
    change_list_template = "ledger/admin/meterreading_change_list.html"
    actions = ("accept_flagged",)

    @admin.action(description="Accept the selected flagged readings (they settle from now on)")
    def accept_flagged(self, request: HttpRequest, queryset: QuerySet[MeterReading]) -> None:
        user = request.user
        assert isinstance(user, User)
        accepted = 0
        for reading in queryset.filter(status=ReadingStatus.FLAGGED).order_by("pk"):
            try:
                meter_reading_accept(reading=reading, accepted_by=user)
            except ApplicationError as error:
                self.message_user(request, f"Reading {reading.pk}: {error.message}", messages.ERROR)
            else:
                accepted += 1
        self.message_user(request, f"Accepted {accepted} flagged reading(s).")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "import-csv/",
                self.admin_site.admin_view(self.import_csv_view),
                name="ledger_meterreading_import_csv",
            ),
            path(
                "import-csv/<int:pk>/",
                self.admin_site.admin_view(self.import_status_view),
                name="ledger_meterreading_import_status",
            ),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "columns": CSV_COLUMNS,
        }

    def import_csv_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a file: its shape is checked now, its rows by a worker (the status page)."""
        user = request.user
        assert isinstance(user, User)  # admin_view requires a signed-in staff user
        if not permissions.manages_any_community(user):
            raise PermissionDenied  # staff, but manages no community to import into
        form = ReadingsCsvForm(request.POST or None, request.FILES or None, user=user)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = reading_import_create(
                    community=form.cleaned_data["community"],
                    file=upload,
                    submitted_by=user,
                    file_name=upload.name or "",
                )
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                return redirect("admin:ledger_meterreading_import_status", pk=job.pk)
        context = self._context(request, "Import meter readings (CSV)")
        context |= {"form": form, "imports": reading_imports_visible(user)[:10]}
        return TemplateResponse(request, "ledger/admin/import_csv.html", context)

    def import_status_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """One import's progress while a worker runs it, and its report once done."""
        user = request.user
        assert isinstance(user, User)
        job = reading_imports_visible(user).filter(pk=pk).first()
        if job is None:
            raise Http404("No such import.")
        context = self._context(request, f"Import of {job.file_name or 'readings.csv'}")
        context |= {"job": job, "done": job.status == ReadingImportStatus.DONE}
        return TemplateResponse(request, "ledger/admin/import_status.html", context)


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("pk", "community", "kind", "membership", "created_at")
    list_filter = ("kind", ("community", admin.RelatedOnlyFieldListFilter))


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("pk", "key", "kind", "community", "interval", "posted_at")
    list_filter = ("kind", ("community", admin.RelatedOnlyFieldListFilter))
    search_fields = ("key",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    community_lookup = "account__community"
    list_display = ("sequence", "transaction", "account", "kind", "amount", "energy_kwh", "hash")
    list_filter = ("kind", ("account__community", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("transaction", "account")


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyAdmin):
    community_lookup = "interval__community"
    list_display = (
        "interval", "membership", "confirmed_bought_kwh", "confirmed_sold_kwh",
        "metered_import_kwh", "metered_export_kwh", "imbalance_kwh", "estimated", "adjusted_at",
    )  # fmt: skip
    list_filter = ("estimated", ("interval__community", admin.RelatedOnlyFieldListFilter))


@admin.register(LedgerVerification)
class LedgerVerificationAdmin(ReadOnlyAdmin):
    list_display = (
        "at", "community", "ok", "problem", "entries_checked", "first_bad_entry_id",
        "checkpoint_sequence", "reason",
    )  # fmt: skip
    list_filter = ("ok", "problem")
