"""The issue's fraud path through the real API: a prosumer declares a 9,999,999 kW meter point
with no bus, posts 2,000,000 kWh and reports their own reading of 2,000,000 kWh exported. Every
step is refused with its code, and settlement credits them nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from accounts.models import MeterPoint
from accounts.tests import factories
from marketplace.ledger.models import LedgerEntry, MeterReading, Settlement
from marketplace.ledger.services import interval_settle
from marketplace.models import Interval, IntervalState
from marketplace.tests.api.conftest import Api, posting_body

pytestmark = pytest.mark.django_db


def _past_interval(api: Api) -> Interval:
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2)
    return Interval.objects.create(
        community=api.world.community,
        rules=api.interval.rules,
        start=start,
        end=start + timedelta(minutes=15),
        gate_closure_at=start - timedelta(minutes=5),
        state=IntervalState.CONFIRMED,
    )


def _reading(mp: int, interval: Interval, exported: str) -> dict:
    return {
        "readings": [
            {
                "meter_point": mp,
                "interval": interval.pk,
                "imported_kwh": "0",
                "exported_kwh": exported,
            }
        ]
    }


def test_a_self_declared_plant_and_its_own_reading_credit_nothing(api: Api) -> None:
    own = api.bearer(api.full_token)
    declared = {
        "community": "sonnenfeld",
        "label": "Power station",
        "import_capacity_kw": "1.000",
        "export_capacity_kw": "9999999.000",
    }
    refused = own.post("/api/v1/meter-points/", declared, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "above_max_connection")

    # Within the maximum connection the declaration is stored, but pending and without a bus.
    created = own.post(
        "/api/v1/meter-points/", {**declared, "export_capacity_kw": "30.000"}, format="json"
    )
    assert created.status_code == 201
    plant = MeterPoint.objects.get(pk=created.json()["id"])
    assert (plant.status, plant.bus) == ("pending", None)

    posting = own.post(
        "/api/v1/postings/", posting_body(api, plant, quantity_kwh="2000000"), format="json"
    )
    assert (posting.status_code, posting.json()["code"]) == (400, "meter_point_not_approved")

    interval = _past_interval(api)
    own_reading = own.post(
        "/api/v1/meter-readings/", _reading(plant.pk, interval, "2000000"), format="json"
    )
    assert (own_reading.status_code, own_reading.json()["code"]) == (403, "not_metering_source")

    # Even the community's metering source cannot book it: pending, then beyond its capacity.
    source = api.bearer(api.meter_data_token)
    row = source.post(
        "/api/v1/meter-readings/", _reading(plant.pk, interval, "2000000"), format="json"
    ).json()["rows"][0]
    assert (row["accepted"], row["code"]) == (False, "meter_point_not_approved")
    approved = api.client("token_manage").post(
        f"/api/v1/meter-points/{plant.pk}/approve/", {"bus": 2}, format="json"
    )
    assert approved.status_code == 200
    row = source.post(
        "/api/v1/meter-readings/", _reading(plant.pk, interval, "2000000"), format="json"
    ).json()["rows"][0]
    assert (row["accepted"], row["code"]) == (False, "over_capacity")
    assert not MeterReading.objects.filter(meter_point=plant).exists()

    result = interval_settle(interval=interval, now=interval.end + timedelta(hours=3))
    assert result.settled
    credited = LedgerEntry.objects.filter(account__membership=api.world.membership).aggregate(
        total=Sum("amount")
    )["total"]
    assert (credited or Decimal("0")) == Decimal("0")
    assert not Settlement.objects.filter(interval=interval, metered_export_kwh__gt=0).exists()


def test_a_meter_data_token_is_a_managers_for_one_community(api: Api) -> None:
    w = api.world
    prosumer = api.bearer(api.full_token)
    asked = prosumer.get("/api/v1/me/").json()
    assert "meter_data" not in asked["scopes"]
    with pytest.raises(Exception, match="community"):
        factories.token_for(w.manager, ["meter_data"])
    with pytest.raises(Exception, match="Only a manager"):
        factories.token_for(w.other_manager, ["meter_data"], community=w.community)
    with pytest.raises(Exception, match="Only a manager"):
        factories.token_for(w.prosumer, ["meter_data"], community=w.community)
    # A token for Windhof sends Windhof's readings, not Sonnenfeld's, even for a manager of both.
    factories.manager_of(w.other_community, user=w.manager)
    _, windhof = factories.token_for(w.manager, ["meter_data"], community=w.other_community)
    interval = _past_interval(api)
    row = (
        api.bearer(windhof)
        .post("/api/v1/meter-readings/", _reading(w.meter_point.pk, interval, "0.5"), format="json")
        .json()["rows"][0]
    )
    assert (row["accepted"], row["code"]) == (False, "not_metering_source")


def test_a_posting_beyond_the_approved_capacity_is_refused_when_posted(api: Api) -> None:
    response = api.bearer(api.full_token).post(
        "/api/v1/postings/", posting_body(api, quantity_kwh="2000000"), format="json"
    )
    assert (response.status_code, response.json()["code"]) == (400, "over_capacity")
    assert response.json()["fields"].keys() == {"quantity_kwh"}
