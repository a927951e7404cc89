"""An attacker with database access but not the ledger key: every kind of tampering is named.

Each test first settles real intervals (the checkpoint file is written as the postings commit),
then changes the tables behind the application's back and runs ``verify_ledger``.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from conftest import requires_postgres
from marketplace.ledger.chain import EntryContent, canonical, entry_hash
from marketplace.ledger.checkpoints import checkpoint_file
from marketplace.ledger.keys import _key_file, ledger_key
from marketplace.ledger.models import (
    LedgerCheckpoint,
    LedgerEntry,
    LedgerProblem,
    LedgerTransaction,
)
from marketplace.ledger.services import interval_settle, ledger_verify
from marketplace.ledger.tests.conftest import AFTER_WINDOW, make_trade

LEDGER_TABLES = (
    "ledger_ledgerentry",
    "ledger_ledgertransaction",
    "ledger_ledgercheckpoint",
    "ledger_settlement",
)


@pytest.fixture
def settled(intervals, alice, bob, django_capture_on_commit_callbacks):
    for interval in intervals[:3]:
        make_trade(interval, buyer=bob, seller=alice, kwh="1.500", price="0.2000")
        make_trade(interval, buyer=alice, seller=None, kwh="0.700", price="0.3200")
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)
    assert ledger_verify().ok
    return list(LedgerEntry.objects.order_by("sequence"))


def sql(statement: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


@pytest.fixture
def attacker() -> None:
    """Database access as the tables' owner: the triggers can be switched off."""
    if connection.vendor == "postgresql":
        sql("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no pending FK checks
        for table in LEDGER_TABLES:
            sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    else:
        for table in ("ledger_ledgerentry", "ledger_ledgertransaction", "ledger_ledgercheckpoint"):
            sql(f"DROP TRIGGER IF EXISTS {table}_append_only")
    # No teardown: the test's transaction is rolled back at its end, triggers and all.


def plain_sha256(content: EntryContent, prev_hash: str) -> str:
    """What an attacker without the key can compute: the chain's old, unkeyed hash."""
    return hashlib.sha256(f"{prev_hash}\n{canonical(content)}".encode()).hexdigest()


def content_of(entry: LedgerEntry, **changes: Any) -> EntryContent:
    values = {
        "sequence": entry.sequence,
        "transaction_id": entry.transaction_id,
        "account_id": entry.account_id,
        "kind": entry.kind,
        "amount": entry.amount,
        "energy_kwh": entry.energy_kwh,
        "price_per_kwh": entry.price_per_kwh,
        "interval_id": entry.interval_id,
        "memo": entry.memo,
        "created_at": entry.created_at,
    }
    values.update(changes)
    return EntryContent(**values)


def test_the_checkpoint_file_and_table_follow_every_posting(settled):
    head = settled[-1]
    latest = LedgerCheckpoint.objects.latest()
    assert (latest.head_sequence, latest.head_hash) == (head.sequence, head.hash)
    assert latest.entry_count == len(settled)
    lines = [json.loads(line) for line in checkpoint_file().read_text().splitlines()]
    assert len(lines) == LedgerTransaction.objects.count() == 3
    assert lines[-1]["head_hash"] == head.hash
    assert lines[-1]["mac"] == latest.mac
    result = ledger_verify()
    assert result.checkpoint_sequence == head.sequence


def test_deleting_the_tail_is_found(settled, attacker):
    sql("DELETE FROM ledger_ledgerentry WHERE sequence > %s", [settled[-4].sequence])
    result = ledger_verify()
    assert not result.ok
    assert result.problem == LedgerProblem.TAIL_DELETED
    assert f"ends at sequence {settled[-4].sequence}" in result.reason
    with pytest.raises(CommandError, match="tail_deleted"):
        call_command("verify_ledger")


def test_deleting_the_tail_and_its_checkpoints_is_found_by_the_file(settled, attacker):
    last_kept = settled[-4].sequence
    sql("DELETE FROM ledger_ledgerentry WHERE sequence > %s", [last_kept])
    sql("DELETE FROM ledger_ledgercheckpoint WHERE head_sequence > %s", [last_kept])
    result = ledger_verify()
    assert result.problem == LedgerProblem.TAIL_DELETED
    assert result.checkpoint_sequence == settled[-1].sequence


def test_a_balanced_rewrite_without_the_key_is_found(settled, attacker):
    # Move 10.00 from one member to another in the first transaction and re-chain everything
    # with the only hash the attacker can compute; every transaction still sums to zero.
    first_tx = [e for e in settled if e.transaction_id == settled[0].transaction_id]
    payer, payee = first_tx[0], first_tx[1]
    prev = "0" * 64
    for entry in settled:
        amount = entry.amount
        if entry.pk == payer.pk:
            amount -= 10
        elif entry.pk == payee.pk:
            amount += 10
        digest = plain_sha256(content_of(entry, amount=amount), prev)
        sql(
            "UPDATE ledger_ledgerentry SET amount = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [amount, prev, digest, entry.pk],
        )
        prev = digest
    result = ledger_verify()
    assert result.problem == LedgerProblem.REWRITTEN
    assert result.first_bad_sequence == 1


def test_a_rewrite_with_a_stolen_key_is_found_by_the_checkpoint(settled, attacker):
    # Even a thief of the key cannot re-sign the checkpoint file they cannot reach.
    key = ledger_key()
    prev = "0" * 64
    for entry in settled:
        digest = entry_hash(content_of(entry, memo=entry.memo + " "), prev, key)
        sql(
            "UPDATE ledger_ledgerentry SET memo = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [entry.memo + " ", prev, digest, entry.pk],
        )
        prev = digest
    sql("DELETE FROM ledger_ledgercheckpoint")
    result = ledger_verify()
    assert result.problem == LedgerProblem.REWRITTEN
    assert result.first_bad_sequence == settled[-1].sequence


def test_a_forged_balanced_transaction_appended_is_found(settled, attacker):
    head = settled[-1]
    tx = LedgerTransaction.objects.create(
        community_id=LedgerTransaction.objects.get(pk=head.transaction_id).community_id,
        key="forged:1",
        kind="manual",
        memo="a gift",
    )
    prev = head.hash
    for offset, (account_id, amount) in enumerate(
        ((settled[0].account_id, 500), (settled[1].account_id, -500)), start=1
    ):
        entry = LedgerEntry(
            transaction=tx,
            account_id=account_id,
            sequence=head.sequence + offset,
            kind="manual",
            amount=amount,
            created_at=head.created_at + timedelta(seconds=1),
        )
        digest = plain_sha256(content_of(entry), prev)
        entry.prev_hash, entry.hash = prev, digest
        entry.save()
        prev = digest
    result = ledger_verify()
    assert result.problem == LedgerProblem.FORGED_APPEND
    assert result.first_bad_sequence == head.sequence + 1


@requires_postgres
def test_postgres_refuses_truncate(settled):
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    for table in ("ledger_ledgerentry", "ledger_ledgertransaction", "ledger_ledgercheckpoint"):
        with pytest.raises(DatabaseError, match="append-only: TRUNCATE"), transaction.atomic():
            sql(f"TRUNCATE {table} CASCADE")
    assert LedgerEntry.objects.count() == len(settled)


@requires_postgres
def test_postgres_refuses_changing_checkpoints(settled):
    for statement in (
        "UPDATE ledger_ledgercheckpoint SET entry_count = 0",
        "DELETE FROM ledger_ledgercheckpoint",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            sql(statement)


def test_truncating_everything_is_found(settled, attacker):
    if connection.vendor == "postgresql":
        sql(f"TRUNCATE {', '.join(LEDGER_TABLES)}")
    else:  # SQLite has no TRUNCATE; an unqualified DELETE is its equivalent
        for table in reversed(LEDGER_TABLES):
            sql(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    result = ledger_verify()
    assert result.problem == LedgerProblem.TRUNCATED
    assert "the ledger is empty" in result.reason


def test_a_forged_checkpoint_row_is_refused(settled, attacker):
    head = settled[-1]
    LedgerCheckpoint.objects.create(
        head_sequence=head.sequence + 1,
        head_hash="f" * 64,
        entry_count=len(settled) + 1,
        credit_total=1,
        mac="0" * 64,
    )
    result = ledger_verify()
    assert result.problem == LedgerProblem.CHECKPOINT_FORGED


def test_checkpoints_removed_from_the_database_are_noticed(settled, attacker):
    sql("DELETE FROM ledger_ledgercheckpoint")
    result = ledger_verify()
    assert result.problem == LedgerProblem.CHECKPOINT_REMOVED


def test_the_key_file_is_created_once_and_private(tmp_path):
    path = tmp_path / "keys" / "ledger.key"
    first = _key_file(path)
    assert len(first) >= 32
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert _key_file(path) == first
    assert list(path.parent.iterdir()) == [path]  # no drafts left behind


def test_the_environment_key_wins(settings):
    settings.LEDGER_KEY = "k" * 40
    ledger_key.cache_clear()
    try:
        assert ledger_key() == b"k" * 40
    finally:
        ledger_key.cache_clear()
