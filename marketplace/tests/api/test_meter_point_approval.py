"""A member's meter point is a declaration until the community's manager approves it, through
the real API: pending ones cannot trade, capacities above the maximum connection are refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import MeterPoint, MeterPointStatus
from accounts.services import meter_point_update
from accounts.tests import factories
from marketplace.services.rules import market_rules_update
from marketplace.tests.api.conftest import Api, posting_body
from notifications.events import Event
from notifications.messages import messages_for

pytestmark = pytest.mark.django_db


def _register(api: Api, **overrides: str) -> dict:
    body = {
        "community": "sonnenfeld",
        "label": "Garage",
        "import_capacity_kw": "11.000",
        "export_capacity_kw": "5.000",
        **overrides,
    }
    response = api.bearer(api.full_token).post("/api/v1/meter-points/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_new_meter_point_is_pending_and_cannot_post(api: Api) -> None:
    created = _register(api)
    assert created["status"] == "pending"
    mp = MeterPoint.objects.get(pk=created["id"])
    response = api.bearer(api.full_token).post(
        "/api/v1/postings/", posting_body(api, mp), format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "meter_point_not_approved"
    assert not mp.postings.exists()


def test_a_bid_from_a_pending_meter_point_is_refused(api: Api) -> None:
    offer = api.bearer(api.full_token).post("/api/v1/postings/", posting_body(api), format="json")
    assert offer.status_code == 201
    pending = factories.meter_point_for(api.bob, approve=False)
    response = api.bearer(api.bob_token).post(
        "/api/v1/bids/",
        {
            "posting": offer.json()["id"],
            "meter_point": pending.pk,
            "quantity_kwh": "0.500",
            "price_per_kwh": "0.1500",
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "meter_point_not_approved"


def test_a_self_declared_capacity_above_the_maximum_connection_is_refused(api: Api) -> None:
    response = api.bearer(api.full_token).post(
        "/api/v1/meter-points/",
        {
            "community": "sonnenfeld",
            "label": "Power station",
            "import_capacity_kw": "1.000",
            "export_capacity_kw": "9999999.000",
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "above_max_connection"
    assert "export_capacity_kw" in body["fields"]
    assert not MeterPoint.objects.filter(label="Power station").exists()


def test_the_manager_approves_with_capacities_and_bus_and_the_member_is_told(api: Api) -> None:
    created = _register(api)
    manager = api.client("token_manage")
    queue = manager.get("/api/v1/meter-points/managed/", {"status": "pending"})
    assert queue.status_code == 200
    assert created["id"] in [row["id"] for row in queue.json()["results"]]

    too_big = manager.post(
        f"/api/v1/meter-points/{created['id']}/approve/",
        {"export_capacity_kw": "31.000", "bus": 2},
        format="json",
    )
    assert too_big.status_code == 400
    assert too_big.json()["code"] == "above_max_connection"
    no_bus = manager.post(f"/api/v1/meter-points/{created['id']}/approve/", {}, format="json")
    assert no_bus.status_code == 400
    assert no_bus.json()["code"] == "unknown_bus"
    assert MeterPoint.objects.get(pk=created["id"]).status == MeterPointStatus.PENDING

    approved = manager.post(
        f"/api/v1/meter-points/{created['id']}/approve/",
        {"import_capacity_kw": "8.000", "export_capacity_kw": "4.000", "bus": 2},
        format="json",
    )
    assert approved.status_code == 200, approved.json()
    body = approved.json()
    assert (body["status"], body["bus"], body["export_capacity_kw"]) == ("approved", 2, "4.000")
    mp = MeterPoint.objects.get(pk=created["id"])
    (message,) = messages_for(Event.METER_POINT_APPROVED, mp.pk)
    assert message.user_id == api.world.prosumer.pk
    assert "Garage" in message.title

    # Held to the approved 4 kW: 1 kWh in a quarter-hour fits, 1.5 kWh does not.
    client = api.bearer(api.full_token)
    ok = client.post("/api/v1/postings/", posting_body(api, mp), format="json")
    assert ok.status_code == 201
    over = client.post(
        "/api/v1/postings/", posting_body(api, mp, quantity_kwh="0.500"), format="json"
    )
    assert over.status_code == 400
    assert over.json()["code"] == "over_capacity"


def test_only_a_manager_of_the_community_approves(api: Api) -> None:
    created = _register(api)
    url = f"/api/v1/meter-points/{created['id']}/approve/"
    own = api.bearer(api.full_token).post(url, {"bus": 1}, format="json")
    assert own.status_code == 403
    other = api.client("other_manager").post(url, {"bus": 1}, format="json")
    assert other.status_code == 404  # another community's meter point is not theirs to see
    assert MeterPoint.objects.get(pk=created["id"]).status == MeterPointStatus.PENDING


def test_a_rejected_meter_point_cannot_trade(api: Api) -> None:
    mp = api.world.meter_point
    response = api.client("token_manage").post(
        f"/api/v1/meter-points/{mp.pk}/reject/",
        {"reason": "No connection agreement"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    posting = api.bearer(api.full_token).post("/api/v1/postings/", posting_body(api), format="json")
    assert posting.json()["code"] == "meter_point_not_approved"


def test_a_member_raising_an_approved_capacity_waits_for_approval_again(api: Api) -> None:
    mp = api.world.meter_point
    meter_point_update(
        meter_point=mp, updated_by=api.world.prosumer, export_capacity_kw=Decimal("25")
    )
    mp.refresh_from_db()
    assert mp.status == MeterPointStatus.PENDING
    # The manager's own edits keep it approved.
    other = api.bob_meter_point
    meter_point_update(
        meter_point=other, updated_by=api.world.manager, export_capacity_kw=Decimal("12")
    )
    other.refresh_from_db()
    assert other.status == MeterPointStatus.APPROVED


def test_the_maximum_connection_is_a_market_rule(api: Api) -> None:
    response = api.client("token_manage").patch(
        "/api/v1/communities/sonnenfeld/rules/", {"max_connection_kw": "0"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["fields"].keys() == {"max_connection_kw"}
    market_rules_update(
        community=api.world.community, changed_by=None, max_connection_kw=Decimal("60")
    )
    created = _register(api, export_capacity_kw="50.000")
    assert created["status"] == "pending"


def test_a_bid_whose_meter_point_went_back_to_pending_cannot_be_accepted(api: Api) -> None:
    offer = api.bearer(api.full_token).post("/api/v1/postings/", posting_body(api), format="json")
    bid = api.bearer(api.bob_token).post(
        "/api/v1/bids/",
        {
            "posting": offer.json()["id"],
            "meter_point": api.bob_meter_point.pk,
            "quantity_kwh": "0.500",
            "price_per_kwh": "0.1500",
        },
        format="json",
    )
    assert bid.status_code == 201
    meter_point_update(
        meter_point=api.bob_meter_point, updated_by=api.bob.user, export_capacity_kw=Decimal("29")
    )
    accepted = api.bearer(api.full_token).post(
        f"/api/v1/bids/{bid.json()['id']}/accept/", {}, format="json"
    )
    assert (accepted.status_code, accepted.json()["code"]) == (400, "meter_point_not_approved")
