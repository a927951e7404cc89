"""Admin pages for grid models."""

from django.contrib import admin

from grid.models import GridModel


@admin.register(GridModel)
class GridModelAdmin(admin.ModelAdmin):
    list_display = ("community", "source", "reference_name", "uploaded_at")
    exclude = ("network_json",)
