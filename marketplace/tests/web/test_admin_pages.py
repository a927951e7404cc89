"""The manager's admin: the home page's summary, the rules form, versions, filters and names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.tests.factories import CommunityFactory, UserFactory, manager_of, member_of
from config.errors import ApplicationError
from grid.models import GridCheckResult
from marketplace.models import Community, Interval, IntervalState, Posting
from marketplace.services.communities import community_create
from marketplace.services.rules import current_rules

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _community(**fields: Any) -> Community:
    community: Community = CommunityFactory.create(**fields)
    return community


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _interval(community: Community, minutes: int = 0, **fields: Any) -> Interval:
    start = START + timedelta(minutes=minutes)
    return Interval.objects.create(
        community=community,
        rules=current_rules(community),
        start=start,
        end=start + timedelta(minutes=15),
        gate_closure_at=start - timedelta(minutes=5),
        **fields,
    )


def _check(interval: Interval, *, feasible: bool) -> GridCheckResult:
    return GridCheckResult.objects.create(
        interval=interval,
        feasible=feasible,
        power_flows=1,
        duration_s=0.01,
        min_vm_pu=0.95,
        max_vm_pu=1.02,
        max_line_loading_percent=40,
        max_trafo_loading_percent=50,
        losses_kw=0.1,
        trades_checked=1,
    )


def test_admin_home_shows_what_waits_for_the_manager() -> None:
    mine, theirs = _community(), _community()
    manager = manager_of(mine)
    services.membership_request(user=UserFactory.create(), community=mine)
    services.membership_request(user=UserFactory.create(), community=theirs)
    held = _interval(mine, state=IntervalState.GRID_CHECKED)
    _check(held, feasible=False)
    _interval(mine, minutes=15, last_error="clearing failed: boom")
    text = _client(manager).get(reverse("admin:index")).content.decode()
    assert "What waits for you" in text
    assert "<strong>1</strong> to decide" in text
    assert "<strong>1</strong> held by the grid check" in text
    assert "<strong>1</strong> failing" in text
    assert "infeasible" in text
    assert theirs.name not in text
    assert "Times in Europe/Berlin." in text


def test_rules_form_has_labels_units_help_and_errors_beside_their_field() -> None:
    community = _community()
    manager = manager_of(community)
    url = reverse("admin:marketplace_marketrules_edit", args=[community.pk])
    page = _client(manager).get(url).content.decode()
    assert "Price cap (EUR/kWh)" in page
    assert "Gate closure lead (minutes)" in page
    assert "What buying from the outside grid costs." in page
    rules = current_rules(community)
    data = {f: getattr(rules, f) for f in ("market_structure", "clearing_mechanism",
            "pricing_rule", "interval_minutes", "curtailment_policy")}  # fmt: skip
    form = _client(manager).get(url).context["form"]
    # An empty optional rule (the loss price) is posted as an empty field, as a browser does.
    posted = {name: form[name].value() for name in form.fields}
    posted = {name: "" if value is None else value for name, value in posted.items()}
    posted.update(data)
    posted["pricing_k"] = "7"
    response = _client(manager).post(url, {**posted, "preview": "1"})
    text = response.content.decode()
    field_block = text.split('id="id_pricing_k"')[1].split('class="field')[0]
    assert 'id="id_pricing_k_errors"' in field_block
    assert "less than or equal to 1" in field_block


def test_versions_list_says_from_when_each_applies_and_filters_only_own_communities() -> None:
    mine, also_mine, theirs = _community(), _community(), _community()
    manager = manager_of(mine)
    manager_of(also_mine, user=manager)
    for community in (mine, also_mine, theirs):
        member_of(community)
    _interval(mine)
    text = (
        _client(manager).get(reverse("admin:marketplace_marketrules_changelist")).content.decode()
    )
    assert "effective from" in text.lower()
    assert "Mon 02 Mar 11:00 CET" in text
    members = _client(manager).get(reverse("admin:accounts_membership_changelist"))
    filters = members.content.decode().split('id="changelist-filter"')[1]
    assert mine.name in filters
    assert also_mine.name in filters
    assert theirs.name not in filters


def test_objects_have_readable_names() -> None:
    community = _community(name="Sonnenweg")
    member = member_of(community)
    interval = Interval.objects.select_related("community").get(pk=_interval(community).pk)
    assert str(interval) == "Sonnenweg · Mon 02 Mar 11:00\u201311:15 CET"
    posting = Posting(interval=interval, membership=member, side="sell",
                      quantity_kwh="2.5", limit_price_per_kwh="0.2")  # fmt: skip
    assert str(posting) == "Offer of 2.500 kWh at 0.2000 /kWh"
    member.community = community
    assert str(member) == f"{member.pseudonym} in Sonnenweg"


def test_the_bus_picker_names_the_buses() -> None:
    from accounts.tests.factories import meter_point_for
    from grid.services import grid_model_use_reference

    community = _community()
    manager = manager_of(community)
    grid_model = grid_model_use_reference(community=community, name="cigre_lv")
    point = meter_point_for(member_of(community))
    page = _client(manager).get(reverse("admin:accounts_meterpoint_change", args=[point.pk]))
    bus = grid_model.connection_buses[0]
    options = page.content.decode().split('name="bus"')[1].split("</select>")[0]
    assert f"(bus {bus})</option>" in options
    assert "Bus R" in options  # CIGRE LV's own bus names


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "Europe/Berlin\x00", ""])
def test_a_time_zone_that_does_not_exist_cannot_be_saved(zone: str) -> None:
    operator = UserFactory.create(is_staff=True, is_superuser=True)
    existing = _community(slug="sonnen", timezone="Europe/Vienna")
    form = {
        "name": "Mars colony", "slug": "mars", "timezone": zone, "currency": "EUR",
        "description": "", "created_at_0": "2026-03-01", "created_at_1": "10:00:00",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    }  # fmt: skip
    response = _client(operator).post(reverse("admin:marketplace_community_add"), form)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<title>Error: Add community" in page
    assert any(reason in page for reason in ("Unknown time zone", "required", "Null characters"))
    if zone == "Mars/Olympus":
        assert "Unknown time zone &#x27;Mars/Olympus&#x27;" in page
    assert not Community.objects.filter(slug="mars").exists()
    existing.timezone = zone
    with pytest.raises(ValidationError):
        existing.full_clean()
    with pytest.raises(ApplicationError) as refused:
        community_create(name="Mars", slug="mars", timezone=zone)
    assert refused.value.field == "timezone"
    assert Community.objects.get(pk=existing.pk).timezone == "Europe/Vienna"
