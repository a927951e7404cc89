"""The settlement's bulk paths give what the one-by-one paths give: the hashes, the accounts and
the trades it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from marketplace.ledger.chain import EntryContent, EntryHasher, entry_hash
from marketplace.ledger.models import AccountKind, LedgerAccount
from marketplace.ledger.services.ledger import (
    AccountRef,
    ledger_account_for_member,
    ledger_accounts_for_members,
)
from marketplace.ledger.services.settlement import confirmed_trades
from marketplace.ledger.tests.conftest import make_trade, member_before
from marketplace.models import Community, Interval
from marketplace.tests.factories import CommunityFactory

ids = st.integers(min_value=1, max_value=2**62)
money = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=2)
energy = st.none() | st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=3)
prices = st.none() | st.decimals(min_value=Decimal("0"), max_value=Decimal("1e3"), places=4)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))]),
)


@given(
    sequence=ids,
    transaction_id=ids,
    account_id=ids,
    kind=st.sampled_from(["peer_purchase", "rounding", "imbalance_import"]),
    amount=money,
    energy_kwh=energy,
    price_per_kwh=prices,
    interval_id=st.none() | ids,
    # Any text: quotes, backslashes, control characters and non-ASCII are escaped alike.
    memo=st.text(max_size=40),
    created_at=moments,
    prev_hash=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    key=st.binary(min_size=1, max_size=64),
)
def test_the_entry_hasher_hashes_as_entry_hash(
    sequence: int,
    transaction_id: int,
    account_id: int,
    kind: str,
    amount: Decimal,
    energy_kwh: Decimal | None,
    price_per_kwh: Decimal | None,
    interval_id: int | None,
    memo: str,
    created_at: datetime,
    prev_hash: str,
    key: bytes,
) -> None:
    fields: dict[str, Any] = {
        "sequence": sequence,
        "transaction_id": transaction_id,
        "account_id": account_id,
        "kind": kind,
        "amount": amount,
        "energy_kwh": energy_kwh,
        "price_per_kwh": price_per_kwh,
        "interval_id": interval_id,
        "memo": memo,
    }
    expected = entry_hash(EntryContent(**fields, created_at=created_at), prev_hash, key)
    assert EntryHasher(key, created_at).hash(prev_hash, **fields) == expected


def test_member_accounts_in_bulk_are_the_ones_one_by_one(community: Community) -> None:
    with_account, without, elsewhere = (member_before(community) for _ in range(3))
    other: Community = CommunityFactory()  # type: ignore[assignment]
    outsider, outsider_without = member_before(other), member_before(other)
    opened = ledger_account_for_member(membership=with_account.membership)
    ledger_account_for_member(membership=outsider.membership)
    members = [with_account, without, elsewhere, outsider, outsider_without]
    before = LedgerAccount.objects.count()

    # Read by the settled community; the other community's members are found by id.
    bulk = ledger_accounts_for_members(
        membership_ids=[m.membership.pk for m in members], community_ids=[community.pk]
    )

    assert LedgerAccount.objects.count() == before + 3  # the three without one, opened once
    assert bulk[with_account.membership.pk] == AccountRef(opened.pk, community.pk)
    for m in members:
        one = ledger_account_for_member(membership=m.membership)
        assert one.kind == AccountKind.MEMBER
        assert bulk[m.membership.pk] == AccountRef(one.pk, m.membership.community_id)
    assert LedgerAccount.objects.count() == before + 3
    # Without communities (or a second call) every account is found again, none opened.
    assert ledger_accounts_for_members(membership_ids=bulk) == bulk
    assert LedgerAccount.objects.count() == before + 3


def test_the_trades_settlement_reads_are_the_confirmed_trades(
    community: Community, interval: Interval
) -> None:
    alice, bob = member_before(community), member_before(community)
    made = [
        make_trade(interval, buyer=alice, seller=bob, kwh="1.5", price="0.2", seller_price="0.18"),
        make_trade(interval, buyer=None, seller=alice, kwh="0.4", price="0.08"),
        make_trade(interval, buyer=bob, seller=None, kwh="2", price="0.3", confirmed_kwh="0"),
    ]
    read = confirmed_trades(interval)
    expected = sorted(
        (t for t in made if t.confirmed_kwh), key=lambda t: (t.source, t.sequence, t.pk)
    )
    assert len(read) == len(expected) == 2
    for row, trade in zip(read, expected, strict=True):
        trade.refresh_from_db()
        assert row._asdict() == {name: getattr(trade, name) for name in row._fields}
