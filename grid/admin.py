"""Admin pages for grid models: each community's grid page (choose or upload, and the drawing).

A manager sees only their own communities (``CommunityScopedAdmin``): the grid page of another
community's id is a 404. Choosing a reference network and uploading one go through the grid
services (``grid_model_use_reference``, ``grid_model_upload``), which validate and explain.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.safestring import mark_safe

from accounts.access import access_managed_community
from accounts.admin_scoping import CommunityScopedAdmin
from accounts.models import MeterPoint
from config.errors import ApplicationError
from grid import services, studies
from grid.drawing import (
    LEGEND_LOADING,
    LEGEND_VOLTAGE,
    VoltageBand,
    hosting_bars_svg,
    network_svg,
)
from grid.models import GridCheckResult, GridModel
from grid.networks import REFERENCE_NETWORKS, network_geometry
from marketplace.models import Community
from marketplace.services.rules import current_rules

# The largest file the form accepts; the service refuses larger JSON text anyway.
MAX_UPLOAD_BYTES = services.MAX_NETWORK_JSON_CHARS


class ReferenceNetworkForm(forms.Form):
    reference_name = forms.ChoiceField(
        label="Reference network",
        choices=[(n.name, n.label) for n in REFERENCE_NETWORKS.values()],
    )


class NetworkUploadForm(forms.Form):
    network_file = forms.FileField(
        label="pandapower JSON file",
        help_text="Saved with pandapower.to_json; checked before it replaces the current one.",
    )


def last_grid_check(community: Community) -> GridCheckResult | None:
    """The grid check of the latest interval that has one (what the drawing colours)."""
    return (
        GridCheckResult.objects.filter(interval__community=community)
        .select_related("interval")
        .order_by("-interval__start")
        .first()
    )


@admin.register(GridModel)
class GridModelAdmin(CommunityScopedAdmin):
    list_display = ("community", "source", "reference_name", "uploaded_at")
    exclude = ("network_json",)
    change_list_template = "admin/grid/gridmodel/change_list.html"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # A grid model is chosen or uploaded on the community's grid page.
        return False

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "community/<int:community_id>/",
                self.admin_site.admin_view(self.grid_page),
                name="grid_gridmodel_community",
            )
        ]
        return own + super().get_urls()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"grid_communities": self.scoped_communities(request).order_by("name")}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        grid_model = self.get_object(request, object_id)
        if grid_model is None:
            raise Http404("No such grid model.")
        return HttpResponseRedirect(
            reverse("admin:grid_gridmodel_community", args=[grid_model.community_id])
        )

    def grid_page(self, request: HttpRequest, community_id: int) -> HttpResponse:
        # Another community's id is simply not found.
        community = access_managed_community(request.user, community_id)
        reference_form = ReferenceNetworkForm(prefix="ref")
        upload_form = NetworkUploadForm(prefix="up")
        if request.method == "POST":
            try:
                if "choose" in request.POST:
                    reference_form = ReferenceNetworkForm(request.POST, prefix="ref")
                    if reference_form.is_valid():
                        name = reference_form.cleaned_data["reference_name"]
                        services.grid_model_use_reference(community=community, name=name)
                        messages.success(request, f"{community} now uses {name}.")
                        return HttpResponseRedirect(request.path)
                elif "upload" in request.POST:
                    upload_form = NetworkUploadForm(request.POST, request.FILES, prefix="up")
                    if upload_form.is_valid():
                        text = self._read_upload(upload_form)
                        if text is not None:
                            services.grid_model_upload(community=community, json_text=text)
                            messages.success(request, f"{community} now uses the uploaded network.")
                            return HttpResponseRedirect(request.path)
            except ApplicationError as error:
                form: forms.Form = upload_form if "upload" in request.POST else reference_form
                target = error.field if error.field in form.fields else None
                form.add_error(target, error.message)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Grid of {community}",
            "opts": self.model._meta,
            "community": community,
            "reference_form": reference_form,
            "upload_form": upload_form,
            "references": list(REFERENCE_NETWORKS.values()),
            **self._drawing_context(community),
        }
        return TemplateResponse(request, "admin/grid/gridmodel/grid_page.html", context)

    @staticmethod
    def _read_upload(form: NetworkUploadForm) -> str | None:
        upload = form.cleaned_data["network_file"]
        if upload.size > MAX_UPLOAD_BYTES:
            form.add_error("network_file", "The file is too large for a community network.")
            return None
        try:
            return str(upload.read().decode("utf-8"))
        except UnicodeDecodeError:
            form.add_error("network_file", "The file is not text (UTF-8 JSON expected).")
            return None

    @staticmethod
    def _strength_context(
        grid_model: GridModel, rules: Any, meter_points: list[MeterPoint]
    ) -> dict[str, Any]:
        """Short-circuit power, hostable export and network use per bus (system strength)."""
        min_ratio = float(rules.min_short_circuit_ratio)
        try:
            buses = studies.grid_model_bus_strength(grid_model, min_ratio=min_ratio)
        except ValueError as exc:
            return {"strength_error": str(exc)}
        installed: dict[int, float] = {}
        for mp in meter_points:
            if mp.bus is not None:
                installed[mp.bus] = installed.get(mp.bus, 0.0) + float(mp.export_capacity_kw or 0)
        rows = [
            (row, installed.get(row.bus, 0.0))
            for row in buses
            if row.connection or row.bus in installed
        ]
        svg = hosting_bars_svg([(bus.label, bus.hostable_export_kw, kw) for bus, kw in rows])
        return {
            "strength_rows": rows,
            "min_ratio": rules.min_short_circuit_ratio,
            # Numbers and escaped labels only.
            "hosting_svg": mark_safe(svg),  # noqa: S308
        }

    def _drawing_context(self, community: Community) -> dict[str, Any]:
        grid_model = GridModel.objects.filter(community=community).first()
        meter_points = list(
            MeterPoint.objects.filter(membership__community=community)
            .select_related("membership")
            .order_by("bus", "membership__pseudonym", "label")
        )
        context: dict[str, Any] = {
            "grid_model": grid_model,
            "meter_points": meter_points,
            "legend_loading": LEGEND_LOADING,
            "legend_voltage": LEGEND_VOLTAGE,
        }
        if grid_model is None:
            return context
        check = last_grid_check(community)
        rules = current_rules(community)
        band = VoltageBand(float(rules.voltage_min_pu), float(rules.voltage_max_pu))
        on_bus: dict[int, list[str]] = {}
        for mp in meter_points:
            if mp.bus is not None:
                on_bus.setdefault(mp.bus, []).append(f"{mp.membership.pseudonym} {mp.label}")
        geometry = network_geometry(services.grid_model_net(grid_model))
        svg = network_svg(
            geometry,
            bus_vm_pu=check.bus_vm_pu if check else {},
            line_loading_percent=check.line_loading_percent if check else {},
            meter_points=on_bus,
            band=band,
            max_trafo_loading_percent=check.max_trafo_loading_percent if check else None,
        )
        context.update(self._strength_context(grid_model, rules, meter_points))
        context.update(
            {
                "check": check,
                "band": band,
                "geometry_counts": {k: len(geometry[k]) for k in ("buses", "lines", "trafos")},
                # The drawing is built from numbers and escaped labels only.
                "network_svg": mark_safe(svg),  # noqa: S308
            }
        )
        return context
