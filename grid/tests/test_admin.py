"""The managers' admin pages: grid page, market rules with preview, the pipeline; all scoped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import CommunityFactory, manager_of, member_of, meter_point_for
from grid import studies
from grid.models import GridCheckResult, GridModel
from grid.networks import network_to_json, reference_network
from marketplace.models import Community, Interval, IntervalState, MarketRules, Trade, TradeSource
from marketplace.services.rules import EDITABLE_FIELDS, current_rules

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _interval(community: Community, **fields: Any) -> Interval:
    return Interval.objects.create(
        community=community,
        rules=current_rules(community),
        start=START,
        end=START + timedelta(minutes=15),
        gate_closure_at=START - timedelta(minutes=5),
        **fields,
    )


@pytest.fixture
def two() -> tuple[Community, Community, User]:
    mine = CommunityFactory.create(name="Sonnenfeld", slug="sonnenfeld")
    theirs = CommunityFactory.create(name="Windhof", slug="windhof")
    return mine, theirs, manager_of(mine)


def test_manager_cannot_reach_another_communitys_pages(two: tuple[Any, ...]) -> None:
    mine, theirs, manager = two
    client = _client(manager)
    their_interval = _interval(theirs)
    assert (
        client.get(reverse("admin:grid_gridmodel_community", args=[theirs.pk])).status_code == 404
    )
    assert (
        client.get(reverse("admin:marketplace_marketrules_edit", args=[theirs.pk])).status_code
        == 404
    )
    rules = current_rules(theirs)
    # Out of scope objects are "not found": the admin sends the manager back to its index.
    for url in (
        reverse("admin:marketplace_interval_change", args=[their_interval.pk]),
        reverse("admin:marketplace_marketrules_change", args=[rules.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:index")
    listing = client.get(reverse("admin:marketplace_interval_changelist")).content.decode()
    assert "Windhof" not in listing
    # Their own pages open.
    assert client.get(reverse("admin:grid_gridmodel_community", args=[mine.pk])).status_code == 200
    assert (
        client.get(reverse("admin:marketplace_marketrules_edit", args=[mine.pk])).status_code == 200
    )


def test_prosumer_is_kept_out_of_the_admin(two: tuple[Any, ...]) -> None:
    mine, _, _ = two
    prosumer = member_of(mine).user
    response = _client(prosumer).get(reverse("admin:grid_gridmodel_community", args=[mine.pk]))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_rules_edit_previews_then_saves_a_new_version(two: tuple[Any, ...]) -> None:
    mine, _, manager = two
    client = _client(manager)
    url = reverse("admin:marketplace_marketrules_edit", args=[mine.pk])
    current = current_rules(mine)
    # Every editable rule as the form posts it; an empty loss price means the retail tariff.
    data = {f: "" if getattr(current, f) is None else getattr(current, f) for f in EDITABLE_FIELDS}
    data["retail_tariff"] = "0.3400"
    preview = client.post(url, {**data, "preview": "1"})
    assert preview.status_code == 200
    body = preview.content.decode()
    assert "Confirm and save" in body
    assert "0.3400" in body
    assert MarketRules.objects.filter(community=mine).count() == 1  # nothing saved yet
    saved = client.post(url, {**data, "confirm": "1"})
    assert saved.status_code == 302
    assert current_rules(mine).retail_tariff == Decimal("0.34")
    # The service's validation shows on the field; nothing is written.
    bad = client.post(url, {**data, "feed_in_tariff": "0.5000", "confirm": "1"})
    assert bad.status_code == 200
    assert "cannot exceed the retail tariff" in bad.content.decode()
    assert MarketRules.objects.filter(community=mine).count() == 2


def test_grid_page_chooses_reference_refuses_bad_upload_and_draws(two: tuple[Any, ...]) -> None:
    mine, _, manager = two
    client = _client(manager)
    url = reverse("admin:grid_gridmodel_community", args=[mine.pk])
    assert "No network yet" in client.get(url).content.decode()
    chosen = client.post(url, {"ref-reference_name": "kerber_landnetz_kabel_1", "choose": "1"})
    assert chosen.status_code == 302
    grid_model = GridModel.objects.get(community=mine)
    bad = client.post(
        url, {"upload": "1", "up-network_file": SimpleUploadedFile("net.json", b"{not json")}
    )
    assert bad.status_code == 200
    assert "The network cannot be used" in bad.content.decode()
    assert GridModel.objects.get(community=mine).uploaded_at == grid_model.uploaded_at
    membership = member_of(mine)
    meter_point = meter_point_for(membership, label="roof")
    meter_point.bus = grid_model.connection_buses[0]
    meter_point.save(update_fields=["bus"])
    interval = _interval(mine, state=IntervalState.CONFIRMED)
    GridCheckResult.objects.create(
        interval=interval, grid_model=grid_model, feasible=True, power_flows=1,
        min_vm_pu=0.97, max_vm_pu=1.0, max_line_loading_percent=120.0, losses_kw=0.2,
        bus_vm_pu={str(b): 0.97 for b in grid_model.connection_buses},
        line_loading_percent={"0": 120.0}, duration_s=0.01,
    )  # fmt: skip
    page = client.get(url).content.decode()
    assert '<svg class="network"' in page
    assert "#b3261e" in page  # the overloaded line is red
    assert "roof" in page
    # System strength: every connection bus with its short-circuit power and hostable export.
    assert 'id="system-strength"' in page
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="hosting-bars"' in page
    rows = studies.grid_model_bus_strength(grid_model, min_ratio=3.0)
    weakest = rows[0]
    assert weakest.connection
    assert f"{weakest.short_circuit_mva:.3f}" in page
    assert f"{weakest.hostable_export_kw:.0f}" in page


def test_pipeline_retry_and_interval_detail(two: tuple[Any, ...]) -> None:
    mine, theirs, manager = two
    client = _client(manager)
    failing = _interval(mine, state=IntervalState.CLEARED, last_error="grid_checked: boom",
                        failed_attempts=1)  # fmt: skip
    theirs_failing = _interval(
        theirs, state=IntervalState.CLEARED, last_error="x", failed_attempts=1
    )
    changelist = reverse("admin:marketplace_interval_changelist")
    response = client.post(
        changelist,
        {"action": "retry_failed_step", "_selected_action": [failing.pk, theirs_failing.pk]},
    )
    assert response.status_code == 302
    failing.refresh_from_db()
    theirs_failing.refresh_from_db()
    # Without a grid model the check records why and lets the trades through.
    assert failing.state == IntervalState.GRID_CHECKED
    assert failing.last_error == ""
    assert theirs_failing.state == IntervalState.CLEARED  # out of scope: untouched
    member = member_of(mine)
    trade = Trade.objects.create(
        interval=failing, source=TradeSource.GRID, sequence=1, buyer=member,
        quantity_kwh=Decimal("2"), price_per_kwh=Decimal("0.32"),
        seller_price_per_kwh=Decimal("0.32"), orders_submitted_at=START,
        curtailed_kwh=Decimal("1"), curtailment_reason="line 1 over 100 %",
    )  # fmt: skip
    GridCheckResult.objects.filter(interval=failing).update(
        curtailments=[{"trade": trade.pk, "curtailed_kwh": "1.000", "reason": "line 1 over 100 %"}]
    )
    detail = client.get(reverse("admin:marketplace_interval_change", args=[failing.pk]))
    body = detail.content.decode()
    assert detail.status_code == 200
    assert reverse("admin:marketplace_trade_change", args=[trade.pk]) in body
    assert "no_grid_model" in body
    assert "line 1 over 100 %" in body
    assert 'id="trades-0"' in body  # the interval's trades are listed inline


def test_member_page_shows_meter_points_activity_and_audit_link(two: tuple[Any, ...]) -> None:
    mine, _, manager = two
    client = _client(manager)
    membership = member_of(mine)
    meter_point_for(membership, label="garage roof")
    page = client.get(reverse("admin:accounts_membership_change", args=[membership.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "garage roof" in body
    assert "0 postings, 0 bids" in body
    audit = (
        reverse("admin:accounts_auditevent_changelist") + f"?actor__id__exact={membership.user_id}"
    )
    assert audit in body
    assert client.get(audit).status_code == 200


def test_grid_page_refuses_a_network_that_strands_meter_points_then_remaps(
    two: tuple[Any, ...],
) -> None:
    mine, _, manager = two
    client = _client(manager)
    url = reverse("admin:grid_gridmodel_community", args=[mine.pk])
    client.post(url, {"ref-reference_name": "cigre_lv", "choose": "1"})
    meter_point = meter_point_for(member_of(mine), label="roof")
    meter_point.bus = 2  # CIGRE LV's residential transformer bus; Kerber has no such load bus
    meter_point.save(update_fields=["bus"])
    refused = client.post(url, {"ref-reference_name": "kerber_landnetz_kabel_1", "choose": "1"})
    assert refused.status_code == 200
    body = refused.content.decode()
    assert f"meter point {meter_point.pk}: bus {meter_point.bus} is not a connection bus" in body
    assert GridModel.objects.get(community=mine).reference_name == "cigre_lv"
    kerber_bus = 3  # one of Kerber Landnetz's household buses
    remapped = client.post(
        url,
        {
            "ref-reference_name": "kerber_landnetz_kabel_1",
            "ref-remapping": f"{meter_point.pk},{kerber_bus},",
            "choose": "1",
        },
    )
    assert remapped.status_code == 302
    meter_point.refresh_from_db()
    assert meter_point.bus == kerber_bus
    assert GridModel.objects.get(community=mine).reference_name == "kerber_landnetz_kabel_1"


def test_grid_upload_naming_a_foreign_function_is_refused_and_keeps_the_network(
    two: tuple[Any, ...],
) -> None:
    mine, _, manager = two
    client = _client(manager)
    url = reverse("admin:grid_gridmodel_community", args=[mine.pk])
    client.post(url, {"ref-reference_name": "kerber_landnetz_kabel_1", "choose": "1"})
    before = GridModel.objects.get(community=mine)
    document = json.loads(network_to_json(reference_network("kerber_landnetz_kabel_1")))
    document["_object"]["name"] = {"_module": "os", "_class": "function", "_object": "system"}
    upload = SimpleUploadedFile("net.json", json.dumps(document).encode())
    refused = client.post(url, {"upload": "1", "up-network_file": upload})
    assert refused.status_code == 200
    assert "os.function, which a network does not need" in refused.content.decode()
    after = GridModel.objects.get(community=mine)
    assert (after.uploaded_at, after.network_json) == (before.uploaded_at, before.network_json)
