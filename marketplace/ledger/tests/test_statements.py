"""Statements: contents of the CSV, savings against the grid, who may see which statement."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from django.urls import reverse

from marketplace.ledger.models import MeterReading, ReadingImport
from marketplace.ledger.selectors import member_statement
from marketplace.ledger.services import interval_settle, meter_readings_submit
from marketplace.ledger.tasks import reading_import_run_task
from marketplace.ledger.tests.conftest import (
    AFTER_WINDOW,
    after_end,
    make_trade,
    meter_operator,
    reading,
)


def _settle_two_intervals(intervals, alice, bob):
    first, second = intervals[0], intervals[1]
    make_trade(first, buyer=bob, seller=alice, kwh="2.000", price="0.2000")
    make_trade(second, buyer=bob, seller=None, kwh="1.000", price="0.3200")
    for interval, rows in (
        (first, [(alice, "0", "2.000"), (bob, "2.500", "0")]),
        (second, [(alice, "0", "0"), (bob, "1.000", "0")]),
    ):
        for who, imported, exported in rows:
            meter_readings_submit(
                submitted_by=meter_operator(who),
                readings=[{**reading(who, imported, exported), "interval": interval.pk}],
                now=after_end(interval),
            )
        assert interval_settle(interval=interval, now=interval.end + AFTER_WINDOW).settled


def _url(name, community, **extra):
    return reverse(f"ledger:{name}", args=[community.slug, 2026, 3], **extra)


def test_statement_rows_balance_and_savings(community, intervals, alice, bob):
    _settle_two_intervals(intervals, alice, bob)
    statement = member_statement(membership=bob.membership, year=2026, month=3)
    first, second = statement.rows
    # Peer 2 kWh at 0.20 (-0.40), fee 2 x 0.005 (-0.01), shortfall 0.5 kWh at 0.32 (-0.16).
    assert (first.purchases, first.fees, first.imbalance, first.total) == (
        Decimal("-0.40"),
        Decimal("-0.01"),
        Decimal("-0.16"),
        Decimal("-0.57"),
    )
    assert first.balance == Decimal("-0.57")
    # 1 kWh from the grid at 0.32; the fee 0.005 rounds to nothing.
    assert (second.purchases, second.total, second.balance) == (
        Decimal("-0.32"),
        Decimal("-0.32"),
        Decimal("-0.89"),
    )
    # Grid only: 3.5 kWh at retail 0.32 = -1.12; with PeerGrid -0.89: 0.23 saved.
    assert statement.grid_only_total == Decimal("-1.12")
    assert statement.savings == Decimal("0.23")
    assert statement.opening_balance == 0
    assert statement.closing_balance == Decimal("-0.89")


def test_statement_csv_has_each_interval_and_the_totals(client, community, intervals, alice, bob):
    _settle_two_intervals(intervals, alice, bob)
    client.force_login(bob.membership.user)
    response = client.get(_url("statement_csv", community))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    header, first, second = rows[0], rows[1], rows[2]
    assert header[:3] == ["interval_start", "bought_kwh", "sold_kwh"]
    record = dict(zip(header, first, strict=True))
    # 09:15 UTC is 10:15 in Berlin (winter time).
    assert record["interval_start"] == "2026-03-02T10:15:00+01:00"
    assert (record["bought_kwh"], record["imported_kwh"], record["imbalance_kwh"]) == (
        "2.000",
        "2.500",
        "0.500",
    )
    assert (record["total"], record["balance"], record["estimated"]) == ("-0.57", "-0.57", "no")
    assert dict(zip(header, second, strict=True))["balance"] == "-0.89"
    summary = {row[0]: row[1] for row in rows[3:] if row}
    assert summary == {
        "opening_balance": "0.00",
        "closing_balance": "-0.89",
        "grid_only_total": "-1.12",
        "savings_vs_grid": "0.23",
    }


def test_a_member_sees_only_their_own_statement(client, community, intervals, alice, bob):
    _settle_two_intervals(intervals, alice, bob)
    client.force_login(alice.membership.user)
    page = client.get(_url("statement", community))
    assert page.status_code == 200
    assert alice.membership.pseudonym in page.content.decode()
    assert bob.membership.pseudonym not in page.content.decode()
    # Asking for another member's statement is "not found", not "forbidden".
    other = client.get(_url("statement", community), {"member": bob.membership.pseudonym})
    assert other.status_code == 404
    other_csv = client.get(_url("statement_csv", community), {"member": bob.membership.pseudonym})
    assert other_csv.status_code == 404


def test_a_manager_may_open_a_members_statement(client, community, intervals, alice, bob, manager):
    _settle_two_intervals(intervals, alice, bob)
    client.force_login(manager)
    page = client.get(_url("statement", community), {"member": bob.membership.pseudonym})
    assert page.status_code == 200
    assert bob.membership.pseudonym in page.content.decode()


def test_statement_pages_need_a_sign_in(client, community):
    response = client.get(_url("statement", community))
    assert response.status_code == 302


def test_the_admin_imports_a_csv_and_shows_the_report(client, community, interval, alice, manager):
    client.force_login(manager)
    url = reverse("admin:ledger_meterreading_import_csv")
    assert client.get(url).status_code == 200
    start = interval.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    upload = io.BytesIO(
        f"meter_point,interval_start,imported_kwh,exported_kwh\n"
        f"{alice.meter_point.pk},{start},1.000,0\n"
        f"{alice.meter_point.pk},{start},lots,0\n".encode()
    )
    upload.name = "readings.csv"
    response = client.post(url, {"community": community.pk, "file": upload})
    assert response.status_code == 302  # to the import's page; a worker imports the rows
    job = ReadingImport.objects.get()
    reading_import_run_task(job.pk)
    body = client.get(response["Location"]).content.decode()
    assert "1 accepted, 0 unchanged, 1 refused" in body
    assert "not a number" in body
    assert MeterReading.objects.count() == 1
