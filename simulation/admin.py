"""Scenario runs in the admin, read-only: what ran, how far it got, where its report is."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from simulation.models import SimulationRun


@admin.register(SimulationRun)
class SimulationRunAdmin(admin.ModelAdmin):
    list_display = ("name", "variant", "status", "intervals_done", "intervals_total", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "variant", "sweep")
    readonly_fields = [field.name for field in SimulationRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Runs start from `manage.py simulate`; a row typed in here would run nothing.
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
