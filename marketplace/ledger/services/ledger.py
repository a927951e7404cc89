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
from marketplace.ledger.chain import EntryHasher
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


class AccountRef(NamedTuple):
    """A ledger account as a posting needs it, its id and community, without a model instance:
    a settlement names a thousand member accounts."""

    pk: int
    community_id: int


# What a ledger line names: an account instance, or its id and community.
PostingAccount = LedgerAccount | AccountRef


@dataclass(frozen=True)
class LedgerLine:
    """One line to post: an exact (not yet rounded) amount on one account."""

    account: PostingAccount
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


def ledger_accounts_for_members(
    *, membership_ids: Iterable[int], community_ids: Iterable[int] = ()
) -> dict[int, AccountRef]:
    """``ledger_account_for_member`` for many members: membership id -> account (id and
    community), the missing ones opened together (callers hold the chain lock, so no one opens
    them meanwhile). ``community_ids``, the communities the members most likely belong to: their
    member accounts are read by community, one short statement instead of one naming a thousand
    ids; only members not found there are looked up by id (and opened if they have none)."""
    wanted = set(membership_ids)
    accounts: dict[int, AccountRef] = {}
    communities = sorted(set(community_ids))
    if communities:
        rows = (
            LedgerAccount.objects.filter(community_id__in=communities, kind=AccountKind.MEMBER)
            .order_by()
            .values_list("membership_id", "pk", "community_id")
        )
        accounts = {m: AccountRef(pk, c) for m, pk, c in rows if m in wanted}
    others = sorted(wanted - accounts.keys())
    if not others:
        return accounts
    for membership_id, pk, community_id in (
        LedgerAccount.objects.filter(membership_id__in=others)
        .order_by()
        .values_list("membership_id", "pk", "community_id")
    ):
        accounts[membership_id] = AccountRef(pk, community_id)
    community_of = dict(
        Membership.objects.filter(pk__in=sorted(wanted - accounts.keys()))
        .order_by()
        .values_list("pk", "community_id")
    )
    missing = [
        LedgerAccount(membership_id=pk, community_id=community_of[pk], kind=AccountKind.MEMBER)
        for pk in sorted(community_of)
    ]
    for account in LedgerAccount.objects.bulk_create(missing):
        accounts[int(account.membership_id)] = AccountRef(  # type: ignore[arg-type]  # a member's
            account.pk, account.community_id
        )
    return accounts


def ledger_account_for_community(*, community: Community, kind: AccountKind) -> LedgerAccount:
    """The community's grid or fee account, opened on first use."""
    if kind == AccountKind.MEMBER:
        raise ValueError("member accounts belong to a membership")
    account, _ = LedgerAccount.objects.get_or_create(community=community, kind=kind)
    return account


def ledger_accounts_for_communities(
    *, communities: Iterable[Community], kinds: Sequence[AccountKind]
) -> dict[int, dict[str, LedgerAccount]]:
    """``ledger_account_for_community`` for many communities and kinds: community id -> kind ->
    account, the missing ones opened together (callers hold the chain lock)."""
    if AccountKind.MEMBER in kinds:
        raise ValueError("member accounts belong to a membership")
    by_pk = {community.pk: community for community in communities}
    accounts: dict[int, dict[str, LedgerAccount]] = {pk: {} for pk in by_pk}
    # No ordering: the model's orders by community, which joins the community table.
    for account in LedgerAccount.objects.filter(
        community_id__in=list(by_pk), kind__in=kinds
    ).order_by():
        accounts[account.community_id][account.kind] = account
    missing = [
        LedgerAccount(community=by_pk[pk], kind=kind)
        for pk in sorted(by_pk)
        for kind in kinds
        if kind not in accounts[pk]
    ]
    for account in LedgerAccount.objects.bulk_create(missing):
        accounts[account.community_id][account.kind] = account
    return accounts


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
    posting = LedgerPosting(
        community=community, key=key, kind=kind, lines=tuple(lines), memo=memo,
        interval=interval, posted_by=posted_by,
    )  # fmt: skip
    return ledger_post_many(postings=[posting], now=now)[0]


@dataclass(frozen=True)
class LedgerPosting:
    """One transaction for ``ledger_post_many``: ``ledger_post``'s arguments but the time."""

    community: Community
    key: str
    kind: TransactionKind
    lines: Sequence[LedgerLine]
    memo: str = ""
    interval: Interval | None = None
    posted_by: User | None = None


