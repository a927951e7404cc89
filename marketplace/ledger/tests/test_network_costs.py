"""Settlement of network charges by use and of the losses allocated by the grid check."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.models import GridCheckResult
from marketplace.ledger.models import AccountKind, EntryKind, LedgerAccount, LedgerEntry
from marketplace.ledger.selectors import account_balance, member_statement
from marketplace.ledger.services import interval_settle, ledger_verify
from marketplace.ledger.tests.conftest import (
    AFTER_WINDOW,
    confirmed_intervals,
    make_trade,
    member_before,
)
from marketplace.models import Community, MarketRules, NetworkChargeRule
from marketplace.tests.factories import CommunityFactory

CENT = Decimal("0.01")


def _by_use(interval, tariff="0.0200", loss_price=None):
    MarketRules.objects.filter(pk=interval.rules_id).update(
        network_charge_rule=NetworkChargeRule.BY_USE,
        network_tariff_per_kwh=Decimal(tariff),
        loss_price_per_kwh=loss_price,
    )
    interval.rules.refresh_from_db()


def _check_result(interval, allocation, losses_kwh):
    return GridCheckResult.objects.create(
        interval=interval,
        feasible=True,
        power_flows=1,
        duration_s=0.01,
        losses_kwh=Decimal(losses_kwh),
        loss_allocation={str(mp): kwh for mp, kwh in allocation.items()},
    )


def _entries(kind, account=None):
    entries = LedgerEntry.objects.filter(kind=kind)
    if account is not None:
        entries = entries.filter(account=account)
    return list(
        entries.order_by("sequence").values_list("account__kind", "amount", "price_per_kwh")
    )


def test_by_use_each_side_pays_its_use_instead_of_the_flat_fee(community, interval, alice, bob):
    _by_use(interval)
    trade = make_trade(interval, buyer=bob, seller=alice, kwh="4.000", price="0.2000")
    trade.buyer_network_use = trade.seller_network_use = Decimal("0.2500")
    trade.save()
    grid_trade = make_trade(interval, buyer=bob, seller=None, kwh="2.000", price="0.3200")
    grid_trade.buyer_network_use = Decimal("1.5000")
    grid_trade.save()

    interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)

    assert _entries(EntryKind.FEE) == []
    fee = LedgerAccount.objects.get(community=community, kind=AccountKind.FEE)
    charges = LedgerEntry.objects.filter(kind=EntryKind.NETWORK_CHARGE)
    # 4 kWh * 0.02 * 0.25 = 0.02 on each side; 2 kWh * 0.02 * 1.5 = 0.06 on bob's grid purchase.
    assert sorted(charges.exclude(account=fee).values_list("amount", flat=True)) == [
        Decimal("-0.06"),
        Decimal("-0.02"),
        Decimal("-0.02"),
    ]
    assert account_balance(account=fee) == Decimal("0.10")
    assert ledger_verify().ok


def test_a_trade_off_the_network_pays_no_charge_by_use(community, interval, alice, bob):
    _by_use(interval)
    make_trade(interval, buyer=bob, seller=alice, kwh="4.000", price="0.2000")  # no use set
    interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)
    assert not LedgerEntry.objects.filter(kind__in=(EntryKind.FEE, EntryKind.NETWORK_CHARGE))


def test_losses_are_settled_to_the_losses_account_at_the_retail_tariff(
    community, interval, alice, bob, carol
):
    make_trade(interval, buyer=bob, seller=alice, kwh="1.000", price="0.2000")
    # Carol traded nothing but her meter point still caused losses; alice relieved the network.
    _check_result(
        interval,
        {
            alice.meter_point.pk: "-0.050",
            bob.meter_point.pk: "0.250",
            carol.meter_point.pk: "0.100",
            999_999: "0.040",  # a meter point of no member of the interval: not settled
        },
        losses_kwh="0.400",
    )

    interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)

    losses = LedgerAccount.objects.get(community=community, kind=AccountKind.LOSSES)
    by_member = dict(
        LedgerEntry.objects.filter(kind=EntryKind.LOSSES)
        .exclude(account=losses)
        .values_list("account__membership", "amount")
    )
    # Retail 0.32: bob 0.25 kWh -> -0.08, carol 0.1 -> -0.032 (-0.03), alice -0.05 -> +0.016.
    assert by_member == {
        bob.membership.pk: Decimal("-0.08"),
        carol.membership.pk: Decimal("-0.03"),
        alice.membership.pk: Decimal("0.02"),
    }
    assert account_balance(account=losses) == Decimal("0.09")
    assert ledger_verify().ok
    start = interval.start.astimezone()
    statement = member_statement(membership=bob.membership, year=start.year, month=start.month)
    row = next(r for r in statement.rows if r.interval_start == interval.start)
    assert (row.losses_kwh, row.losses) == (Decimal("0.250"), Decimal("-0.08"))


def test_the_communitys_loss_price_replaces_the_retail_tariff(community, interval, alice):
    _by_use(interval, loss_price=Decimal("0.1000"))
    _check_result(interval, {alice.meter_point.pk: "1.000"}, losses_kwh="1.000")
    interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)
    entry = LedgerEntry.objects.get(kind=EntryKind.LOSSES, account__membership=alice.membership)
    assert (entry.amount, entry.price_per_kwh, entry.energy_kwh) == (
        Decimal("-0.10"),
        Decimal("0.1000"),
        Decimal("1.000"),
    )


kwh = st.decimals(min_value=Decimal("-2"), max_value=Decimal("5"), places=3)
use = st.one_of(st.none(), st.decimals(min_value=Decimal("0"), max_value=Decimal("3"), places=4))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shares=st.lists(kwh, min_size=3, max_size=3),
    uses=st.lists(st.tuples(use, use), min_size=1, max_size=4),
    rule=st.sampled_from(list(NetworkChargeRule)),
)
def test_network_costs_keep_the_books_balanced(db, shares, uses, rule):
    community: Community = CommunityFactory()  # type: ignore[assignment]
    members = [member_before(community) for _ in range(3)]
    interval = confirmed_intervals(community)[0]
    MarketRules.objects.filter(pk=interval.rules_id).update(network_charge_rule=rule)
    interval.rules.refresh_from_db()
    for n, (buyer_use, seller_use) in enumerate(uses):
        trade = make_trade(
            interval, buyer=members[n % 3], seller=members[(n + 1) % 3], kwh="1.500", price="0.2"
        )
        trade.buyer_network_use, trade.seller_network_use = buyer_use, seller_use
        trade.save()
    _check_result(
        interval, {m.meter_point.pk: str(s) for m, s in zip(members, shares, strict=True)}, "0"
    )

    interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)

    by_transaction: dict[int, Decimal] = defaultdict(Decimal)
    for transaction_id, amount in LedgerEntry.objects.values_list("transaction_id", "amount"):
        assert amount == amount.quantize(CENT)
        by_transaction[transaction_id] += amount
    assert all(total == 0 for total in by_transaction.values())
    losses = LedgerAccount.objects.filter(community=community, kind=AccountKind.LOSSES).first()
    paid = -sum(
        LedgerEntry.objects.filter(kind=EntryKind.LOSSES, account__kind=AccountKind.MEMBER)
        .filter(account__community=community)
        .values_list("amount", flat=True),
        Decimal(0),
    )
    # What the members paid for losses is what the losses account holds (rounding goes to fees).
    assert (account_balance(account=losses) if losses else Decimal(0)) == paid
    assert ledger_verify().ok
