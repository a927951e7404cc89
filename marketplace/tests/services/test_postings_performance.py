"""posting_create's hot path: statements pinned; one interval's postings share its lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from conftest import requires_postgres
from marketplace.lock_objects import (
    lock_interval,
    lock_meter_point_with_membership,
    share_lock_interval,
)
from marketplace.models import Interval
from marketplace.services.board_checks import committed_kwh
from marketplace.tests.factories import T0, Member, member, new_community, open_interval
from marketplace.tests.fixtures import bid, post

D = Decimal
BOOKKEEPING = ("SAVEPOINT", "RELEASE SAVEPOINT", "BEGIN", "COMMIT")


def test_posting_create_runs_four_statements(alice: Member, interval: Interval) -> None:
    post(alice, interval)  # warm caches (content types etc.)
    with CaptureQueriesContext(connection) as queries:
        post(alice, interval, quantity="1")
    sql = [q["sql"] for q in queries if not q["sql"].startswith(BOOKKEEPING)]
    # The interval (shared lock, rules and community alongside), the meter point (locked,
    # with its membership's status), both capacity sums in one statement, the insert.
    assert len(sql) == 4, sql
    if connection.vendor == "postgresql":
        assert sql[0].endswith("FOR SHARE OF i")
        assert sql[1].endswith("FOR UPDATE OF mp")


def test_hand_written_selects_equal_the_orm(alice: Member, interval: Interval) -> None:
    """Converters (dates and decimals on SQLite, JSON) give the ORM's values."""
    Interval.objects.filter(pk=interval.pk).update(timings={"open": {"seconds": 0.5}})
    expected = Interval.objects.select_related("rules", "community").get(pk=interval.pk)
    with transaction.atomic():
        got = share_lock_interval(interval.pk)
        meter_point, membership, _ = lock_meter_point_with_membership(alice.meter_point.pk)
    for field in Interval._meta.concrete_fields:
        assert getattr(got, field.attname) == getattr(expected, field.attname), field.name
    for field in type(expected.rules)._meta.concrete_fields:
        assert getattr(got.rules, field.attname) == getattr(expected.rules, field.attname)
    assert got.community.slug == expected.community.slug
    assert got.hours == expected.hours
    assert meter_point.export_capacity_kw == alice.meter_point.export_capacity_kw
    assert meter_point.created_at == alice.meter_point.created_at
    assert (membership.pk, membership.status, membership.community_id) == (
        alice.membership.pk,
        alice.membership.status,
        alice.membership.community_id,
    )
    with pytest.raises(Interval.DoesNotExist), transaction.atomic():
        share_lock_interval(interval.pk + 10_000)


def test_committed_kwh_counts_postings_and_bids_in_one_statement(
    alice: Member, bob: Member, interval: Interval
) -> None:
    offer = post(alice, interval, quantity="2.125")
    post(bob, interval, side="buy", quantity="0.5", price="0.3")
    bid(bob, offer, quantity="1.250")
    with CaptureQueriesContext(connection) as queries:
        used = committed_kwh(meter_point_id=bob.meter_point.pk, interval_id=interval.pk, side="buy")
    assert len(queries) == 1
    assert used == D("1.750")
    assert committed_kwh(
        meter_point_id=alice.meter_point.pk, interval_id=interval.pk, side="buy"
    ) == D("0")


@contextmanager
def lock_timeout(milliseconds: int) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {int(milliseconds)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_intervals_postings_do_not_wait_for_each_other_but_gate_closure_does() -> None:
    """While a posting holds the interval (shared), another member's posting into it goes
    through at once, and the pipeline's exclusive lock has to wait for it."""
    community = new_community()
    interval = open_interval(community)
    first, second = member(community), member(community)
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold_shared_lock() -> None:
        try:
            with transaction.atomic():
                share_lock_interval(interval.pk)
                holding.set()
                release.wait(10)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            holding.set()
            connection.close()

    thread = threading.Thread(target=hold_shared_lock)
    thread.start()
    try:
        assert holding.wait(10)
        with lock_timeout(2000):
            post(second, interval, quantity="1")  # would time out if postings serialised
        with lock_timeout(200), pytest.raises(OperationalError), transaction.atomic():
            lock_interval(interval.pk)  # the gate closure's lock waits for the posting
    finally:
        release.set()
        thread.join()
    assert not errors, errors
    post(first, interval, quantity="1", now=T0)
