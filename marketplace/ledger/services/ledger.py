"""Ledger accounts and ``ledger_post``, the only code that writes ledger entries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, User
from config.errors import ApplicationError, ErrorCode
from config.sql import insert_rows
from marketplace.ledger.chain import EntryContent, entry_hash
from marketplace.ledger.checkpoints import checkpoint_write
from marketplace.ledger.keys import ledger_key
from marketplace.ledger.lock_objects import lock_ledger_chain
from marketplace.ledger.models import (
    GENESIS_HASH,
    AccountKind,
    EntryKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    TransactionKind,
)
from marketplace.models import Community, Interval
from units import CENT, KWH, PRICE, quantize

ZERO = Decimal("0")


def to_cents(amount: Decimal) -> Decimal:
    """Quantise to the minor unit; half-even is symmetric, so a line and its mirror still cancel."""
    return quantize(amount, CENT)


@dataclass(frozen=True)
class LedgerLine:
    """One line to post: an exact (not yet rounded) amount on one account."""

    account: LedgerAccount
    amount: Decimal
    kind: EntryKind
    energy_kwh: Decimal | None = None
    price_per_kwh: Decimal | None = None
    memo: str = ""


def ledger_account_for_member(*, membership: Membership) -> LedgerAccount:
    """The member's account, opened on first use (callers hold the chain lock)."""
    account, _ = LedgerAccount.objects.get_or_create(
        membership=membership,
        defaults={"community_id": membership.community_id, "kind": AccountKind.MEMBER},
    )
    return account


def ledger_accounts_for_members(*, memberships: Iterable[Membership]) -> dict[int, LedgerAccount]:
    """``ledger_account_for_member`` for many members: membership id -> account, the missing
    ones opened together (callers hold the chain lock, so no one opens them meanwhile). One
    read and at most one insert, where a settlement of a thousand members made a thousand."""
    members = {membership.pk: membership for membership in memberships}
    accounts: dict[int, LedgerAccount] = {
        int(account.membership_id): account  # type: ignore[arg-type]  # member accounts have one
        for account in LedgerAccount.objects.filter(membership_id__in=list(members))
    }
    missing = [
        LedgerAccount(membership=members[pk], community_id=members[pk].community_id,
                      kind=AccountKind.MEMBER)
        for pk in sorted(members.keys() - accounts.keys())
    ]  # fmt: skip
    for account in LedgerAccount.objects.bulk_create(missing):
        accounts[int(account.membership_id)] = account  # type: ignore[arg-type]
    return accounts


def ledger_account_for_community(*, community: Community, kind: AccountKind) -> LedgerAccount:
    """The community's grid or fee account, opened on first use."""
    if kind == AccountKind.MEMBER:
        raise ValueError("member accounts belong to a membership")
    account, _ = LedgerAccount.objects.get_or_create(community=community, kind=kind)
    return account


