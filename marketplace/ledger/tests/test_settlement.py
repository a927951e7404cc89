"""Settlement: a hand-worked interval, idempotency, waiting and estimating, late readings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from config.errors import ApplicationError
from marketplace.ledger.models import (
    AccountKind,
    EntryKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Settlement,
    TransactionKind,
)
from marketplace.ledger.selectors import account_balance, member_balance
from marketplace.ledger.services import interval_settle, ledger_verify, meter_readings_submit
from marketplace.ledger.tests.conftest import (
    AFTER_WINDOW,
    after_end,
    make_trade,
    meter_operator,
    reading,
)
from marketplace.models import IntervalState


def _snapshot() -> list[tuple]:
    return list(LedgerEntry.objects.order_by("sequence").values_list("sequence", "amount", "hash"))


def _community_account(community, kind) -> LedgerAccount:
    return LedgerAccount.objects.get(community=community, kind=kind)


def test_a_hand_worked_interval(community, interval, alice, bob, carol):
    # Defaults: retail 0.32, feed-in 0.08, fee 0.005 per kWh traded, paid by each member party.
    make_trade(interval, buyer=bob, seller=alice, kwh="2.000", price="0.2000")
    make_trade(interval, buyer=bob, seller=None, kwh="1.000", price="0.3200")
    make_trade(interval, buyer=None, seller=alice, kwh="0.500", price="0.0800")
    meter_readings_submit(
        submitted_by=meter_operator(alice),
        readings=[{**reading(alice, "0", "2.700"), "interval": interval.pk}],
        now=after_end(interval),
    )
    meter_readings_submit(
        submitted_by=meter_operator(bob),
        readings=[{**reading(bob, "3.100", "0"), "interval": interval.pk}],
        now=after_end(interval),
    )
    meter_readings_submit(
        submitted_by=meter_operator(carol),
        readings=[{**reading(carol, "0.500", "0"), "interval": interval.pk}],
        now=after_end(interval),
    )

    result = interval_settle(interval=interval, now=after_end(interval, 2))

    assert result.settled
    assert result.created
    assert result.estimated_membership_ids == ()
    # Alice: +0.40 peer sale, +0.04 grid sale, fees -0.010 and -0.0025 (-> -0.00),
    # surplus 0.2 kWh * 0.08 = +0.016 (-> +0.02).
    assert member_balance(membership=alice.membership) == Decimal("0.45")
    # Bob: -0.40 peer, -0.32 grid, fees -0.010 and -0.005 (-> -0.00),
    # shortfall 0.1 kWh * 0.32 = -0.032 (-> -0.03).
    assert member_balance(membership=bob.membership) == Decimal("-0.76")
    # Carol traded nothing and used 0.5 kWh: all of it bought from the grid at retail.
    assert member_balance(membership=carol.membership) == Decimal("-0.16")
    grid = _community_account(community, AccountKind.GRID)
    fee = _community_account(community, AccountKind.FEE)
    assert account_balance(account=grid) == Decimal("0.32") - Decimal("0.04") - Decimal(
        "0.02"
    ) + Decimal("0.03") + Decimal("0.16")
    assert account_balance(account=fee) == Decimal("0.02")
    assert sum(LedgerEntry.objects.values_list("amount", flat=True)) == 0
    settlement = Settlement.objects.get(interval=interval, membership=bob.membership)
    assert settlement.imbalance_kwh == Decimal("0.100")
    assert (settlement.confirmed_bought_kwh, settlement.metered_import_kwh) == (
        Decimal("3.000"),
        Decimal("3.100"),
    )
    assert ledger_verify().ok


def test_rounding_residue_is_booked_to_the_fee_account(community, interval, alice, bob):
    # 1 kWh at 0.115 / 0.105: the buyer's -0.115 rounds (half-even) to -0.12, the seller's 0.105
    # to 0.10 and the spread 0.010 stays 0.01; the cent left over is booked explicitly.
    make_trade(
        interval, buyer=bob, seller=alice, kwh="1.000", price="0.1150", seller_price="0.1050"
    )
    interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)
    transaction = LedgerTransaction.objects.get(key=f"settle:{interval.pk}")
    amounts = sorted(transaction.entries.values_list("kind", "amount"))
    assert amounts == [
        (EntryKind.PEER_PURCHASE, Decimal("-0.12")),
        (EntryKind.PEER_SALE, Decimal("0.10")),
        (EntryKind.ROUNDING, Decimal("0.01")),
        (EntryKind.SPREAD, Decimal("0.01")),
    ]
    rounding = transaction.entries.get(kind=EntryKind.ROUNDING)
    assert rounding.account == _community_account(community, AccountKind.FEE)


def test_settling_twice_changes_nothing(interval, alice, bob):
    make_trade(interval, buyer=bob, seller=alice, kwh="1.234", price="0.1500")
    first = interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)
    before = _snapshot()
    second = interval_settle(interval=interval, now=interval.end + AFTER_WINDOW * 2)
    assert first.created
    assert not second.created
    assert second.settled
    assert second.transaction_id == first.transaction_id
    assert _snapshot() == before
    assert Settlement.objects.filter(interval=interval).count() == 2


def test_waits_for_readings_inside_the_window(interval, alice, bob):
    make_trade(interval, buyer=bob, seller=alice, kwh="1.000", price="0.1500")
    meter_readings_submit(
        submitted_by=meter_operator(alice),
        readings=[{**reading(alice, "0", "1.000"), "interval": interval.pk}],
        now=after_end(interval),
    )
    result = interval_settle(interval=interval, now=after_end(interval, 5))
    assert not result.settled
    assert result.missing_meter_point_ids == (bob.meter_point.pk,)
    assert not LedgerEntry.objects.exists()


def test_after_the_window_missing_readings_are_estimated_from_the_schedule(interval, alice, bob):
    make_trade(interval, buyer=bob, seller=alice, kwh="1.000", price="0.1500")
    result = interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)
    assert result.settled
    assert set(result.estimated_membership_ids) == {alice.membership.pk, bob.membership.pk}
    settlement = Settlement.objects.get(interval=interval, membership=bob.membership)
    assert settlement.estimated
    assert settlement.imbalance_kwh == 0
    assert not LedgerEntry.objects.filter(kind__startswith="imbalance").exists()


def test_a_late_reading_books_an_adjustment_and_edits_nothing(interval, alice, bob):
    make_trade(interval, buyer=bob, seller=alice, kwh="1.000", price="0.1500")
    interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)
    before = _snapshot()
    balance_before = member_balance(membership=bob.membership)

    report = meter_readings_submit(
        submitted_by=meter_operator(bob),
        readings=[{**reading(bob, "1.500", "0"), "interval": interval.pk}],
        now=interval.end + AFTER_WINDOW * 2,
    )

    assert len(report.adjustment_ids) == 1
    adjustment = LedgerTransaction.objects.get(pk=report.adjustment_ids[0])
    assert adjustment.kind == TransactionKind.ADJUSTMENT
    assert _snapshot()[: len(before)] == before  # history untouched, only appended to
    # 0.5 kWh shortfall at retail 0.32.
    assert member_balance(membership=bob.membership) == balance_before - Decimal("0.16")
    settlement = Settlement.objects.get(interval=interval, membership=bob.membership)
    assert not settlement.estimated
    assert settlement.imbalance_kwh == Decimal("0.500")

    # A correction to a surplus reverses the shortfall and books the surplus; again only appended.
    middle = _snapshot()
    meter_readings_submit(
        submitted_by=meter_operator(bob),
        readings=[{**reading(bob, "0.800", "0"), "interval": interval.pk}],
        now=interval.end + AFTER_WINDOW * 2,
    )
    assert _snapshot()[: len(middle)] == middle
    # -0.2 kWh against the schedule: sold at feed-in 0.08 = +0.016 -> +0.02.
    assert member_balance(membership=bob.membership) == balance_before + Decimal("0.02")
    # The same reading again is unchanged and books nothing.
    count = LedgerEntry.objects.count()
    report = meter_readings_submit(
        submitted_by=meter_operator(bob),
        readings=[{**reading(bob, "0.800", "0"), "interval": interval.pk}],
        now=interval.end + AFTER_WINDOW * 2,
    )
    assert report.rows[0].unchanged
    assert report.adjustment_ids == ()
    assert LedgerEntry.objects.count() == count
    assert ledger_verify().ok


def test_only_confirmed_intervals_settle(interval, alice):
    interval.state = IntervalState.GRID_CHECKED
    interval.save(update_fields=["state"])
    with pytest.raises(ApplicationError) as refused:
        interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)
    assert refused.value.code == "invalid_state"


def test_no_one_is_worse_off_for_posting(community, interval, alice, bob, carol):
    # Fee 0.005 per kWh (the default) on peer trades only. Alice posted a request the grid
    # filled (2 kWh at retail 0.32) and Bob posted an offer the grid took (1 kWh at feed-in
    # 0.08); Carol posted nothing and used the same energy as Alice, as imbalance.
    make_trade(interval, buyer=alice, seller=None, kwh="2.000", price="0.3200")
    make_trade(interval, buyer=None, seller=bob, kwh="1.000", price="0.0800")
    now = after_end(interval)
    for who, imported, exported in ((alice, "2", "0"), (bob, "0", "1"), (carol, "2", "0")):
        meter_readings_submit(
            submitted_by=meter_operator(who),
            readings=[{**reading(who, imported, exported), "interval": interval.pk}],
            now=now,
        )
    assert interval_settle(interval=interval, now=after_end(interval, 2)).settled
    # Same energy, same money, to the cent: no fee on what the grid supplied or took.
    assert member_balance(membership=alice.membership) == Decimal("-0.64")
    assert member_balance(membership=carol.membership) == Decimal("-0.64")
    assert member_balance(membership=bob.membership) == Decimal("0.08")
    assert not LedgerEntry.objects.filter(kind=EntryKind.FEE).exists()
