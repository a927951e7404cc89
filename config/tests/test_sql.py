"""``config.sql.update_rows``: many rows' fields in one statement, stored as the ORM would."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.sql import update_rows
from marketplace.models import Bid, BidStatus, Posting, PostingStatus
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
