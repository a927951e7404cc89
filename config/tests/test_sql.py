"""``config.sql.update_rows``: many rows' fields in one statement, stored as the ORM would."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.sql import insert_rows, update_rows
from marketplace.models import Bid, BidStatus, Posting, PostingStatus, Trade, TradeSource
from marketplace.tests.factories import member, new_community, open_interval
from marketplace.tests.fixtures import bid, post


@pytest.mark.django_db
def test_update_rows_writes_decimals_text_and_times_in_one_statement() -> None:
    community = new_community()
    interval = open_interval(community)
    seller, buyer = member(community), member(community)
    postings = [post(seller, interval, "sell", "1", "0.10") for _ in range(3)]
    bids = [bid(buyer, p, "0.5", "0.20") for p in postings]
    with CaptureQueriesContext(connection) as captured:
        update_rows(
            Posting,
            ["allocated_kwh", "status"],
            [(p.pk, Decimal("0.25") * i, PostingStatus.CLOSED) for i, p in enumerate(postings)],
        )
    assert len([q for q in captured if "UPDATE" in q["sql"]]) == 1
    decided = datetime(2026, 6, 21, 9, 55, 1, 250_000, tzinfo=UTC)
    update_rows(
        Bid,
        ["accepted_kwh", "status", "decided_at"],
        [(b.pk, Decimal("0.123"), BidStatus.ACCEPTED, decided) for b in bids[:2]],
    )
    for i, p in enumerate(postings):
        p.refresh_from_db()
        assert (p.allocated_kwh, p.status) == (Decimal("0.25") * i, PostingStatus.CLOSED)
    stored = {b.pk: b for b in Bid.objects.filter(pk__in=[b.pk for b in bids])}
    for b in bids[:2]:
        row = stored[b.pk]
        assert (row.accepted_kwh, row.status, row.decided_at) == (
            Decimal("0.123"), BidStatus.ACCEPTED, decided,
        )  # fmt: skip
    assert stored[bids[2].pk].status == BidStatus.PENDING  # rows not named are left alone
    update_rows(Bid, ["status"], [])  # nothing to do is no statement


@pytest.mark.django_db
def test_insert_rows_stores_what_the_orm_would_in_one_statement() -> None:
    """The rows equal what the ORM stores for the same values, defaults included (the field's own
    default, "" for text, NULL else), with str enums, NULLs and an aware time."""
    community = new_community()
    interval = open_interval(community)
    seller, buyer = member(community), member(community)
    at = datetime(2026, 6, 21, 9, 55, 1, 250_000, tzinfo=UTC)
    fields = ("interval_id", "source", "sequence", "buyer_id", "seller_id",
              "buyer_meter_point_id", "seller_meter_point_id", "quantity_kwh", "price_per_kwh",
              "seller_price_per_kwh", "orders_submitted_at", "created_at")  # fmt: skip
    rows = [
        (interval.pk, TradeSource.POOL, i + 1, buyer.membership.pk, seller.membership.pk,
         buyer.meter_point.pk, seller.meter_point.pk, Decimal("0.125") * (i + 1),
         Decimal("0.2000"), Decimal("0.1990"), at, at)
        for i in range(3)
    ] + [(interval.pk, TradeSource.GRID, 1, buyer.membership.pk, None, buyer.meter_point.pk, None,
          Decimal("2"), Decimal("0.32"), Decimal("0.32"), at, at)]  # fmt: skip
    with CaptureQueriesContext(connection) as captured:
        insert_rows(Trade, fields, rows)
    assert len(captured) <= 1  # COPY is not captured on PostgreSQL; one INSERT on SQLite
    expected = [Trade(**dict(zip(fields, row, strict=True))) for row in rows]
    stored = list(Trade.objects.filter(interval=interval).order_by("source", "sequence"))
    assert len(stored) == len(rows)
    compare = [f.attname for f in Trade._meta.concrete_fields if f.attname != "id"]
    by_key = {(t.source, t.sequence): t for t in expected}
    for trade in stored:
        want = by_key[(trade.source, trade.sequence)]
        assert {f: getattr(trade, f) for f in compare} == {f: getattr(want, f) for f in compare}
    assert stored[0].curtailment_reason == ""
    assert stored[0].confirmed_kwh is None
    assert stored[0].buyer_flexible is False  # the field's default
    insert_rows(Trade, fields, [])  # nothing to do is no statement
