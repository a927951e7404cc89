"""The member's autopilot page: switch it on for a meter point with limits, switch it off, and
see what it posted and how each posting went. Plain form POSTs, redirect after success, the
page again with the error next to its field on failure."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts.access import access_meter_point
from accounts.models import MeterPoint
from accounts.selectors import meter_points_of_user
from config import formatting
from config.errors import ApplicationError, ObjectNotFoundError
from marketplace.autopilot import STRATEGY_LABELS
from marketplace.forms import AutopilotForm, add_service_error
from marketplace.models import Autopilot
from marketplace.selectors.autopilot import autopilot_postings, my_autopilots
from marketplace.services.autopilot import (
    AUTOPILOT_LEAD,
    AutopilotSettings,
    autopilot_switch_off,
    autopilot_switch_on,
)
from marketplace.services.rules import current_rules
from marketplace.views.common import MemberView, member_view

POSTINGS_SHOWN = 50


def _initial(meter_point: MeterPoint | None, autopilot: Autopilot | None) -> dict[str, Any]:
    if autopilot is not None:
        return {
            "meter_point": autopilot.meter_point_id,
            "strategy": autopilot.strategy,
            "max_buy_kwh": autopilot.max_buy_kwh,
            "max_sell_kwh": autopilot.max_sell_kwh,
            "sell_floor_per_kwh": autopilot.sell_floor_per_kwh,
            "buy_ceiling_per_kwh": autopilot.buy_ceiling_per_kwh,
        }
    return {"meter_point": meter_point.pk if meter_point else None}


def _page(
    request: HttpRequest,
    member: MemberView,
    form: AutopilotForm | None = None,
    status: int = 200,
) -> HttpResponse:
    meter_points = list(meter_points_of_user(user=member.user).filter(membership=member.membership))
    autopilots = my_autopilots(membership=member.membership)
    if form is None:
        chosen = request.GET.get("meter_point", "")
        selected = next((mp for mp in meter_points if str(mp.pk) == chosen), None)
        selected = selected or (meter_points[0] if meter_points else None)
        form = AutopilotForm(
            initial=_initial(selected, autopilots.get(selected.pk) if selected else None)
        )
    form.set_choices(meter_point=[(mp.pk, mp.label) for mp in meter_points])
    currency = member.community.currency
    form.fields["sell_floor_per_kwh"].label = f"Never sell below ({currency}/kWh)"
    form.fields["buy_ceiling_per_kwh"].label = f"Never buy above ({currency}/kWh)"
    rules = current_rules(member.community)
    rows = [(mp, autopilots.get(mp.pk)) for mp in meter_points]
    return render(
        request,
        "marketplace/autopilot.html",
        {
            "member": member,
            "community": member.community,
            "membership": member.membership,
            "form": form,
            "rows": rows,
            "rules": rules,
            "lead_minutes": int(AUTOPILOT_LEAD.total_seconds() // 60),
            "postings": autopilot_postings(membership=member.membership, limit=POSTINGS_SHOWN),
            "strategy_labels": {s.value: label for s, label in STRATEGY_LABELS.items()},
        },
        status=status,
    )


def _own_meter_point(member: MemberView, pk: int | None) -> MeterPoint | None:
    if pk is None:
        return None
    try:
        return access_meter_point(member.user, pk, membership=member.membership)
    except ObjectNotFoundError:
        return None


@login_required
@require_http_methods(["GET", "POST"])
def autopilot(request: HttpRequest, slug: str) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    if request.method == "GET":
        return _page(request, member)
    form = AutopilotForm(request.POST)
    action = request.POST.get("action", "on")
    if not member.may_trade:
        form.add_error(None, member.trade_refusal)
        return _page(request, member, form, status=403)
    if action not in {"on", "off"}:
        form.add_error(None, "Choose to switch the autopilot on or off.")
        return _page(request, member, form, status=400)
    # Switching off needs only the meter point; switching on needs every field.
    meter_point = _own_meter_point(member, _int(request.POST))
    if meter_point is None:
        form.add_error("meter_point", "Choose one of your meter points.")
        return _page(request, member, form, status=400)
    url = f"{reverse('marketplace:autopilot', args=[slug])}?meter_point={meter_point.pk}"
    if action == "off":
        withdrawn = autopilot_switch_off(membership=member.membership, meter_point=meter_point)
        note = f"; {withdrawn} of its open postings withdrawn" if withdrawn else ""
        messages.success(request, f"The autopilot for {meter_point.label} is off{note}.")
        return redirect(url)
    if not form.is_valid():
        return _page(request, member, form, status=400)
    data = form.cleaned_data
    try:
        switched = autopilot_switch_on(
            membership=member.membership,
            meter_point=meter_point,
            settings=AutopilotSettings(
                strategy=data["strategy"],
                max_buy_kwh=data["max_buy_kwh"].strip(),
                max_sell_kwh=data["max_sell_kwh"].strip(),
                sell_floor_per_kwh=data["sell_floor_per_kwh"].strip(),
                buy_ceiling_per_kwh=data["buy_ceiling_per_kwh"].strip(),
            ),
        )
    except ApplicationError as error:
        add_service_error(form, error)
        return _page(request, member, form, status=400)
    messages.success(
        request,
        f"The autopilot for {meter_point.label} is on: it buys at most "
        f"{formatting.kwh(switched.max_buy_kwh)} and sells at most "
        f"{formatting.kwh(switched.max_sell_kwh)} per interval, never selling below "
        f"{formatting.price(switched.sell_floor_per_kwh, member.community)} nor buying above "
        f"{formatting.price(switched.buy_ceiling_per_kwh, member.community)}.",
    )
    return redirect(url)


def _int(data: Any) -> int | None:
    try:
        return int(str(data.get("meter_point", "")).strip())
    except ValueError:
        return None
