"""Trading through the API end to end: post, board, depth, bid, accept, reject, withdraw, cancel."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketplace.models import MarketRules, Posting
from marketplace.tests.api.conftest import Api, posting_body

pytestmark = pytest.mark.django_db


def test_post_board_bid_accept_trade(api: Api) -> None:
    alice = api.bearer(api.full_token)
    bob = api.bearer(api.bob_token)
    posted = alice.post("/api/v1/postings/", posting_body(api), format="json")
    assert posted.status_code == 201, posted.json()
    posting = posted.json()
    assert posting["status"] == "open"
    assert posting["remaining_kwh"] == "1.000"
    assert posting["community"] == "sonnenfeld"

    board = bob.get(f"/api/v1/board/?community=sonnenfeld&interval={api.interval.pk}").json()
    (row,) = board["results"]
    assert row["id"] == posting["id"]
    assert row["pseudonym"] == api.world.membership.pseudonym
    assert "email" not in str(board)  # the board is anonymised

    depth = bob.get(f"/api/v1/intervals/{api.interval.pk}/depth/").json()
    assert depth["supply"] == [{"price_per_kwh": "0.1200", "cumulative_kwh": "1.000"}]
    assert depth["demand"] == []

    bid = bob.post(
        "/api/v1/bids/",
        {
            "posting": posting["id"],
            "meter_point": api.bob_meter_point.pk,
            "quantity_kwh": "0.600",
            "price_per_kwh": "0.1500",
        },
        format="json",
    )
    assert bid.status_code == 201, bid.json()
    bids_seen = alice.get(f"/api/v1/postings/{posting['id']}/bids/").json()["results"]
    assert [b["pseudonym"] for b in bids_seen] == [api.bob.pseudonym]

    # Bob cannot accept his own bid on Alice's posting: the service says why.
    refused = bob.post(f"/api/v1/bids/{bid.json()['id']}/accept/", {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"

    accepted = alice.post(
        f"/api/v1/bids/{bid.json()['id']}/accept/", {"quantity_kwh": "0.500"}, format="json"
    )
    assert accepted.status_code == 201, accepted.json()
    trade = accepted.json()
    assert (trade["side"], trade["counterpart"], trade["quantity_kwh"]) == (
        "sell",
        api.bob.pseudonym,
        "0.500",
    )
    bobs = bob.get("/api/v1/trades/").json()["results"]
    assert [(t["side"], t["counterpart"]) for t in bobs] == [
        ("buy", api.world.membership.pseudonym)
    ]
    assert alice.get(f"/api/v1/postings/{posting['id']}/").json()["allocated_kwh"] == "0.500"


def test_reject_withdraw_cancel(api: Api) -> None:
    alice = api.bearer(api.full_token)
    bob = api.bearer(api.bob_token)
    posting = alice.post("/api/v1/postings/", posting_body(api), format="json").json()
    body = {
        "posting": posting["id"],
        "meter_point": api.bob_meter_point.pk,
        "quantity_kwh": "0.300",
        "price_per_kwh": "0.1300",
    }
    first = bob.post("/api/v1/bids/", body, format="json").json()
    second = bob.post("/api/v1/bids/", body, format="json").json()
    rejected = alice.post(f"/api/v1/bids/{first['id']}/reject/", format="json")
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    withdrawn = bob.post(f"/api/v1/bids/{second['id']}/withdraw/", format="json")
    assert withdrawn.json()["status"] == "withdrawn"
    again = bob.post(f"/api/v1/bids/{second['id']}/withdraw/", format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_state"
    # Bob cannot cancel Alice's posting: it is not among his, so it does not exist for him.
    assert bob.post(f"/api/v1/postings/{posting['id']}/cancel/").status_code == 404
    cancelled = alice.post(f"/api/v1/postings/{posting['id']}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    filtered = alice.get("/api/v1/postings/?status=cancelled&community=sonnenfeld").json()
    assert [p["id"] for p in filtered["results"]] == [posting["id"]]
    assert alice.get("/api/v1/postings/?status=open").json()["results"] == []


def test_modify_a_posting(api: Api) -> None:
    alice = api.bearer(api.full_token)
    posting = alice.post("/api/v1/postings/", posting_body(api), format="json").json()
    path = f"/api/v1/postings/{posting['id']}/"
    lowered = alice.patch(path, {"quantity_kwh": "0.500"}, format="json")
    assert lowered.status_code == 200, lowered.json()
    assert lowered.json()["quantity_kwh"] == "0.500"
    assert lowered.json()["submitted_at"] == posting["submitted_at"]  # time priority kept
    repriced = alice.patch(path, {"limit_price_per_kwh": "0.1300"}, format="json")
    assert repriced.json()["limit_price_per_kwh"] == "0.1300"
    assert repriced.json()["submitted_at"] > posting["submitted_at"]  # a new one
    bad = alice.patch(path, {"quantity_kwh": "-1"}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"quantity_kwh"}
    # Someone else's posting does not exist for the caller; a read-only token may not modify.
    bob = api.bearer(api.bob_token)
    assert bob.patch(path, {"quantity_kwh": "0.400"}, format="json").status_code == 404
    assert (
        api.client("token_read").patch(path, {"quantity_kwh": "0.4"}, format="json").status_code
        == 403
    )


def test_modify_a_bid(api: Api) -> None:
    alice = api.bearer(api.full_token)
    bob = api.bearer(api.bob_token)
    posting = alice.post("/api/v1/postings/", posting_body(api), format="json").json()
    body = {
        "posting": posting["id"],
        "meter_point": api.bob_meter_point.pk,
        "quantity_kwh": "0.600",
        "price_per_kwh": "0.1500",
    }
    bid = bob.post("/api/v1/bids/", body, format="json").json()
    path = f"/api/v1/bids/{bid['id']}/"
    lowered = bob.patch(path, {"quantity_kwh": "0.500"}, format="json")
    assert lowered.status_code == 200, lowered.json()
    assert lowered.json()["quantity_kwh"] == "0.500"
    assert lowered.json()["submitted_at"] == bid["submitted_at"]  # time priority kept
    repriced = bob.patch(path, {"price_per_kwh": "0.1600"}, format="json")
    assert repriced.json()["price_per_kwh"] == "0.1600"
    assert repriced.json()["submitted_at"] > bid["submitted_at"]  # a new one
    bad = bob.patch(path, {"quantity_kwh": "0.0001", "price_per_kwh": "x"}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"quantity_kwh", "price_per_kwh"}
    too_much = bob.patch(path, {"quantity_kwh": "50"}, format="json")
    assert too_much.status_code == 400
    assert too_much.json()["code"] == "out_of_range"
    # The poster cannot modify Bob's bid (it is not among hers); a read-only token may not.
    assert alice.patch(path, {"quantity_kwh": "0.400"}, format="json").status_code == 404
    assert (
        api.client("token_read").patch(path, {"quantity_kwh": "0.4"}, format="json").status_code
        == 403
    )


def test_rules_update_makes_a_new_version(api: Api) -> None:
    manager = api.client("token_manage")
    before = api.client("manager").get("/api/v1/communities/sonnenfeld/rules/").json()
    changed = manager.patch(
        "/api/v1/communities/sonnenfeld/rules/", {"price_cap": "0.4500"}, format="json"
    )
    assert changed.status_code == 200
    assert changed.json()["price_cap"] == "0.4500"
    assert changed.json()["id"] != before["id"]
    bad = manager.patch(
        "/api/v1/communities/sonnenfeld/rules/", {"price_floor": "0.4600"}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "out_of_range"
    assert "price_cap" in bad.json()["fields"]


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"fee_per_kwh": "0.5000"}, "out_of_range", "fee_per_kwh"),  # above the 0.40 cap
        ({"fee_per_kwh": "0.0100", "price_cap": "0.0100"}, "out_of_range", "fee_per_kwh"),
        ({"fee_per_kwH": "0.0100"}, "not_editable", "fee_per_kwH"),  # misspelt: not ignored
        ({"community": "elsewhere"}, "not_editable", "community"),
        ({"price_cap": "1e30"}, "max_digits", "price_cap"),
        ({"price_cap": "NaN"}, "not_a_number", "price_cap"),
        ({"price_cap": "Infinity"}, "not_a_number", "price_cap"),
        ({"price_cap": "9" * 200}, "max_digits", "price_cap"),
        ({"interval_minutes": 10**40}, "invalid_choice", "interval_minutes"),
        # Each rule's own bounds, as the schema states them (a pattern for decimals).
        ({"interval_minutes": "15"}, "invalid", "interval_minutes"),  # a JSON integer only
        ({"opening_horizon_hours": 0}, "min_value", "opening_horizon_hours"),
        ({"pricing_k": "1.5"}, "max_value", "pricing_k"),
        ({"voltage_min_pu": "0.700"}, "min_value", "voltage_min_pu"),
        ({"fee_per_kwh": "-0.0100"}, "min_value", "fee_per_kwh"),
        ({"fee_per_kwh": 0.01}, "not_a_number", "fee_per_kwh"),  # decimals are strings
        ({"fee_per_kwh": "01.0000"}, "not_a_number", "fee_per_kwh"),  # no leading zeros
    ],
)
def test_rules_outside_sense_are_refused_and_change_nothing(
    api: Api, change: dict[str, Any], code: str, field: str
) -> None:
    path = "/api/v1/communities/sonnenfeld/rules/"
    before = api.client("manager").get(path).json()
    versions = MarketRules.objects.count()
    refused = api.client("token_manage").patch(path, change, format="json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["code"] == code, refused.json()
    assert field in refused.json()["fields"]
    assert MarketRules.objects.count() == versions
    assert api.client("manager").get(path).json() == before


def test_readings_upload_reports_each_row(api: Api) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from marketplace.models import Interval

    past = Interval.objects.create(
        community=api.world.community,
        rules=api.interval.rules,
        start=timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2),
        end=timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1, minutes=45),
        gate_closure_at=timezone.now() - timedelta(hours=3),
        state="confirmed",
    )
    mp = api.world.meter_point.pk
    body = {
        "readings": [
            {"meter_point": mp, "interval": past.pk, "imported_kwh": "0.4", "exported_kwh": "0"},
            {"meter_point": mp, "interval": past.pk, "imported_kwh": "99", "exported_kwh": "0"},
            {
                "meter_point": api.world.other_meter_point.pk,  # another community's meter
                "interval": past.pk,
                "imported_kwh": "0.1",
                "exported_kwh": "0",
            },
            {
                "meter_point": mp,
                "interval": api.interval.pk,
                "imported_kwh": "0",
                "exported_kwh": "0",
            },
        ]
    }
    client = api.bearer(api.meter_data_token)
    report = client.post("/api/v1/meter-readings/", body, format="json")
    assert report.status_code == 200, report.json()
    data = report.json()
    assert (data["accepted"], data["refused"]) == (1, 3)
    assert [r["code"] for r in data["rows"]] == [
        "",
        "over_capacity",
        "not_metering_source",
        "invalid_state",
    ]
    listed = api.client("token_read").get(f"/api/v1/meter-readings/?interval={past.pk}").json()
    assert [r["imported_kwh"] for r in listed["results"]] == ["0.400"]
    # The same upload again stores nothing new.
    again = client.post("/api/v1/meter-readings/", body, format="json").json()
    assert again["rows"][0]["unchanged"] is True


def test_meter_point_registration(api: Api) -> None:
    client = api.client("token_meter")
    created = client.post(
        "/api/v1/meter-points/",
        {
            "community": "sonnenfeld",
            "label": "Garage",
            "import_capacity_kw": "11",
            "export_capacity_kw": "5",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["community"] == "sonnenfeld"
    foreign = client.post(
        "/api/v1/meter-points/",
        {
            "community": "windhof",
            "label": "x",
            "import_capacity_kw": "1",
            "export_capacity_kw": "1",
        },
        format="json",
    )
    assert foreign.status_code == 404
    assert foreign.json()["fields"] == {"community": ["You are not a member of this community."]}


# --- Query counts: the hot paths must not grow with the data ----------------------------------
def test_posting_query_count_is_pinned(api: Api, django_assert_num_queries: Any) -> None:
    client = api.bearer(api.full_token)
    client.get("/api/v1/me/")  # the token's last use is written at most once a minute
    with django_assert_num_queries(7), CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/v1/postings/", posting_body(api, quantity_kwh="0.100"), format="json"
        )
    assert response.status_code == 201
    # The token with its user and role; in the service the interval lock, the meter point
    # lock (which checks it is the caller's), the capacity sum and the insert. The two
    # savepoints exist only because the test runs inside a transaction (in production: BEGIN
    # and COMMIT).
    sql = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len(sql) == 5, sql
    meter_point_reads = [q for q in sql if 'FROM "accounts_meterpoint"' in q]
    assert len(meter_point_reads) == 1, meter_point_reads  # read once, locked, owner checked


def test_idempotent_posting_query_count_is_pinned(api: Api) -> None:
    """The post as clients send it, with an ``Idempotency-Key``: the durable record costs one
    insert before the work and one update after it, and nothing else (no read of the record)."""
    client = api.bearer(api.full_token)
    client.get("/api/v1/me/")  # the token's last use is written at most once a minute
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/v1/postings/",
            posting_body(api, quantity_kwh="0.100"),
            format="json",
            HTTP_IDEMPOTENCY_KEY="pinned-1",
        )
    assert response.status_code == 201
    sql = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    record = [s for s in sql if "idempotencyrecord" in s]
    assert len(record) == 2, record
    assert "INSERT INTO" in record[0], record
    assert record[1].startswith("UPDATE"), record
    # The token with its user and role, the interval lock, the meter point lock, the capacity
    # sum, the posting's insert; plus the record's insert and update.
    assert len(sql) == 7, sql


def test_someone_elses_meter_point_is_refused_like_a_missing_one(api: Api) -> None:
    """The meter point's owner is checked in the statement that locks it: another member's
    meter point and one that does not exist get the same 404, and nothing is posted."""
    alice = api.bearer(api.full_token)
    bobs = alice.post("/api/v1/postings/", posting_body(api, api.bob_meter_point), format="json")
    missing = alice.post("/api/v1/postings/", posting_body(api, meter_point=2**40), format="json")
    assert bobs.status_code == missing.status_code == 404
    assert bobs.json() == missing.json()
    assert bobs.json()["fields"] == {"meter_point": ["You have no meter point with this id."]}
    assert not Posting.objects.exists()


def test_board_read_query_count_is_pinned(api: Api, django_assert_max_num_queries: Any) -> None:
    bob = api.bearer(api.bob_token)
    alice = api.bearer(api.full_token)
    for price in ("0.1000", "0.1100", "0.1200"):
        alice.post(
            "/api/v1/postings/",
            posting_body(api, quantity_kwh="0.200", limit_price_per_kwh=price),
            format="json",
        )
    bob.get("/api/v1/me/")
    # The token with its user and role, the viewer's membership with its community, the board.
    with django_assert_max_num_queries(3):
        response = bob.get("/api/v1/board/?community=sonnenfeld")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3
    assert Posting.objects.count() == 3
    assert Decimal(response.json()["results"][0]["limit_price_per_kwh"]) == Decimal("0.1")


def test_fast_board_rendering_equals_the_serializer(api: Api) -> None:
    """The board renders rows without DRF's field machinery; the schema's serializer must agree."""
    from marketplace.api.serializers import BoardPostingSerializer, board_posting_data
    from marketplace.selectors.board import board_postings

    alice = api.bearer(api.full_token)
    bob = api.bearer(api.bob_token)
    posting = alice.post("/api/v1/postings/", posting_body(api), format="json").json()
    alice.post("/api/v1/postings/", posting_body(api, side="buy", quantity_kwh="0.250"),
               format="json")  # fmt: skip
    bob.post(
        "/api/v1/bids/",
        {"posting": posting["id"], "meter_point": api.bob_meter_point.pk,
         "quantity_kwh": "0.100", "price_per_kwh": "0.1300"},
        format="json",
    )  # fmt: skip
    rows = board_postings(community=api.world.community, viewer=api.bob)
    assert len(rows) == 2
    assert [board_posting_data(r) for r in rows] == BoardPostingSerializer(rows, many=True).data
    assert {r["best_bid_price_per_kwh"] for r in bob.get(
        "/api/v1/board/?community=sonnenfeld").json()["results"]} == {"0.1300", None}  # fmt: skip


def test_fast_posting_rendering_equals_the_serializer(api: Api) -> None:
    """Postings are answered without DRF's field machinery; the schema's serializer must agree,
    for a fresh posting as the service returns it and for postings read back with their bids,
    modified, cancelled, flexible and allocated."""
    from marketplace.api.selectors import own_postings
    from marketplace.api.serializers import PostingSerializer, posting_data
    from marketplace.services.postings import posting_create

    alice = api.bearer(api.full_token)
    bob = api.bearer(api.bob_token)
    first = alice.post("/api/v1/postings/", posting_body(api), format="json").json()
    flexible = alice.post(
        "/api/v1/postings/",
        posting_body(api, side="buy", quantity_kwh="0.250", flexible=True,
                     auto_accept_best_bids=False),
        format="json",
    ).json()  # fmt: skip
    cancelled = alice.post("/api/v1/postings/", posting_body(api, quantity_kwh="0.300"),
                           format="json").json()  # fmt: skip
    alice.post(f"/api/v1/postings/{cancelled['id']}/cancel/", {}, format="json")
    alice.patch(f"/api/v1/postings/{first['id']}/", {"quantity_kwh": "0.900"}, format="json")
    bob.post(
        "/api/v1/bids/",
        {"posting": first["id"], "meter_point": api.bob_meter_point.pk,
         "quantity_kwh": "0.100", "price_per_kwh": "0.1300"},
        format="json",
    )  # fmt: skip
    Posting.objects.filter(pk=flexible["id"]).update(allocated_kwh=Decimal("0.125"))
    fresh = posting_create(
        membership=api.world.membership, meter_point=api.world.meter_point,
        interval=api.interval, side="sell", quantity_kwh="0.5", limit_price_per_kwh="0.1",
    )  # fmt: skip
    rows = list(own_postings(user=api.world.prosumer).order_by("pk"))
    assert [r.pending_bids for r in rows]  # type: ignore[attr-defined]  # annotated by own_postings == [1, 0, 0, 0]
    assert {r.status for r in rows} == {"open", "cancelled"}
    for posting in [*rows, fresh]:
        assert posting_data(posting) == PostingSerializer(posting).data
    assert alice.get(f"/api/v1/postings/{first['id']}/").json() == PostingSerializer(rows[0]).data


def test_flexible_purchase_through_the_api(api: Api) -> None:
    alice = api.bearer(api.full_token)
    bought = alice.post(
        "/api/v1/postings/", posting_body(api, side="buy", flexible=True), format="json"
    )
    assert bought.status_code == 201, bought.json()
    assert bought.json()["flexible"] is True
    assert bought.json()["autopilot"] is False  # posted by hand
    assert Posting.objects.get(pk=bought.json()["id"]).flexible
    offer = alice.post("/api/v1/postings/", posting_body(api, flexible=True), format="json")
    assert offer.status_code == 400
    assert offer.json()["fields"] == {
        "flexible": ["Only a request (buy) can be flexible; an offer can always be curtailed."]
    }
