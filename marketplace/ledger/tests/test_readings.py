"""Meter readings: per-row reports from the API batch and the community CSV, versions."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.errors import ApplicationError
from marketplace.ledger.models import MeterReading, ReadingSource
from marketplace.ledger.services import (
    meter_readings_import_csv,
    meter_readings_submit,
    readings_simulate,
)
from marketplace.ledger.tests.conftest import (
    after_end,
    make_trade,
    member_before,
    meter_operator,
    reading,
)
from marketplace.tests.factories import CommunityFactory


def _start(interval) -> str:
    return interval.start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_csv_reports_bad_rows_and_keeps_good_ones(community, intervals, alice, bob, manager):
    first, second = intervals[0], intervals[1]
    elsewhere = member_before(CommunityFactory())  # type: ignore[arg-type]
    # 20 kW for a quarter-hour: at most 5 kWh per interval.
    text = "\n".join(
        [
            "meter_point,interval_start,imported_kwh,exported_kwh",
            f"{alice.meter_point.pk},{_start(first)},1.250,0.000",
            f"{bob.meter_point.pk},{_start(first)},0.000,2.5",
            f"999999,{_start(first)},1,0",
            f"{elsewhere.meter_point.pk},{_start(first)},1,0",
            f"{alice.meter_point.pk},{_start(second)},-1,0",
            f"{alice.meter_point.pk},{_start(second)},abc,0",
            f"{alice.meter_point.pk},2020-01-01T00:00:00Z,1,0",
            f"{bob.meter_point.pk},{_start(second)},5.001,0",
            f"{bob.meter_point.pk},{_start(second)},5.000,0",
            f"{bob.meter_point.pk},2026-03-02T09:15:00,1,0",
        ]
    )
    report = meter_readings_import_csv(
        community=community,
        file=io.BytesIO(text.encode()),
        submitted_by=manager,
        now=after_end(intervals[-1]),
    )
    outcome = {row.row: (row.accepted, row.code) for row in report.rows}
    assert outcome == {
        2: (True, ""),
        3: (True, ""),
        4: (False, "not_found"),  # unknown meter point
        5: (False, "not_found"),  # another community's meter point is unknown here
        6: (False, "negative_reading"),
        7: (False, "not_a_number"),
        8: (False, "not_found"),  # no such interval
        9: (False, "over_capacity"),  # beyond 20 kW x 0.25 h
        10: (True, ""),
        11: (False, "bad_datetime"),  # no time zone
    }
    assert "capacity" in report.rows[7].reason
    assert "5.000 kWh" in report.rows[7].reason
    assert MeterReading.objects.count() == 3
    stored = MeterReading.objects.get(meter_point=alice.meter_point, interval=first)
    assert (stored.imported_kwh, stored.source, stored.version) == (
        Decimal("1.250"),
        ReadingSource.CSV,
        1,
    )


def test_csv_needs_its_header_and_a_manager(community, interval, alice):
    with pytest.raises(ApplicationError) as refused:
        meter_readings_import_csv(
            community=community, file=io.BytesIO(b"a,b\n1,2\n"), submitted_by=alice.membership.user
        )
    assert refused.value.code == "permission_denied"


def test_csv_without_the_columns_is_refused_whole(community, manager):
    with pytest.raises(ApplicationError) as refused:
        meter_readings_import_csv(
            community=community, file=io.StringIO("a,b\n1,2\n"), submitted_by=manager
        )
    assert refused.value.field == "file"


def test_a_correction_is_a_new_version_and_the_old_one_stays(interval, alice):
    user = meter_operator(alice)
    row = {**reading(alice, "1.000", "0"), "interval": interval.pk}
    meter_readings_submit(submitted_by=user, readings=[row], now=after_end(interval))
    report = meter_readings_submit(
        submitted_by=user,
        readings=[{**row, "imported_kwh": Decimal("1.100")}],
        now=after_end(interval),
    )
    assert report.rows[0].version == 2
    first, second = MeterReading.objects.order_by("version")
    assert second.supersedes == first
    assert first.imported_kwh == Decimal("1.000")


def test_readings_come_only_from_a_metering_source(interval, alice, bob, manager):
    for member in (alice, bob):  # neither one's own meter nor another's
        with pytest.raises(ApplicationError) as refused:
            meter_readings_submit(
                submitted_by=member.membership.user,
                readings=[{**reading(alice, "1", "0"), "interval": interval.pk}],
                now=after_end(interval),
            )
        assert refused.value.code == "not_metering_source"
    elsewhere = CommunityFactory()
    other_manager = meter_operator(member_before(elsewhere))  # type: ignore[arg-type]
    report = meter_readings_submit(
        submitted_by=other_manager,
        readings=[{**reading(alice, "1", "0"), "interval": interval.pk}],
        now=after_end(interval),
    )
    assert report.rows[0].code == "not_metering_source"
    assert not MeterReading.objects.exists()
    report = meter_readings_submit(
        submitted_by=manager,
        readings=[{**reading(alice, "1", "0"), "interval_start": interval.start}],
        now=after_end(interval),
    )
    assert report.rows[0].accepted


def test_readings_for_an_interval_not_yet_over_are_refused(interval, alice):
    report = meter_readings_submit(
        submitted_by=meter_operator(alice),
        readings=[{**reading(alice, "1", "0"), "interval": interval.pk}],
        now=interval.start,
    )
    assert report.rows[0].code == "invalid_state"


def test_simulated_readings_follow_the_schedule_and_are_stored_once(interval, alice, bob):
    make_trade(interval, buyer=bob, seller=alice, kwh="2.000", price="0.1500")
    readings = readings_simulate(interval=interval, noise=Decimal("0.1"), seed=7)
    by_member = {r.meter_point_id: r for r in readings}
    assert set(by_member) == {alice.meter_point.pk, bob.meter_point.pk}
    assert Decimal("1.8") <= by_member[alice.meter_point.pk].exported_kwh <= Decimal("2.2")
    assert Decimal("1.8") <= by_member[bob.meter_point.pk].imported_kwh <= Decimal("2.2")
    assert readings_simulate(interval=interval, noise=Decimal("0.1"), seed=7) == []


def test_the_batch_history_summary_is_the_listed_history_summarised(
    community, intervals, alice, bob, manager, monkeypatch
):
    from marketplace.ledger.plausibility import ReadingHistory
    from marketplace.ledger.services import readings

    # A short window so that it is full: only the newest HISTORY_READINGS count.
    monkeypatch.setattr(readings, "HISTORY_READINGS", 4)
    ordered = sorted(intervals, key=lambda i: i.start)[:7]
    for k, interval in enumerate(ordered):
        meter_readings_submit(
            submitted_by=manager,
            readings=[
                {**reading(alice, f"{0.5 * k + 0.5}", "0.1"), "interval": interval.pk},
                {**reading(bob, "0.2", f"{0.5 * (7 - k)}"), "interval": interval.pk},
            ],
            now=after_end(ordered[-1]),
        )
    # A correction supersedes alice's newest reading: the old version leaves her history.
    meter_readings_submit(
        submitted_by=manager,
        readings=[{**reading(alice, "0.3", "0.1"), "interval": ordered[-1].pk}],
        now=after_end(ordered[-1]),
    )
    summaries = readings._history_summaries([alice.meter_point.pk, bob.meter_point.pk])
    for who in (alice, bob):
        listed = readings._history(who.meter_point.pk)
        assert len(listed) == 4
        assert summaries[who.meter_point.pk] == ReadingHistory.of(listed)
    # Alice's newest four: 0.3 (the correction of 3.5), 3.0, 2.5, 2.0; bob's 2.0 down to 0.5.
    assert summaries[alice.meter_point.pk].highest_imported_kwh == Decimal("3.0")
    assert summaries[bob.meter_point.pk].highest_exported_kwh == Decimal("2.0")
    # A bound on where to look first changes nothing: a window that holds the newest four
    # answers alone, one that holds fewer falls back to the whole history.
    ids = [alice.meter_point.pk, bob.meter_point.pk]
    for since in (ordered[0].start, ordered[3].start, ordered[5].start, ordered[-1].end):
        assert (
            readings._history_summaries(ids, since=since, community_ids=[community.pk]) == summaries
        )


def test_a_batch_of_many_meters_costs_a_few_statements(
    community, intervals, manager, django_assert_max_num_queries
):
    homes = [member_before(community) for _ in range(12)]
    first, second = sorted(intervals, key=lambda i: i.start)[:2]
    rows = [{**reading(h, "0.5", "0"), "interval": first.pk} for h in homes]
    meter_readings_submit(submitted_by=manager, readings=rows, now=after_end(second))
    rows = [{**reading(h, "0.4", "0.1"), "interval": second.pk} for h in homes]
    with django_assert_max_num_queries(12):
        report = meter_readings_submit(submitted_by=manager, readings=rows, now=after_end(second))
    assert len(report.accepted) == 12
    assert MeterReading.objects.filter(interval=second).count() == 12


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True),
        st.decimals(min_value=0, max_value=10**9, places=3),
        st.decimals(min_value=0, max_value=10, places=5),
    )
)
def test_a_decimal_energy_is_checked_as_its_text_would_be(value):
    from marketplace.ledger.services.readings import _energy, _RefusedError

    def outcome(given: object) -> tuple[str, Decimal | None]:
        try:
            number = _energy(given, "imported_kwh")
        except _RefusedError as refused:
            return str(refused.code), None
        return "", number

    as_decimal, as_text = outcome(value), outcome(str(value))
    assert as_decimal == as_text
    if as_decimal[1] is not None and as_text[1] is not None:
        # The same digits, to the Wh, as the column stores them.
        assert as_decimal[1].as_tuple() == as_text[1].as_tuple()


def test_a_batch_reports_the_stored_rows_and_their_versions(interval, alice, bob, manager):
    now = after_end(interval)
    meter_readings_submit(
        submitted_by=manager,
        readings=[{**reading(bob, "0.5", "0"), "interval": interval.pk}],
        now=now,
    )
    report = meter_readings_submit(
        submitted_by=manager,
        readings=[
            {**reading(alice, "1.0", "0"), "interval": interval.pk},
            {**reading(bob, "0.5", "0"), "interval": interval.pk},  # unchanged
            {**reading(alice, "1.2", "0"), "interval": interval.pk},  # supersedes row 1
            {**reading(bob, "0.6", "0"), "interval": interval.pk},
            {**reading(alice, "1.2", "0"), "interval": interval.pk},  # unchanged: row 3's
        ],
        now=now,
    )
    stored = {r.pk: r for r in MeterReading.objects.filter(interval=interval)}
    seen = [
        (row.row, row.unchanged, row.version, stored[row.reading_id or 0].version)
        for row in report.rows
    ]
    assert seen == [
        (1, False, 1, 1),
        (2, True, 1, 1),
        (3, False, 2, 2),
        (4, False, 2, 2),
        (5, True, 2, 2),
    ]
    by_row = {row.row: stored[row.reading_id or 0] for row in report.rows}
    assert by_row[3].supersedes_id == by_row[1].pk
    assert by_row[4].supersedes_id == by_row[2].pk
    assert by_row[5].pk == by_row[3].pk
    assert (by_row[3].meter_point_id, by_row[3].imported_kwh) == (
        alice.meter_point.pk,
        Decimal("1.200"),
    )
    assert len(stored) == 4


def _a_day_of_readings(interval, values) -> None:
    """The day of 15-minute intervals before ``interval``, each with a reading of every member
    in ``values`` (member -> (imported, exported)): a day is enough history to flag a jump."""
    from datetime import timedelta

    from marketplace.ledger.plausibility import MIN_HISTORY
    from marketplace.models import Interval

    past = Interval.objects.bulk_create(
        Interval(
            community=interval.community,
            rules=interval.rules,
            start=interval.start - timedelta(minutes=15 * k),
            end=interval.start - timedelta(minutes=15 * (k - 1)),
            gate_closure_at=interval.start - timedelta(minutes=15 * k + 5),
            state="settled",
        )
        for k in range(1, MIN_HISTORY + 1)
    )
    MeterReading.objects.bulk_create(
        MeterReading(
            meter_point=who.meter_point,
            interval=Interval.objects.get(community=interval.community, start=i.start),
            imported_kwh=Decimal(imported),
            exported_kwh=Decimal(exported),
            source=ReadingSource.CSV,
        )
        for i in past
        for who, (imported, exported) in values.items()
    )


@pytest.mark.parametrize(
    ("imported", "exported"),
    [
        ("1.300", "0"),  # above the import floor (1.25 kWh), below 4 x 1.0: no jump
        ("4.000", "0"),  # exactly 4 x the day's highest: no jump
        ("4.001", "0"),
        ("0", "2.000"),
        ("0", "2.001"),
        ("4.000", "2.001"),  # one column jumps: the reading needs its exact history
    ],
)
def test_the_last_day_settles_only_readings_that_cannot_jump(
    community, interval, alice, bob, manager, imported, exported
):
    from django.db import connection

    from marketplace.ledger.plausibility import jump_floor_kwh, reading_check
    from marketplace.ledger.services import readings

    _a_day_of_readings(interval, {alice: ("1.000", "0.500"), bob: ("1.000", "0.500")})
    # Bob already has a reading of the tested interval: his last day is not his newest readings.
    meter_readings_submit(
        submitted_by=manager,
        readings=[{**reading(bob, "0.100", "0"), "interval": interval.pk}],
        now=after_end(interval),
    )
    mp = alice.meter_point
    floor = jump_floor_kwh(mp.import_capacity_kw, interval.hours)
    imported_kwh, exported_kwh = Decimal(imported), Decimal(exported)
    tests = [
        readings._JumpTest(
            who.meter_point.pk,
            community.pk,
            interval.start,
            imported_kwh if imported_kwh > floor else None,
            exported_kwh if exported_kwh > floor else None,
        )
        for who in (alice, bob)
    ]
    exact = reading_check(
        imported_kwh=imported_kwh,
        exported_kwh=exported_kwh,
        import_capacity_kw=mp.import_capacity_kw,
        export_capacity_kw=mp.export_capacity_kw,
        hours=interval.hours,
        history=readings._history(mp.pk),
    )
    settled = readings._not_jumps(tests)
    if connection.vendor == "postgresql":
        assert (mp.pk in settled) == (exact is None)
    else:
        assert settled == set()  # elsewhere every such meter reads its history
    assert bob.meter_point.pk not in settled

    report = meter_readings_submit(
        submitted_by=manager,
        readings=[{**reading(alice, imported, exported), "interval": interval.pk}],
        now=after_end(interval),
    )
    (row,) = report.rows
    assert row.accepted
    assert row.flagged == (exact is not None)
