"""The hash chain: verify_ledger finds edits made behind the application's back."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from conftest import requires_postgres
from marketplace.ledger.models import LedgerEntry, LedgerVerification
from marketplace.ledger.selectors import ledger_last_verification
from marketplace.ledger.services import interval_settle, ledger_verify
from marketplace.ledger.tasks import ledger_verify_task
from marketplace.ledger.tests.conftest import AFTER_WINDOW, make_trade

ENTRY_TABLE = LedgerEntry._meta.db_table


@pytest.fixture
def settled(intervals, alice, bob):
    for interval in intervals[:2]:
        make_trade(interval, buyer=bob, seller=alice, kwh="1.500", price="0.2000")
        make_trade(interval, buyer=alice, seller=None, kwh="0.700", price="0.3200")
        interval_settle(interval=interval, now=interval.end + AFTER_WINDOW)
    assert LedgerEntry.objects.count() >= 8
    return intervals[:2]


def raw(sql: str, params: list[int | str]) -> None:
    """Run SQL straight at the database, past the application."""
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=ENTRY_TABLE), params)


@contextmanager
def triggers_off():
    """Take the append-only guard away, as an attacker with database access could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Deferred foreign-key checks are pending in the test's transaction; ALTER TABLE
            # refuses to run until they have fired.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {ENTRY_TABLE} DISABLE TRIGGER USER")
        else:
            cursor.execute(f"DROP TRIGGER {ENTRY_TABLE}_append_only")
    yield  # the test's transaction is rolled back at its end, trigger and all


def test_an_intact_chain_verifies_and_is_recorded(settled):
    result = ledger_verify()
    assert result.ok
    assert result.entries_checked == LedgerEntry.objects.count()
    assert ledger_last_verification() == result
    call_command("verify_ledger")


def test_an_edited_amount_is_found_and_named(settled):
    victim = LedgerEntry.objects.order_by("sequence")[3]
    with triggers_off():
        raw("UPDATE {table} SET amount = amount + 1 WHERE id = %s", [victim.pk])
    result = ledger_verify()
    assert not result.ok
    assert (result.first_bad_entry_id, result.first_bad_sequence) == (victim.pk, victim.sequence)
    assert "edited" in result.reason
    with pytest.raises(CommandError, match=f"entry id={victim.pk} "):
        call_command("verify_ledger")
    assert ledger_last_verification() == LedgerVerification.objects.latest()


def test_an_edit_that_rehashes_the_entry_breaks_the_next_link(settled):
    entries = list(LedgerEntry.objects.order_by("sequence"))
    victim, following = entries[2], entries[3]
    with triggers_off():
        raw("UPDATE {table} SET hash = %s WHERE id = %s", ["f" * 64, victim.pk])
    result = ledger_verify()
    assert result.first_bad_entry_id == victim.pk
    # Even if the edited entry's own hash were made to match, its successor would not link.
    assert following.prev_hash == victim.hash


def test_a_deleted_entry_leaves_a_gap_that_is_found(settled):
    entries = list(LedgerEntry.objects.order_by("sequence"))
    with triggers_off():
        raw("DELETE FROM {table} WHERE id = %s", [entries[4].pk])
    result = ledger_verify()
    assert result.first_bad_entry_id == entries[5].pk
    assert "removed" in result.reason


def test_a_community_walk_checks_its_own_entries(settled, community):
    assert ledger_verify(community=community).ok
    call_command("verify_ledger", community=community.slug)


def test_sqlite_or_postgres_refuses_updating_an_entry(settled):
    entry = LedgerEntry.objects.order_by("sequence")[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw("UPDATE {table} SET memo = 'x' WHERE id = %s", [entry.pk])


@requires_postgres
def test_postgres_refuses_deleting_entries_and_transactions(settled):
    entry = LedgerEntry.objects.order_by("sequence")[0]
    for sql, pk in (
        ("DELETE FROM {table} WHERE id = %s", entry.pk),
        ("UPDATE ledger_ledgertransaction SET memo = 'x' WHERE id = %s", entry.transaction_id),
        ("DELETE FROM ledger_ledgertransaction WHERE id = %s", entry.transaction_id),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            raw(sql, [pk])


def test_the_periodic_task_records_a_verification(settled):
    assert settings.CELERY_BEAT_SCHEDULE["ledger-verify"]["task"] == ledger_verify_task.name
    outcome = ledger_verify_task.apply().get()
    assert outcome["ok"] is True
    assert outcome["entries_checked"] == LedgerEntry.objects.count() > 0
    last = ledger_last_verification()
    assert last is not None
    assert last.ok