def ledger_post(
    *,
    community: Community,
    key: str,
    kind: TransactionKind,
    lines: Sequence[LedgerLine],
    memo: str = "",
    interval: Interval | None = None,
    posted_by: User | None = None,
    now: datetime | None = None,
) -> LedgerTransaction:
    """Append one balanced transaction to the chain and return it.

    ``lines`` must sum to exactly zero before rounding. Each line is quantised to cents; what the
    rounding leaves over is booked as an explicit ``rounding`` line on the community's fee
    account, so the entries sum to exactly zero too. Posting the same ``key`` again returns the
    transaction already booked and writes nothing, which makes retried tasks harmless.
    The entries are chained with the ledger key and a signed checkpoint of the new head is
    written (``marketplace/ledger/checkpoints.py``). Runs in the caller's transaction when there
    is one (it never opens a durable one).
    """
    exact_total = sum((line.amount for line in lines), ZERO)
    if exact_total != ZERO:
        raise ApplicationError(
            ErrorCode.UNBALANCED_LEDGER, f"Ledger lines must balance; they sum to {exact_total}."
        )
    for line in lines:
        if line.account.community_id != community.pk:
            raise ApplicationError(
                ErrorCode.UNBALANCED_LEDGER, "A ledger line names another community's account."
            )
    at = now or timezone.now()
    with transaction.atomic():
        lock_ledger_chain()
        existing = LedgerTransaction.objects.filter(key=key).first()
        if existing is not None:
            return existing
        ledger_transaction = LedgerTransaction.objects.create(
            community=community,
            key=key,
            kind=kind,
            interval=interval,
            memo=memo,
            posted_at=at,
            posted_by=posted_by,
        )
        rounded = [(line, to_cents(line.amount)) for line in lines]
        residue = -sum((amount for _, amount in rounded), ZERO)
        if residue:
            fee_account = ledger_account_for_community(community=community, kind=AccountKind.FEE)
            rounded.append(
                (
                    LedgerLine(
                        account=fee_account,
                        amount=residue,
                        kind=EntryKind.ROUNDING,
                        memo="rounding to the minor unit",
                    ),
                    residue,
                )
            )
        entries = _append_entries(ledger_transaction, rounded, interval=interval, at=at)
        if entries:
            checkpoint_write(head=entries[-1], added=entries, at=at)
        return ledger_transaction


class AppendedEntry(NamedTuple):
    """What the checkpoint needs of an entry just appended."""

    sequence: int
    hash: str
    amount: Decimal


def _append_entries(
    ledger_transaction: LedgerTransaction,
    rounded: Sequence[tuple[LedgerLine, Decimal]],
    *,
    interval: Interval | None,
    at: datetime,
) -> list[AppendedEntry]:
    # The caller holds the chain lock, so the head read here is still the head when we write.
    head = LedgerEntry.objects.order_by("-sequence").values("sequence", "hash").first()
    sequence = head["sequence"] if head else 0
    prev_hash = head["hash"] if head else GENESIS_HASH
    key = ledger_key()
    interval_id = interval.pk if interval else None
    appended: list[AppendedEntry] = []
    # The rows in _ENTRY_COLUMNS' order, without a model instance each: for a settlement of a
    # thousand members, building the instances cost about as much as hashing the entries.
    rows: list[list[object]] = []
    for line, amount in rounded:
        if amount == ZERO:
            continue  # a zero line carries no money; its energy is in the Settlement row
        sequence += 1
        # Stored at the columns' precision, so the hash covers exactly what the database keeps.
        energy = None if line.energy_kwh is None else line.energy_kwh.quantize(KWH)
        price = None if line.price_per_kwh is None else line.price_per_kwh.quantize(PRICE)
        content = EntryContent(
            sequence=sequence,
            transaction_id=ledger_transaction.pk,
            account_id=line.account.pk,
            kind=str(line.kind),
            amount=amount,
            energy_kwh=energy,
            price_per_kwh=price,
            interval_id=interval_id,
            memo=line.memo,
            created_at=at,
        )
        digest = entry_hash(content, prev_hash, key)
        rows.append(
            [
                ledger_transaction.pk,
                line.account.pk,
                sequence,
                line.kind,
                amount,
                energy,
                price,
                interval_id,
                line.memo,
                at,
                prev_hash,
                digest,
            ]
        )
        appended.append(AppendedEntry(sequence, digest, amount))
        prev_hash = digest
    # One COPY (config.sql.insert_rows): bulk_create's compilation of a thousand entries cost
    # more than the rest of a settlement. The entries' ids are not needed: the chain is by
    # sequence, and the checkpoint reads sequences, hashes and amounts.
    insert_rows(LedgerEntry, _ENTRY_COLUMNS, rows)
    return appended


_ENTRY_COLUMNS = (
    "transaction_id",
    "account_id",
    "sequence",
    "kind",
    "amount",
    "energy_kwh",
    "price_per_kwh",
    "interval_id",
    "memo",
    "created_at",
    "prev_hash",
    "hash",
)
