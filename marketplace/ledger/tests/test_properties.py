"""Ledger invariants over random intervals (hypothesis): balance, idempotency, adjustments."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.ledger.models import EntryKind, LedgerAccount, LedgerEntry, Settlement
from marketplace.ledger.selectors import account_balance, community_balances
from marketplace.ledger.services import interval_settle, ledger_verify, meter_readings_submit
from marketplace.ledger.tests.conftest import (
    AFTER_WINDOW,
    confirmed_intervals,
    make_trade,
    member_before,
    meter_operator,
)
from marketplace.models import Community
from marketplace.tests.factories import CommunityFactory

CENT = Decimal("0.01")
kwh = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("4"), places=3)
meter_kwh = st.decimals(min_value=Decimal("0"), max_value=Decimal("5"), places=3)
price = st.decimals(min_value=Decimal("0"), max_value=Decimal("0.5"), places=4)
# (buyer, seller) indexes into the three members, None = the outside grid.
parties = st.sampled_from([(0, 1), (1, 2), (2, 0), (0, None), (None, 1), (2, None)])
trade = st.tuples(parties, kwh, price, price)
readings = st.lists(st.one_of(st.none(), st.tuples(meter_kwh, meter_kwh)), min_size=3, max_size=3)


def _assert_books_balance() -> None:
    # Summed in Python with Decimal: exact on both databases.
    by_transaction: dict[int, Decimal] = defaultdict(Decimal)
    for transaction_id, amount in LedgerEntry.objects.values_list("transaction_id", "amount"):
        assert amount == amount.quantize(CENT)
        by_transaction[transaction_id] += amount
    assert sum(by_transaction.values(), Decimal(0)) == 0
    assert all(total == 0 for total in by_transaction.values())


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    trades=st.lists(trade, max_size=6),
    metered=readings,
    late=st.tuples(st.integers(0, 2), meter_kwh, meter_kwh),
)
def test_settlement_keeps_the_books_balanced(db, trades, metered, late):
    community: Community = CommunityFactory()  # type: ignore[assignment]
    members = [member_before(community) for _ in range(3)]
    interval = confirmed_intervals(community)[0]
    for (buyer, seller), quantity, p1, p2 in trades:
        make_trade(
            interval,
            buyer=None if buyer is None else members[buyer],
            seller=None if seller is None else members[seller],
            kwh=quantity,
            price=max(p1, p2),
            seller_price=min(p1, p2) if buyer is not None and seller is not None else max(p1, p2),
        )
    now = interval.end + timedelta(minutes=1)
    for who, values in zip(members, metered, strict=True):
        if values is not None:
            meter_readings_submit(
                submitted_by=meter_operator(who),
                readings=[
                    {
                        "meter_point": who.meter_point.pk,
                        "interval": interval.pk,
                        "imported_kwh": values[0],
                        "exported_kwh": values[1],
                    }
                ],
                now=now,
            )

    assert interval_settle(interval=interval, now=interval.end + AFTER_WINDOW).settled
    _assert_books_balance()
    # Every balance is the sum of its entries (the selector's annotation and a plain sum agree).
    for row in community_balances(community=community):
        entries = list(row.account.entries.values_list("amount", flat=True))
        assert row.balance == sum(entries, Decimal(0))
        assert account_balance(account=row.account) == sum(entries, Decimal(0))

    before = list(LedgerEntry.objects.order_by("sequence").values_list("hash", flat=True))
    again = interval_settle(interval=interval, now=interval.end + AFTER_WINDOW * 2)
    assert again.settled
    assert not again.created
    assert list(LedgerEntry.objects.order_by("sequence").values_list("hash", flat=True)) == before

    # A late reading appends an adjustment; the member then holds exactly the rounded price of
    # the imbalance now metered, as if it had been settled with that reading in the first place.
    index, imported, exported = late
    who = members[index]
    meter_readings_submit(
        submitted_by=meter_operator(who),
        readings=[
            {
                "meter_point": who.meter_point.pk,
                "interval": interval.pk,
                "imported_kwh": imported,
                "exported_kwh": exported,
            }
        ],
        now=interval.end + AFTER_WINDOW * 2,
    )
    after = list(LedgerEntry.objects.order_by("sequence").values_list("hash", flat=True))
    assert after[: len(before)] == before
    _assert_books_balance()
    settlement = Settlement.objects.get(interval=interval, membership=who.membership)
    rules = interval.rules
    imbalance = settlement.imbalance_kwh
    expected = (
        -rules.retail_tariff * imbalance if imbalance > 0 else rules.feed_in_tariff * -imbalance
    ).quantize(CENT)
    account = LedgerAccount.objects.get(membership=who.membership)
    booked = sum(
        account.entries.filter(
            kind__in=[EntryKind.IMBALANCE_IMPORT, EntryKind.IMBALANCE_EXPORT]
        ).values_list("amount", flat=True),
        Decimal(0),
    )
    assert booked == expected
    assert ledger_verify().ok