def _check_balanced(posting: LedgerPosting) -> None:
    exact_total = sum((line.amount for line in posting.lines), ZERO)
    if exact_total != ZERO:
        raise ApplicationError(
            ErrorCode.UNBALANCED_LEDGER, f"Ledger lines must balance; they sum to {exact_total}."
        )
    community_id = posting.community.pk  # once, not per line: a settlement has thousands
    for line in posting.lines:
        if line.account.community_id != community_id:
            raise ApplicationError(
                ErrorCode.UNBALANCED_LEDGER, "A ledger line names another community's account."
            )


def ledger_post_many(
    *, postings: Sequence[LedgerPosting], now: datetime | None = None
) -> list[LedgerTransaction]:
    """``ledger_post`` for several transactions at once, in order, under one chain lock.

    Each posting is checked, rounded and keyed exactly as ``ledger_post`` does it (a key already
    booked returns its transaction and writes nothing). The new transactions are inserted in one
    statement, their entries chained one after the other and written in one COPY, and one signed
    checkpoint covers them all: a replay settling a hundred intervals of a clock step pays for
    the lock, the chain head, the insert and the checkpoint once, not a hundred times.
    """
    for posting in postings:
        _check_balanced(posting)
    at = now or timezone.now()
    with transaction.atomic():
        lock_ledger_chain()
        existing = {
            t.key: t for t in LedgerTransaction.objects.filter(key__in=[p.key for p in postings])
        }
        # A key given twice in one call books once, like two calls would.
        fresh: dict[str, LedgerPosting] = {}
        for posting in postings:
            if posting.key not in existing:
                fresh.setdefault(posting.key, posting)
        created = LedgerTransaction.objects.bulk_create(
            [
                LedgerTransaction(
                    community=p.community, key=p.key, kind=p.kind, interval=p.interval,
                    memo=p.memo, posted_at=at, posted_by=p.posted_by,
                )
                for p in fresh.values()
            ]
        )  # fmt: skip
        by_key = {**existing, **{t.key: t for t in created}}
        fee_accounts: dict[int, LedgerAccount] = {}
        groups = []
        for posting, ledger_transaction in zip(fresh.values(), created, strict=True):
            rounded = [(line, to_cents(line.amount)) for line in posting.lines]
            residue = -sum((amount for _, amount in rounded), ZERO)
            if residue:
                community = posting.community
                if community.pk not in fee_accounts:
                    fee_accounts[community.pk] = ledger_account_for_community(
                        community=community, kind=AccountKind.FEE
                    )
                rounded.append(
                    (
                        LedgerLine(
                            account=fee_accounts[community.pk],
                            amount=residue,
                            kind=EntryKind.ROUNDING,
                            memo="rounding to the minor unit",
                        ),
                        residue,
                    )
                )
            groups.append((ledger_transaction, rounded, posting.interval))
        entries = _append_entries(groups, at=at)
        if entries:
            checkpoint_write(head=entries[-1], added=entries, at=at)
        return [by_key[p.key] for p in postings]


class AppendedEntry(NamedTuple):
    """What the checkpoint needs of an entry just appended."""

    sequence: int
    hash: str
    amount: Decimal


def _append_entries(
    groups: Sequence[
        tuple[LedgerTransaction, Sequence[tuple[LedgerLine, Decimal]], Interval | None]
    ],
    *,
    at: datetime,
) -> list[AppendedEntry]:
    """Chain the transactions' entries one after the other from the head and write them."""
    # The caller holds the chain lock, so the head read here is still the head when we write.
    head = LedgerEntry.objects.order_by("-sequence").values("sequence", "hash").first()
    sequence = head["sequence"] if head else 0
    prev_hash = head["hash"] if head else GENESIS_HASH
    hasher = EntryHasher(ledger_key(), at)
    appended: list[AppendedEntry] = []
    # The rows in _ENTRY_COLUMNS' order, without a model instance each: for a settlement of a
    # thousand members, building the instances cost about as much as hashing the entries.
    rows: list[list[object]] = []
    for ledger_transaction, rounded, interval in groups:
        interval_id = interval.pk if interval else None
        transaction_id = ledger_transaction.pk
        for line, amount in rounded:
            if amount == ZERO:
                continue  # a zero line carries no money; its energy is in the Settlement row
            sequence += 1
            # Stored at the columns' precision, so the hash covers exactly what the database
            # keeps.
            energy = None if line.energy_kwh is None else line.energy_kwh.quantize(KWH)
            price = None if line.price_per_kwh is None else line.price_per_kwh.quantize(PRICE)
            account_id = line.account.pk
            digest = hasher.hash(
                prev_hash,
                sequence=sequence,
                transaction_id=transaction_id,
                account_id=account_id,
                kind=str(line.kind),
                amount=amount,
                energy_kwh=energy,
                price_per_kwh=price,
                interval_id=interval_id,
                memo=line.memo,
            )
            rows.append(
                [
                    transaction_id,
                    account_id,
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
