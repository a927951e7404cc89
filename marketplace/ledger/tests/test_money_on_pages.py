"""Money that agrees: the dashboard, My trades and the statement show the same settled figures,
provisional money apart, and a trade curtailed to 0 kWh is worth nothing."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import time_machine
from django.test import Client
from django.urls import reverse

from marketplace.ledger.selectors import member_statement
from marketplace.ledger.services import interval_settle, meter_readings_submit
from marketplace.ledger.tests.conftest import (
    AFTER_WINDOW,
    after_end,
    make_trade,
    meter_operator,
    reading,
)
from marketplace.selectors.prosumer import money_summary, traded_per_day
from marketplace.tests.factories import T0, Member


def _settle(interval, rows):
    for who, imported, exported in rows:
        meter_readings_submit(
            submitted_by=meter_operator(who),
            readings=[{**reading(who, imported, exported), "interval": interval.pk}],
            now=after_end(interval),
        )
    assert interval_settle(interval=interval, now=interval.end + AFTER_WINDOW).settled


def _client(who: Member) -> Any:
    client = Client()
    client.force_login(who.membership.user)
    return client


def test_dashboard_trades_and_statement_agree(community, intervals, alice, bob):
    first, second, third = intervals[0], intervals[1], intervals[2]
    make_trade(first, buyer=bob, seller=alice, kwh="2.000", price="0.2000")
    _settle(first, [(alice, "0", "2.000"), (bob, "2.500", "0")])
    # Not settled yet: provisional, shown apart. One is curtailed to nothing.
    make_trade(second, buyer=bob, seller=alice, kwh="1.000", price="0.2000")
    zero = make_trade(
        third, buyer=bob, seller=alice, kwh="1.500", price="0.2100", confirmed_kwh="0"
    )
    statement = member_statement(membership=bob.membership, year=2026, month=3)
    assert statement.savings != 0

    with time_machine.travel(third.end + AFTER_WINDOW, tick=False):
        today = (third.end + AFTER_WINDOW).date()
        summary = money_summary(membership=bob.membership, today=today)
        assert summary.month_savings == statement.savings
        assert summary.month_total == statement.total
        # Only the 1 kWh of the second interval is provisional; the curtailed trade is worth 0.
        assert summary.provisional_trades == 2
        assert summary.provisional_net == Decimal("-0.20")
        days = traded_per_day(membership=bob.membership, today=today)
        assert sum(d.settled_savings for d in days) == statement.savings

        shown = f"{statement.savings:.2f} EUR"
        client = _client(bob)
        dashboard = client.get(reverse("marketplace:dashboard", args=[community.slug]))
        trades = client.get(reverse("marketplace:trades", args=[community.slug]))
        page = client.get(reverse("ledger:statement", args=[community.slug, 2026, 3]))
        for response in (dashboard, trades, page):
            assert response.status_code == 200
            assert shown in response.content.decode()
        assert "-0.20 EUR" in dashboard.content.decode()
        row = trades.content.decode().split(f'id="trade-{zero.pk}"')[1].split("</tr>")[0]
        assert "0.00 EUR" in row
        assert "Confirmed 0.000 kWh" in row


def test_trades_csv_has_every_trade_with_its_delivered_value(community, intervals, alice, bob):
    make_trade(intervals[0], buyer=bob, seller=alice, kwh="2.000", price="0.2000")
    make_trade(
        intervals[1], buyer=bob, seller=alice, kwh="1.500", price="0.2100", confirmed_kwh="0"
    )
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        response = _client(bob).get(reverse("marketplace:trades_csv", args=[community.slug]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    by_kwh = sorted((r["agreed_kwh"], r["confirmed_kwh"], r["value"]) for r in rows)
    assert by_kwh == [("1.500", "0.000", "0.00"), ("2.000", "2.000", "0.40")]
    assert {r["counterpart"] for r in rows} == {alice.membership.pseudonym}
    assert {(r["currency"], r["settled"]) for r in rows} == {("EUR", "no")}


def test_history_page_shows_days_and_months(community, intervals, alice, bob):
    make_trade(intervals[0], buyer=bob, seller=alice, kwh="2.000", price="0.2000")
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        response = _client(bob).get(reverse("marketplace:history", args=[community.slug]))
    text = response.content.decode()
    assert response.status_code == 200
    assert "Last 30 days" in text
    assert "Last 12 months" in text
    assert "2.000" in text
    assert "Mar 2026" in text
    assert "EUR/kWh" in text  # the price chart's own axis
