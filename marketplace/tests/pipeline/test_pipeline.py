"""The interval pipeline, run synchronously: compare-and-set steps, failures, tick, command."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from accounts.models import MeterPoint
from grid.models import GridCheckResult
from marketplace.ledger.models import LedgerEntry, MeterReading, ReadingSource, Settlement
from marketplace.ledger.services.settlement import (
    intervals_settle,
    settlement_window,
)
from marketplace.ledger.services.verification import ledger_verify
from marketplace.management.commands.advance_intervals import (
    parse_moment,
    parse_shard,
    parse_step,
)
from marketplace.models import Bid, Community, Interval, IntervalState, Posting, Trade
from marketplace.services import grid_check as grid_check_service
from marketplace.services import pipeline
from marketplace.services.bids import bid_create
from marketplace.services.communities import community_create
from marketplace.services.intervals import intervals_open_horizons
from marketplace.services.pipeline import (
    DueStep,
    interval_advance,
    intervals_advance_due,
    intervals_due,
    intervals_open_all,
    pipeline_tick,
    retry_delay,
)
from marketplace.services.postings import posting_create
from marketplace.services.rules import market_rules_update
from marketplace.tests.pipeline.helpers import community_with_homes, interval_at

pytestmark = pytest.mark.django_db
START = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)
BEFORE_GATE = START - timedelta(hours=1)
AFTER_GATE = START - timedelta(minutes=4)  # gate closes 5 minutes before the start


def _book(homes, interval):
    """Two sellers, two buyers on CIGRE LV; the prices cross, so the pool trades."""
    sides = [("sell", "2.000", "0.1000"), ("sell", "1.500", "0.1200")]
    sides += [("buy", "1.000", "0.3000"), ("buy", "3.000", "0.2500")]
    for home, (side, kwh, price) in zip(homes, sides, strict=True):
        posting_create(
            membership=home.membership,
            meter_point=home.meter_point,
            interval=interval,
            side=side,
            quantity_kwh=kwh,
            limit_price_per_kwh=price,
            now=BEFORE_GATE,
        )


@pytest.fixture
def market():
    community, homes = community_with_homes(homes=4)
    interval = interval_at(community, START)
    _book(homes, interval)
    return community, interval


def _snapshot(interval_id):
    interval = Interval.objects.get(pk=interval_id)
    trades = list(
        Trade.objects.filter(interval_id=interval_id)
        .order_by("pk")
        .values_list("pk", "quantity_kwh", "confirmed_kwh", "curtailed_kwh")
    )
    return interval.state, interval.timings, trades, GridCheckResult.objects.count()


def test_steps_run_in_order_to_confirmed(market):
    _, interval = market
    for to_state in ("gate_closed", "cleared", "grid_checked", "confirmed"):
        assert interval_advance(interval_id=interval.pk, to_state=to_state, now=AFTER_GATE)
    interval.refresh_from_db()
    assert interval.state == IntervalState.CONFIRMED
    assert set(interval.timings) >= {"gate_closed", "cleared", "grid_checked", "confirmed"}
    assert interval.timings["grid_checked"]["power_flows"] >= 1
    trades = list(Trade.objects.filter(interval=interval))
    assert trades
    assert any(t.buyer_id and t.seller_id for t in trades)  # peers traded with each other
    for trade in trades:
        assert trade.confirmed_kwh == trade.quantity_kwh - trade.curtailed_kwh
    result = GridCheckResult.objects.get(interval=interval)
    assert result.feasible
    assert result.trades_checked == len(trades)


@pytest.mark.parametrize("rule", ["mid-market-rate", "supply-demand-ratio", "bill-sharing"])
def test_the_pipeline_clears_a_community_that_chose_a_community_pricing_rule(rule):
    community, homes = community_with_homes(homes=4, clearing_mechanism=rule)
    interval = interval_at(community, START)
    _book(homes, interval)
    for to_state in ("gate_closed", "cleared", "grid_checked", "confirmed"):
        assert interval_advance(interval_id=interval.pk, to_state=to_state, now=AFTER_GATE)
    interval.refresh_from_db()
    assert interval.timings["cleared"]["mechanism"] == rule
    # Supply 3.5 kWh, demand 4 kWh: 3.5 kWh matched between members, 0.5 kWh imported.
    trades = Trade.objects.filter(interval=interval)
    assert sum(t.quantity_kwh for t in trades if t.source == "community") == Decimal("3.5")
    assert sum(t.quantity_kwh for t in trades if t.source == "grid") == Decimal("0.5")
    assert all(t.confirmed_kwh is not None for t in trades)


def test_a_step_run_twice_changes_nothing_the_second_time(market):
    _, interval = market
    for to_state in ("gate_closed", "cleared", "grid_checked", "confirmed"):
        assert interval_advance(interval_id=interval.pk, to_state=to_state, now=AFTER_GATE)
        before = _snapshot(interval.pk)
        assert not interval_advance(interval_id=interval.pk, to_state=to_state, now=AFTER_GATE)
        assert _snapshot(interval.pk) == before


def test_steps_out_of_order_or_early_are_no_ops(market):
    _, interval = market
    assert not interval_advance(interval_id=interval.pk, to_state="cleared", now=AFTER_GATE)
    # The gate is not closed one second before its time.
    early = interval.gate_closure_at - timedelta(seconds=1)
    assert not interval_advance(interval_id=interval.pk, to_state="gate_closed", now=early)
    assert not interval_advance(interval_id=999_999, to_state="gate_closed", now=AFTER_GATE)
    interval.refresh_from_db()
    assert interval.state == IntervalState.OPEN
    assert not Trade.objects.exists()
    with pytest.raises(ValueError, match="no pipeline step"):
        interval_advance(interval_id=interval.pk, to_state="open")


def test_a_failing_step_rolls_back_is_recorded_and_retried_after_backoff(market):
    community, interval = market
    other, other_homes = community_with_homes(homes=4)
    other_interval = interval_at(other, START)
    _book(other_homes, other_interval)
    assert interval_advance(interval_id=interval.pk, to_state="gate_closed", now=AFTER_GATE)
    assert interval_advance(interval_id=interval.pk, to_state="cleared", now=AFTER_GATE)
    trades_before = _snapshot(interval.pk)[2]

    real_check = grid_check_service.interval_grid_check

    def explode(*, interval, **options):
        if interval.community_id != community.pk:
            return real_check(interval=interval, **options)
        # Write something first: it must be rolled back with the rest of the step.
        Trade.objects.filter(interval=interval).update(curtailed_kwh=Decimal("0.001"))
        raise RuntimeError("power flow library crashed")

    with mock.patch.object(grid_check_service, "interval_grid_check", explode):
        done, errors = intervals_advance_due(now=AFTER_GATE)
    assert len(errors) == 1
    assert "power flow library crashed" in errors[0]
    interval.refresh_from_db()
    assert interval.state == IntervalState.CLEARED
    assert interval.failed_attempts == 1
    assert "grid_checked: RuntimeError: power flow library crashed" in interval.last_error
    assert interval.timings["failures"][-1]["step"] == "grid_checked"
    assert _snapshot(interval.pk)[2] == trades_before  # the partial write was rolled back
    assert not GridCheckResult.objects.filter(interval=interval).exists()
    # The other community went all the way regardless.
    other_interval.refresh_from_db()
    assert other_interval.state == IntervalState.CONFIRMED
    assert done >= 4

    # Held back while in backoff, due again after it; success clears the error.
    assert interval.pk not in {s.interval_id for s in intervals_due(now=AFTER_GATE)}
    later = AFTER_GATE + retry_delay(1) + timedelta(seconds=1)
    assert DueStep(interval.pk, community.pk, "grid_checked") in intervals_due(now=later)
    intervals_advance_due(now=later)
    interval.refresh_from_db()
    assert interval.state == IntervalState.CONFIRMED
    assert (interval.last_error, interval.failed_attempts) == ("", 0)
    assert len(interval.timings["failures"]) == 1  # the history stays visible


def test_retry_delay_grows_and_is_capped():
    assert retry_delay(0) == timedelta(0)
    assert retry_delay(1) < retry_delay(2) < retry_delay(3)
    assert retry_delay(50) == pipeline.RETRY_MAX


def test_tick_opens_horizons_and_queues_each_due_step_after_commit(
    market, django_capture_on_commit_callbacks
):
    community, interval = market
    queued: list[DueStep] = []
    with django_capture_on_commit_callbacks(execute=True):
        due = pipeline_tick(now=AFTER_GATE, dispatch=queued.append)
        assert queued == []  # nothing leaves before the data it needs is committed
    assert DueStep(interval.pk, community.pk, "gate_closed") in due
    assert queued == due
    opened = Interval.objects.filter(community=community, start__gt=START).count()
    assert opened >= 24 * 4 - 1  # the rolling horizon (24 h of 15-minute intervals)


@pytest.mark.parametrize(
    ("text", "offset"),
    [("+2d", timedelta(days=2)), ("+6h", timedelta(hours=6)), ("+90m", timedelta(minutes=90))],
)
def test_advance_intervals_accepts_a_moment_relative_to_now(text, offset):
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert parse_moment(text, now=now) == now + offset
    assert parse_moment("2026-06-03T00:00:00Z", now=now) == datetime(2026, 6, 3, tzinfo=UTC)


@pytest.mark.parametrize("text", ["+2w", "2d", "+d", "-1h", "tomorrow", "2026-06-03T00:00:00"])
def test_advance_intervals_refuses_other_moments(text):
    with pytest.raises(CommandError, match="--now"):
        parse_moment(text, now=datetime(2026, 6, 1, tzinfo=UTC))


@pytest.mark.parametrize("text", ["2/2", "1", "a/2", "0/0", "-1/2"])
def test_advance_intervals_refuses_other_shards(text):
    with pytest.raises(CommandError, match="--shard"):
        parse_shard(text)


@pytest.mark.parametrize(
    ("text", "step"),
    [("15m", timedelta(minutes=15)), ("2h", timedelta(hours=2)), ("1d", timedelta(days=1))],
)
def test_advance_intervals_accepts_a_clock_step(text, step):
    assert parse_step(text) == step


@pytest.mark.parametrize("text", ["0m", "25h", "2d", "15", "-15m", "1w", "m"])
def test_advance_intervals_refuses_other_clock_steps(text):
    with pytest.raises(CommandError, match="--step"):
        parse_step(text)


def _replayed_history(step):
    """Six hours of a community of two homes trading in every interval, replayed by
    ``advance_intervals --step step`` past the last settlement window: (clock steps, each
    interval's state and ledger amounts, oldest first)."""
    community, (seller, buyer) = community_with_homes(homes=2, network=None)
    # Only these intervals: no rolling horizon opens while the clock is replayed.
    Community.objects.filter(pk=community.pk).update(
        horizon_due_at=datetime(2100, 1, 1, tzinfo=UTC)
    )
    intervals = [interval_at(community, START + timedelta(minutes=15 * i)) for i in range(24)]
    for interval in intervals:
        for home, side, price in ((seller, "sell", "0.1000"), (buyer, "buy", "0.2000")):
            posting_create(
                membership=home.membership, meter_point=home.meter_point, interval=interval,
                side=side, quantity_kwh="0.500", limit_price_per_kwh=price,
                now=interval.gate_closure_at - timedelta(minutes=10),
            )  # fmt: skip
    target = intervals[-1].end + settlement_window() + timedelta(minutes=1)
    out = StringIO()
    call_command("advance_intervals", "--community", community.slug, "--now", target.isoformat(),
                 "--step", step, stdout=out)  # fmt: skip
    reported = re.search(r"in (\d+) step\(s\) of the clock", out.getvalue())
    assert reported is not None
    moments = int(reported.group(1))
    booked = []
    for interval in Interval.objects.filter(community=community).order_by("start"):
        amounts = sorted(
            LedgerEntry.objects.filter(interval=interval).values_list(
                "kind", "amount", "energy_kwh"
            )
        )
        booked.append((interval.state, amounts))
    return moments, booked


def test_a_longer_clock_step_replays_the_same_history_in_fewer_steps():
    """The same history replayed in steps of 15 minutes and of 2 hours books the same: every
    interval settled with the same ledger amounts, in a fifth of the clock's steps (31 and 6)."""
    quarter_hours, by_quarter_hour = _replayed_history("15m")
    two_hours, by_two_hours = _replayed_history("2h")
    assert by_two_hours == by_quarter_hour
    assert {state for state, _ in by_quarter_hour} == {IntervalState.SETTLED}
    assert all(amounts for _, amounts in by_quarter_hour)  # every interval traded
    assert two_hours <= quarter_hours / 5
    assert ledger_verify().ok


def test_advance_intervals_replays_only_its_shard(market):
    """Two processes with --shard 0/2 and 1/2 together do what one does: each community is
    advanced by exactly one of them (community id mod 2)."""
    community, interval = market
    other = community_create(name="Other", slug="other")
    other_interval = interval_at(other, START)
    shard = community.pk % 2
    moment = (START + timedelta(minutes=1)).isoformat()
    call_command("advance_intervals", "--now", moment, "--shard", f"{1 - shard}/2",
                 stdout=StringIO())  # fmt: skip
    interval.refresh_from_db()
    other_interval.refresh_from_db()
    assert interval.state == IntervalState.OPEN  # not this process's community
    moved = IntervalState.CONFIRMED if other.pk % 2 != shard else IntervalState.OPEN
    assert other_interval.state == moved
    call_command("advance_intervals", "--now", moment, "--shard", f"{shard}/2", stdout=StringIO())
    interval.refresh_from_db()
    other_interval.refresh_from_db()
    assert interval.state == other_interval.state == IntervalState.CONFIRMED


# --- Beat's tick at scale: only what is due --------------------------------------------------
def _communities(count):
    first = Community.objects.count()
    return [
        community_create(name=f"Tick {i}", slug=f"tick-{i}") for i in range(first, first + count)
    ]


def test_tick_opens_only_the_communities_whose_horizon_is_due():
    communities = _communities(3)
    assert pipeline_tick(now=START, dispatch=lambda step: None) == []
    # A minute on, the horizon's end has passed the last interval's end: one more each.
    pipeline_tick(now=START + timedelta(minutes=1), dispatch=lambda step: None)
    for community in communities:
        community.refresh_from_db()
        last_end = Interval.objects.filter(community=community).order_by("-end")[0].end
        assert last_end == START + timedelta(hours=24, minutes=15)
        assert community.horizon_due_at == last_end - timedelta(hours=24)
    count = Interval.objects.count()
    # Within the interval nothing is due: nothing opens, no community is visited.
    with mock.patch(
        "marketplace.services.intervals.intervals_open_horizons", wraps=intervals_open_horizons
    ) as opened:
        pipeline_tick(now=START + timedelta(minutes=2), dispatch=lambda step: None)
        assert opened.call_args.kwargs["communities"] == []
        # Past the next boundary every community opens one more interval, all in one call.
        pipeline_tick(now=START + timedelta(minutes=16), dispatch=lambda step: None)
        assert [c.pk for c in opened.call_args.kwargs["communities"]] == [c.pk for c in communities]
    assert Interval.objects.count() == count + 3


def test_the_boundary_tick_costs_the_same_statements_for_two_or_eight_communities():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def boundary_queries(count, minutes):
        _communities(count)
        pipeline_tick(now=START + timedelta(minutes=minutes), dispatch=lambda step: None)
        with CaptureQueriesContext(connection) as captured:
            # Every community is due at the next boundary and opens one interval.
            opened = intervals_open_all(now=START + timedelta(minutes=minutes + 15))
        return opened, len(captured)

    two = boundary_queries(2, 1)
    eight = boundary_queries(6, 16)  # the first two are due again with the six new ones
    assert two[0] == 2
    assert eight[0] == 8
    assert eight[1] == two[1]


def test_tick_queries_do_not_grow_with_communities_or_intervals():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def tick_queries(now):
        with CaptureQueriesContext(connection) as captured:
            pipeline_tick(now=now, dispatch=lambda step: None)
        return len(captured)

    _communities(2)
    pipeline_tick(now=START + timedelta(minutes=1), dispatch=lambda step: None)
    few = tick_queries(START + timedelta(minutes=2))
    _communities(6)
    pipeline_tick(now=START + timedelta(minutes=1), dispatch=lambda step: None)
    assert Interval.objects.count() >= 8 * 95
    assert tick_queries(START + timedelta(minutes=2)) == few


def test_a_longer_horizon_applies_within_one_interval():
    (community,) = _communities(1)
    pipeline_tick(now=START, dispatch=lambda step: None)
    market_rules_update(community=community, changed_by=None, opening_horizon_hours=48)
    pipeline_tick(now=START + timedelta(minutes=15), dispatch=lambda step: None)
    last_end = Interval.objects.filter(community=community).order_by("-end")[0].end
    assert last_end >= START + timedelta(hours=48)


@pytest.mark.parametrize(("shards", "suffixes"), [(1, {""}), (4, {".0", ".1", ".2", ".3"})])
def test_steps_go_to_their_communitys_queue_shard(settings, shards, suffixes):
    from config.celery import app

    base = app.conf.task_default_queue
    settings.PEERGRID_QUEUE_SHARDS = shards
    sent = []
    with mock.patch(
        "marketplace.tasks.interval_advance_task.apply_async",
        side_effect=lambda **kwargs: sent.append(kwargs),
    ):
        for community_id in range(1, 9):
            pipeline.dispatch_step(DueStep(100 + community_id, community_id, "cleared"))
    assert {call["queue"] for call in sent} == {base + suffix for suffix in suffixes}
    # A community's steps always land on the same shard: 1 mod 4 is shard 1.
    assert sent[0]["queue"] == pipeline.step_queue(1) == (base if shards == 1 else f"{base}.1")


def test_the_tick_and_each_following_step_send_a_community_to_its_own_shard(
    settings, market, django_capture_on_commit_callbacks
):
    """What lets several machines share the communities: beat's tick queues a community's step
    on its shard, and the worker that runs it queues the next step on the same shard."""
    from config.celery import app
    from marketplace.services.regions import RegionPeriod
    from marketplace.tasks import interval_advance_task

    community, interval = market
    base = app.conf.task_default_queue
    settings.PEERGRID_QUEUE_SHARDS = 4
    own = f"{base}.{community.pk % 4}"
    sent = []
    with mock.patch(
        "marketplace.tasks.interval_advance_task.apply_async",
        side_effect=lambda **kwargs: sent.append(kwargs),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            pipeline_tick(now=AFTER_GATE)
        assert [(c["args"], c["queue"]) for c in sent] == [((interval.pk, "gate_closed"), own)]
        for to_state in ("gate_closed", "cleared", "grid_checked"):
            with django_capture_on_commit_callbacks(execute=True):
                assert interval_advance_task.run(interval.pk, to_state)
    assert [(c["args"][1], c["queue"]) for c in sent] == [
        (to_state, own) for to_state in ("gate_closed", "cleared", "grid_checked", "confirmed")
    ]
    # A region's clearing goes to the region's shard.
    with mock.patch("marketplace.tasks.region_clear_task.apply_async") as region_sent:
        pipeline.dispatch_region(RegionPeriod(region_id=7, start=START, end=START))
    assert region_sent.call_args.kwargs["queue"] == f"{base}.3"


def test_a_settlement_waiting_for_readings_is_due_again_only_for_a_new_reading_or_the_window(
    market,
):
    community, interval = market
    for to_state in ("gate_closed", "cleared", "grid_checked", "confirmed"):
        assert interval_advance(interval_id=interval.pk, to_state=to_state, now=AFTER_GATE)
    end = interval.end

    def settlement_due(at):
        return [s.interval_id for s in intervals_due(now=at) if s.to_state == "settled"]

    assert settlement_due(end) == [interval.pk]
    # No readings yet, inside the window: not settled, and the tick leaves it alone from now on.
    assert not interval_advance(interval_id=interval.pk, to_state="settled", now=end)
    assert settlement_due(end + timedelta(minutes=1)) == []
    # A reading arrives: due again (and still waiting, for the other meter points' readings).
    meter_point = MeterPoint.objects.filter(membership__community=community).earliest("pk")
    MeterReading.objects.create(
        meter_point=meter_point, interval=interval, imported_kwh=Decimal("0.5"),
        exported_kwh=Decimal(0), source=ReadingSource.API,
    )  # fmt: skip
    assert settlement_due(end + timedelta(minutes=2)) == [interval.pk]
    assert not interval_advance(interval_id=interval.pk, to_state="settled", now=end)
    assert settlement_due(end + timedelta(minutes=3)) == []
    # The window passes: settled with estimates for what never came.
    after_window = end + settlement_window()
    assert settlement_due(after_window) == [interval.pk]
    assert interval_advance(interval_id=interval.pk, to_state="settled", now=after_window)


def test_advancing_stops_when_a_round_moves_nothing(market):
    _, interval = market
    for to_state in ("gate_closed", "cleared", "grid_checked", "confirmed"):
        assert interval_advance(interval_id=interval.pk, to_state=to_state, now=AFTER_GATE)
    # Neither the batched settlement nor the single step moves it (the batch hands it on).
    with (
        mock.patch.object(pipeline, "intervals_settle_many", return_value=([], set())) as batch,
        mock.patch.object(pipeline, "interval_advance", return_value=False) as advance,
    ):
        assert intervals_advance_due(now=interval.end + settlement_window()) == (0, [])
    assert batch.call_count == 1
    assert advance.call_count == 1  # one round, not max_rounds


# --- Many intervals' steps at once (the command's replay) -------------------------------------
def test_the_steps_of_a_tick_run_together(market):
    """Across communities, each step's due intervals are one transaction (gate closures,
    clearings, grid checks without a grid model, confirmations); only the grid check of a
    community with a grid model runs per interval; the result is the same."""
    _, interval = market
    other = community_create(name="Other", slug="other")
    other_interval = interval_at(other, START)
    with mock.patch.object(pipeline, "interval_advance", wraps=interval_advance) as advance:
        done, errors = intervals_advance_due(now=AFTER_GATE)
    assert errors == []
    assert done == 8  # four steps each
    assert [(c.kwargs["interval_id"], c.kwargs["to_state"]) for c in advance.call_args_list] == [
        (interval.pk, "grid_checked")
    ]
    for each in (interval, other_interval):
        each.refresh_from_db()
        assert each.state == IntervalState.CONFIRMED
        assert each.state_changed_at == AFTER_GATE
        assert set(each.timings) >= {"gate_closed", "cleared", "grid_checked", "confirmed"}
    trades = Trade.objects.filter(interval=interval)
    assert interval.timings["confirmed"]["trades"] == trades.count() > 0
    assert all(t.confirmed_kwh == t.quantity_kwh - t.curtailed_kwh for t in trades)
    assert other_interval.timings["confirmed"]["trades"] == 0


def test_batched_steps_keep_the_compare_and_set(market):
    _, interval = market
    # Before its gate: not closed. Closed twice: the second call closes nothing.
    assert pipeline.intervals_close_gates(interval_ids=[interval.pk], now=BEFORE_GATE) == []
    assert pipeline.intervals_close_gates(interval_ids=[interval.pk], now=AFTER_GATE) == [
        interval.pk
    ]
    before = _snapshot(interval.pk)
    assert pipeline.intervals_close_gates(interval_ids=[interval.pk], now=AFTER_GATE) == []
    # Not grid-checked yet: not confirmed.
    assert pipeline.intervals_confirm(interval_ids=[interval.pk], now=AFTER_GATE) == []
    assert _snapshot(interval.pk) == before


def test_settlements_waiting_for_readings_are_noted_together_and_settle_later(market):
    community, interval = market
    other = community_create(name="Other", slug="other")
    other_interval = interval_at(other, START)  # no meter point: nothing to wait for
    intervals_advance_due(now=AFTER_GATE)
    end = interval.end
    with mock.patch.object(pipeline, "intervals_settle", wraps=intervals_settle) as settle:
        intervals_advance_due(now=end)
    # The community with meter points waits (noted without running the settlement); the one
    # without settles at once.
    assert [c.kwargs["interval_ids"] for c in settle.call_args_list] == [[other_interval.pk]]
    interval.refresh_from_db()
    other_interval.refresh_from_db()
    assert (interval.state, interval.settlement_seen_reading) == (IntervalState.CONFIRMED, 0)
    assert other_interval.state == IntervalState.SETTLED
    assert intervals_due(now=end + timedelta(minutes=1)) == []
    # A reading arrives: the full check runs (still waiting for the others' readings).
    meter_point = MeterPoint.objects.filter(membership__community=community).earliest("pk")
    MeterReading.objects.create(
        meter_point=meter_point, interval=interval, imported_kwh=Decimal("0.5"),
        exported_kwh=Decimal(0), source=ReadingSource.API,
    )  # fmt: skip
    with mock.patch.object(pipeline, "intervals_settle", wraps=intervals_settle) as settle:
        intervals_advance_due(now=end + timedelta(minutes=2))
    assert [c.kwargs["interval_ids"] for c in settle.call_args_list] == [[interval.pk]]
    interval.refresh_from_db()
    assert interval.state == IntervalState.CONFIRMED
    assert interval.settlement_seen_reading > 0
    intervals_advance_due(now=end + settlement_window())
    interval.refresh_from_db()
    assert interval.state == IntervalState.SETTLED


def _books(community, homes, *, bid: bool):
    """An interval of ``community`` with the four orders of ``_book``, a bid from a fifth home
    on the first offer (``bid``: a bilateral or composite market), and one meter reading."""
    interval = interval_at(community, START)
    _book(homes[:4], interval)
    if bid:
        offer = Posting.objects.filter(interval=interval, side="sell").earliest("pk")
        bid_create(
            membership=homes[4].membership, meter_point=homes[4].meter_point, posting=offer,
            quantity_kwh="0.700", price_per_kwh="0.2200", now=BEFORE_GATE,
        )  # fmt: skip
    MeterReading.objects.create(
        meter_point=homes[2].meter_point, interval=interval, imported_kwh=Decimal("1.250"),
        exported_kwh=Decimal(0), source=ReadingSource.API,
    )  # fmt: skip
    return interval


def _booked(interval, homes):
    """Everything the pipeline wrote for ``interval``, with members named by their home's place
    (the same in two communities built alike) instead of their ids."""
    who: dict[int | None, int | None] = {home.membership.pk: n for n, home in enumerate(homes)}
    who[None] = None
    trades = sorted(
        (t.source, t.sequence, who[t.buyer_id], who[t.seller_id], t.quantity_kwh,
         t.price_per_kwh, t.seller_price_per_kwh, t.confirmed_kwh)
        for t in Trade.objects.filter(interval=interval)
    )  # fmt: skip
    postings = sorted(
        (who[p.membership_id], p.status, p.allocated_kwh)
        for p in Posting.objects.filter(interval=interval)
    )
    bids = sorted(
        (b.status, b.accepted_kwh) for b in Bid.objects.filter(posting__interval=interval)
    )
    entries = [
        (e.kind, e.amount, e.energy_kwh, e.price_per_kwh, e.memo, e.account.kind,
         who[e.account.membership_id])
        for e in LedgerEntry.objects.filter(interval=interval).select_related("account")
        .order_by("sequence")
    ]  # fmt: skip
    settlements = sorted(
        (who[s.membership_id], s.confirmed_bought_kwh, s.confirmed_sold_kwh, s.metered_import_kwh,
         s.metered_export_kwh, s.imbalance_kwh, s.estimated)
        for s in Settlement.objects.filter(interval=interval)
    )  # fmt: skip
    interval.refresh_from_db()
    steps = {
        step: {k: v for k, v in detail.items() if k not in ("seconds", "ledger_transaction")}
        for step, detail in interval.timings.items()
    }
    return interval.state, steps, trades, postings, bids, entries, settlements


@pytest.mark.parametrize(
    ("rules", "bid"),
    [
        ({}, False),
        ({"clearing_mechanism": "mid-market-rate"}, False),
        ({"market_structure": "composite"}, True),
        ({"market_structure": "bilateral"}, True),
    ],
)
def test_a_clock_step_for_many_communities_books_what_one_interval_at_a_time_does(rules, bid):
    """The batched steps (clearing, grid check without a grid model, settlement under one chain
    lock) write exactly what the steps one interval at a time write, and the chain verifies."""
    alone, alone_homes = community_with_homes(homes=5, network=None, **rules)
    together = [community_with_homes(homes=5, network=None, **rules) for _ in range(3)]
    alone_interval = _books(alone, alone_homes, bid=bid)
    intervals = [_books(c, homes, bid=bid) for c, homes in together]
    after_window = alone_interval.end + settlement_window()
    for to_state, now in (
        ("gate_closed", AFTER_GATE), ("cleared", AFTER_GATE), ("grid_checked", AFTER_GATE),
        ("confirmed", AFTER_GATE), ("settled", after_window),
    ):  # fmt: skip
        assert interval_advance(interval_id=alone_interval.pk, to_state=to_state, now=now)
    communities = [c for c, _ in together]
    with (
        mock.patch.object(pipeline, "interval_advance", wraps=interval_advance) as advance,
        mock.patch.object(pipeline, "intervals_due", wraps=intervals_due) as due,
    ):
        assert intervals_advance_due(now=AFTER_GATE, communities=communities) == (12, [])
        # From open to confirmed in one round, each batch handing its intervals to the next;
        # the second read of what is due finds nothing.
        assert due.call_count == 2
        assert intervals_advance_due(now=after_window, communities=communities) == (3, [])
    assert advance.call_count == 0  # every step ran batched
    expected = _booked(alone_interval, alone_homes)
    assert expected[0] == IntervalState.SETTLED
    assert expected[2]  # trades to compare
    assert expected[5]  # and ledger entries
    for interval, (_, homes) in zip(intervals, together, strict=True):
        assert _booked(interval, homes) == expected
    verification = ledger_verify()
    assert verification.ok, verification


def test_a_batched_settlement_that_fails_leaves_each_interval_to_settle_alone(market):
    """A failure inside the batch rolls all of it back; the steps then run one interval at a
    time, so the others still settle."""
    together = [community_with_homes(homes=5, network=None) for _ in range(2)]
    intervals = [_books(c, homes, bid=False) for c, homes in together]
    communities = [c for c, _ in together]
    intervals_advance_due(now=AFTER_GATE, communities=communities)
    after_window = intervals[0].end + settlement_window()
    with mock.patch.object(pipeline, "intervals_settle", side_effect=RuntimeError("boom")):
        assert intervals_advance_due(now=after_window, communities=communities) == (2, [])
    assert {i.state for i in Interval.objects.filter(pk__in=[i.pk for i in intervals])} == {
        IntervalState.SETTLED
    }
    assert ledger_verify().ok


def test_what_is_due_is_the_due_condition_for_every_state_and_community(market):
    """``intervals_due``'s hand-written statement selects what ``due_steps_condition`` does, in
    the same order, for one community and for all."""
    community, _ = market
    other = community_create(name="Other", slug="other")
    meter_point = MeterPoint.objects.filter(membership__community=community).earliest("pk")
    ids = []
    cases = [
        # (state, minutes after START, held reason, settlement_seen_reading, reading)
        (IntervalState.OPEN, 0, "", None, False),
        (IntervalState.OPEN, 60, "", None, False),
        (IntervalState.GATE_CLOSED, 15, "", None, False),
        (IntervalState.CLEARED, 30, "", None, False),
        (IntervalState.CLEARED, 45, "held", None, False),
        (IntervalState.GRID_CHECKED, -15, "", None, False),
        (IntervalState.CONFIRMED, -30, "", None, False),
        (IntervalState.CONFIRMED, -60, "", 0, True),
        (IntervalState.CONFIRMED, -45, "", 0, False),
        (IntervalState.CONFIRMED, -24 * 60, "", 0, False),
        (IntervalState.CONFIRMED, 120, "", None, False),
        (IntervalState.SETTLED, -75, "", None, False),
    ]
    for n, (state, minutes, held, seen, reading) in enumerate(cases):
        owner = community if n % 2 else other
        each = interval_at(owner, START + timedelta(minutes=minutes), state=state)
        Interval.objects.filter(pk=each.pk).update(held_reason=held, settlement_seen_reading=seen)
        if reading:
            assert owner == community
            MeterReading.objects.create(
                meter_point=meter_point, interval=each, imported_kwh=Decimal("0.5"),
                exported_kwh=Decimal(0), source=ReadingSource.API,
            )  # fmt: skip
        ids.append(each.pk)
    now = START + timedelta(minutes=10)

    def orm(**filters):
        return [
            (i.pk, i.community_id, pipeline.NEXT_STATE[i.state])
            for i in Interval.objects.filter(pipeline.due_steps_condition(now), **filters)
            .order_by("start", "pk")
        ]  # fmt: skip

    def due(**kwargs):
        steps = intervals_due(now=now, **kwargs)
        return [(s.interval_id, s.community_id, s.to_state) for s in steps]

    everything = orm()
    assert {pk for pk, _, _ in everything} & set(ids)  # some of each kind is due
    assert due() == everything
    assert due(community=community) == orm(community=community)
    assert due(community=other) == orm(community=other)
    assert due(communities=[other]) == orm(community=other)
    assert {state for _, _, state in everything} >= {
        "gate_closed", "cleared", "grid_checked", "confirmed", "settled"
    }  # fmt: skip


def test_an_interval_grid_checked_alone_goes_from_its_gate_to_confirmed_in_one_round(market):
    _, interval = market
    with mock.patch.object(pipeline, "intervals_due", wraps=pipeline.intervals_due) as due:
        done, errors = intervals_advance_due(now=AFTER_GATE)
    assert (done, errors) == (4, [])
    interval.refresh_from_db()
    assert interval.state == IntervalState.CONFIRMED
    # The round that moved it, and the one that finds nothing more is due.
    assert due.call_count == 2
    trades = Trade.objects.filter(interval=interval)
    assert interval.timings["confirmed"]["trades"] == trades.count() > 0
    assert all(t.confirmed_kwh == t.quantity_kwh - t.curtailed_kwh for t in trades)
