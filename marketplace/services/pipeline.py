"""The interval pipeline: open → gate closed → cleared → grid checked → confirmed → settled.

Every step is ``interval_advance(interval_id=..., to_state=...)``: one durable transaction that
locks the interval row, re-reads its state and does the step's work only if the interval is still
in the state the step starts from and the step is due. A step delivered twice, retried after a
crash or run by the command while a worker runs it too therefore changes nothing the second time:
the loser of the race finds the state already moved and returns ``False``. Work a step does is
part of the same transaction as the state change, so a crash mid-step rolls both back.

A failing step rolls back, then records the error on the interval (``last_error``,
``failed_attempts``, ``timings["failures"]``) in a transaction of its own, and re-raises so Celery
retries it with backoff; ``intervals_due`` holds a failing interval back for a growing delay so the
tick does not hammer it either. A failure belongs to one interval of one community: the tick
dispatches every (interval, step) as its own task, so nothing else waits for it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet
from django.utils import timezone

from config.sql import ModelSelect, table_name, update_rows
from marketplace.ledger.models import MeterReading
from marketplace.ledger.services.settlement import (
    awaiting_first_reading_condition,
    interval_settle,
    intervals_settle,
    settlement_window,
)
from marketplace.lock_objects import lock_interval, lock_intervals
from marketplace.models import Community, Interval, IntervalState, MarketRules, Trade
from marketplace.services.regions import RegionPeriod, region_periods_due, regions_clear_due
from notifications.events import Event, announce, announce_many

if TYPE_CHECKING:
    from marketplace.services.clearing import ClearingSummary

logger = logging.getLogger(__name__)

# The state each step moves to, keyed by the state it starts from.
NEXT_STATE: dict[str, str] = {
    IntervalState.OPEN: IntervalState.GATE_CLOSED,
    IntervalState.GATE_CLOSED: IntervalState.CLEARED,
    IntervalState.CLEARED: IntervalState.GRID_CHECKED,
    IntervalState.GRID_CHECKED: IntervalState.CONFIRMED,
    IntervalState.CONFIRMED: IntervalState.SETTLED,
}
PREVIOUS_STATE: dict[str, str] = {to: frm for frm, to in NEXT_STATE.items()}
# Steps that are due as soon as the previous one is done (no clock involved).
IMMEDIATE_STEPS = frozenset(
    {IntervalState.CLEARED, IntervalState.GRID_CHECKED, IntervalState.CONFIRMED}
)
# Settlement is tried from the interval's end on; the ledger's service decides whether the
# readings are in (or its settlement window has passed) and says "not yet" otherwise.
SETTLEMENT_DELAY = timedelta(0)
# A failing step waits 15 s, 30 s, 60 s, ... (at most an hour) before the tick tries it again.
RETRY_BASE = timedelta(seconds=15)
RETRY_MAX = timedelta(hours=1)
MAX_FAILURES_KEPT = 10


class StepNotDue(Exception):  # noqa: N818 - a signal, not an error
    """The step was asked for before its time (e.g. gate closure before ``gate_closure_at``)."""


@dataclass(frozen=True, slots=True)
class DueStep:
    """One step that ``pipeline_tick`` or ``advance_intervals`` should run now."""

    interval_id: int
    community_id: int
    to_state: str


# --- The steps ---------------------------------------------------------------------------------


def _step_due(interval: Interval, to_state: str, now: datetime) -> bool:
    if to_state == IntervalState.GATE_CLOSED:
        return now >= interval.gate_closure_at
    if to_state == IntervalState.SETTLED:
        return now >= interval.end + SETTLEMENT_DELAY
    return to_state in IMMEDIATE_STEPS


# A step's work returns details for ``timings``, or None for "not ready yet": then nothing is
# written and the state stays (settlement waiting for meter readings).
StepResult = dict[str, Any] | None


def _close_gate(interval: Interval, now: datetime) -> StepResult:
    # Postings and bids check the state under the interval's lock, so from here on none is taken.
    return {}


def _clear(interval: Interval, now: datetime) -> StepResult:
    from marketplace.services.clearing import interval_clear

    summary = interval_clear(interval=interval, now=now)
    announce(Event.INTERVAL_CLEARED, interval.pk)  # bids accepted automatically at the gate
    return _clear_details(summary)


def _clear_details(summary: ClearingSummary) -> dict[str, Any]:
    return {
        "mechanism": summary.mechanism,
        "postings": summary.postings,
        "excluded_postings": summary.excluded_postings,
        "excluded_bids": summary.excluded_bids,
        "trades": summary.bilateral_trades + summary.pool_trades + summary.grid_trades,
        "peer_kwh": str(summary.peer_kwh),
        "clearing_price": None if summary.clearing_price is None else str(summary.clearing_price),
        "grid_import_kwh": str(summary.grid_import_kwh),
        "grid_export_kwh": str(summary.grid_export_kwh),
    }


def _grid_check(interval: Interval, now: datetime) -> StepResult:
    from marketplace.services.grid_check import interval_grid_check

    # Each trade side's use of the network, for charges by use (fixed per network version), is
    # set by the check itself, with the curtailments.
    result = interval_grid_check(interval=interval, network_uses=True)
    if not result.feasible:
        # Never confirmed: the result stays for the manager, the interval waits for a retry.
        interval.held_reason = result.held_reason or "the grid check found no safe schedule"
        interval.save(update_fields=["held_reason"])
        logger.warning("interval %s held: %s", interval.pk, interval.held_reason)
        return None
    return {
        "power_flows": result.power_flows,
        "feasible": result.feasible,
        "curtailed_kwh": str(result.curtailed_kwh),
    }


def _confirm(interval: Interval, now: datetime) -> StepResult:
    # One UPDATE for every trade: what is delivered is what was agreed minus what the grid
    # check curtailed (whose reason stays on the trade).
    count = Trade.objects.filter(interval=interval).update(
        confirmed_kwh=F("quantity_kwh") - F("curtailed_kwh")
    )
    announce(Event.INTERVAL_CONFIRMED, interval.pk)  # members whose trades were curtailed
    return {"trades": count}


def _settle(interval: Interval, now: datetime) -> StepResult:
    result = interval_settle(interval=interval, now=now)
    if not result.settled:
        # Readings still awaited inside the settlement window. Note the newest reading seen, so
        # the interval is not due again until a newer one arrives or the window passes
        # (``due_steps_condition``): the tick does not retry a waiting settlement every time.
        newest = MeterReading.objects.filter(interval=interval).aggregate(pk=Max("pk"))["pk"]
        Interval.objects.filter(pk=interval.pk).update(settlement_seen_reading=newest or 0)
        return None
    announce(Event.INTERVAL_SETTLED, interval.pk)
    return {
        "ledger_transaction": result.transaction_id,
        "estimated_members": len(result.estimated_membership_ids),
    }


STEP_WORK: dict[str, Callable[[Interval, datetime], StepResult]] = {
    IntervalState.GATE_CLOSED: _close_gate,
    IntervalState.CLEARED: _clear,
    IntervalState.GRID_CHECKED: _grid_check,
    IntervalState.CONFIRMED: _confirm,
    IntervalState.SETTLED: _settle,
}


def _lock_interval(interval_id: int) -> Interval | None:
    # Through the shared helper, so the pipeline takes the interval lock the way posting and
    # bidding do (interval first), and the two can never deadlock.
    try:
        return lock_interval(interval_id)
    except Interval.DoesNotExist:
        return None


def interval_advance(
    *,
    interval_id: int,
    to_state: str,
    now: datetime | None = None,
    on_done: Callable[[Interval], None] | None = None,
) -> bool:
    """Run the step that moves the interval to ``to_state``; True if this call made the move.

    Compare-and-set: under the interval's row lock, the step runs only if the interval is in the
    state before ``to_state`` and the step is due at ``now``; otherwise it returns False having
    written nothing. ``on_done`` runs after the commit of a successful step (the task uses it to
    queue the next step at once). Errors are recorded on the interval, then re-raised.
    """
    if to_state not in PREVIOUS_STATE:
        raise ValueError(f"no pipeline step leads to {to_state!r}")
    now = now or timezone.now()
    expected = PREVIOUS_STATE[to_state]
    started = time.perf_counter()
    try:
        with transaction.atomic(durable=True):
            interval = _lock_interval(interval_id)
            if interval is None or interval.state != expected:
                return False
            if not _step_due(interval, to_state, now):
                return False
            details = STEP_WORK[to_state](interval, now)
            if details is None:
                return False
            seconds = time.perf_counter() - started
            timings = dict(interval.timings or {})
            timings[to_state] = {"at": now.isoformat(), "seconds": round(seconds, 4), **details}
            interval.timings = timings
            interval.state = to_state
            interval.state_changed_at = now
            interval.last_error = ""
            interval.failed_attempts = 0
            interval.save(
                update_fields=[
                    "state",
                    "state_changed_at",
                    "timings",
                    "last_error",
                    "failed_attempts",
                ]
            )
            if on_done is not None:
                transaction.on_commit(lambda: on_done(interval))
    except Exception as exc:
        _record_failure(interval_id=interval_id, to_state=to_state, error=exc, now=now)
        raise
    logger.info("interval %s: %s -> %s in %.3f s", interval_id, expected, to_state, seconds)
    return True


# --- The same steps for many intervals at once (the command's replay) --------------------------
# A clock step's worth of gate closures, clearings, grid checks (without a grid model),
# confirmations and settlements, across all communities, is one transaction per step of a fixed
# number of statements instead of a transaction (and a dozen statements) per interval; so is
# noting the settlements that still wait for their readings. Each keeps ``interval_advance``'s
# compare-and-set: the intervals are locked (by ascending id) and only those still in the
# step's starting state, with the step due, move.

_STEP_FIELDS = ["state", "state_changed_at", "timings", "last_error", "failed_attempts"]


def _locked_for_step(interval_ids: list[int], to_state: str, now: datetime) -> list[Interval]:
    expected = PREVIOUS_STATE[to_state]
    return [
        interval
        for interval in lock_intervals(interval_ids)
        if interval.state == expected and _step_due(interval, to_state, now)
    ]


def _moved_rows(
    intervals: list[Interval], to_state: str, now: datetime, seconds: float,
    details: dict[int, dict[str, Any]],
) -> list[tuple[Any, ...]]:  # fmt: skip
    rows = []
    for interval in intervals:
        timings = dict(interval.timings or {})
        timings[to_state] = {
            "at": now.isoformat(), "seconds": seconds, **details.get(interval.pk, {})
        }  # fmt: skip
        rows.append((interval.pk, to_state, now, timings, "", 0))
    return rows


def intervals_close_gates(*, interval_ids: list[int], now: datetime) -> list[int]:
    """Close the gates of these intervals that are open and past their gate closure, in one
    transaction; returns the ids closed. (``_close_gate``'s work is the state change itself.)"""
    if not interval_ids:
        return []
    started = time.perf_counter()
    with transaction.atomic(durable=True):
        closing = _locked_for_step(interval_ids, IntervalState.GATE_CLOSED, now)
        seconds = round((time.perf_counter() - started) / max(len(closing), 1), 4)
        rows = _moved_rows(closing, IntervalState.GATE_CLOSED, now, seconds, {})
        update_rows(Interval, _STEP_FIELDS, rows)
    return [interval.pk for interval in closing]


def intervals_confirm(*, interval_ids: list[int], now: datetime) -> list[int]:
    """Confirm these grid-checked intervals in one transaction, as ``_confirm`` does one: every
    trade's confirmed energy is its quantity minus what the grid check curtailed. Returns the
    ids confirmed."""
    if not interval_ids:
        return []
    started = time.perf_counter()
    with transaction.atomic(durable=True):
        confirming = _locked_for_step(interval_ids, IntervalState.CONFIRMED, now)
        ids = [interval.pk for interval in confirming]
        counts: dict[int, int] = {}
        if len(ids) > 1:
            counts = dict(
                Trade.objects.filter(interval_id__in=ids)
                .values("interval_id")
                .annotate(trades=Count("pk"))
                .values_list("interval_id", "trades")
            )
        # The intervals are locked, and every writer of a trade locks its interval first.
        updated = Trade.objects.filter(interval_id__in=ids).update(
            confirmed_kwh=F("quantity_kwh") - F("curtailed_kwh")
        )
        if len(ids) == 1:
            counts = {ids[0]: updated}  # one interval's trades are all the rows updated
        seconds = round((time.perf_counter() - started) / max(len(ids), 1), 4)
        details = {pk: {"trades": counts.get(pk, 0)} for pk in ids}
        update_rows(
            Interval, _STEP_FIELDS,
            _moved_rows(confirming, IntervalState.CONFIRMED, now, seconds, details),
        )  # fmt: skip
        announce_many(Event.INTERVAL_CONFIRMED, ids)
    return ids


def settlements_note_waiting(*, interval_ids: list[int], now: datetime) -> set[int]:
    """Of these confirmed intervals, the ones whose settlement surely waits for readings
    (``awaiting_first_reading_condition``): noted as ``_settle`` notes them (no reading seen
    yet), in one statement, without running the settlement. Returns their ids."""
    if not interval_ids:
        return set()
    waiting = Interval.objects.filter(
        awaiting_first_reading_condition(now),
        pk__in=interval_ids,
        state=IntervalState.CONFIRMED,
        settlement_seen_reading__isnull=True,
    )
    with transaction.atomic(durable=True):
        ids = set(waiting.select_for_update().values_list("pk", flat=True))
        Interval.objects.filter(pk__in=ids).update(settlement_seen_reading=0)
    return ids


def _with_rules(intervals: list[Interval]) -> list[Interval]:
    """The locked intervals with their rules read alongside (one query for all of them)."""
    rules = MarketRules.objects.in_bulk({interval.rules_id for interval in intervals})
    for interval in intervals:
        interval.rules = rules[interval.rules_id]
    return intervals


def _move(
    moving: list[Interval], to_state: str, now: datetime, started: float,
    details: dict[int, dict[str, Any]],
) -> None:  # fmt: skip
    seconds = round((time.perf_counter() - started) / max(len(moving), 1), 4)
    update_rows(Interval, _STEP_FIELDS, _moved_rows(moving, to_state, now, seconds, details))


def intervals_clear_many(*, interval_ids: list[int], now: datetime) -> list[int]:
    """Clear these gate-closed intervals in one transaction, as ``_clear`` clears one: their
    books read together, each cleared by its own rules, all trades written in one COPY
    (``clearing.intervals_clear``). Returns the ids cleared; one the clearing refuses (cleared
    before) is left for ``interval_advance``, which records its error."""
    from marketplace.services.clearing import intervals_clear

    if not interval_ids:
        return []
    started = time.perf_counter()
    with transaction.atomic(durable=True):
        locked = _with_rules(_locked_for_step(interval_ids, IntervalState.CLEARED, now))
        summaries, _refused = intervals_clear(intervals=locked, now=now)
        clearing = [interval for interval in locked if interval.pk in summaries]
        details = {pk: _clear_details(summary) for pk, summary in summaries.items()}
        _move(clearing, IntervalState.CLEARED, now, started, details)
        announce_many(Event.INTERVAL_CLEARED, [interval.pk for interval in clearing])
    return [interval.pk for interval in clearing]


def intervals_grid_check_many(*, interval_ids: list[int], now: datetime) -> list[int]:
    """Grid-check these cleared intervals of communities without a grid model in one
    transaction (``grid_check.intervals_grid_check_unmodelled``: nothing to check against, the
    trades go through uncurtailed, and without a model no trade has a network use to set).
    Returns the ids checked; those of communities with a grid model are left for
    ``interval_advance``, whose power flow reuses the network the process keeps parsed."""
    from marketplace.services.grid_check import intervals_grid_check_unmodelled

    if not interval_ids:
        return []
    # Those of communities with a grid model are not even locked here: they are left anyway.
    # (The check below is the one under the locks.)
    interval_ids = list(
        Interval.objects.filter(pk__in=interval_ids, community__grid_model__isnull=True)
        .order_by()
        .values_list("pk", flat=True)
    )
    if not interval_ids:
        return []
    started = time.perf_counter()
    with transaction.atomic(durable=True):
        locked = _locked_for_step(interval_ids, IntervalState.GRID_CHECKED, now)
        results = intervals_grid_check_unmodelled(intervals=locked)
        checked = [interval for interval in locked if interval.pk in results]
        details = {
            pk: {"power_flows": r.power_flows, "feasible": r.feasible,
                 "curtailed_kwh": str(r.curtailed_kwh)}
            for pk, r in results.items()
        }  # fmt: skip
        _move(checked, IntervalState.GRID_CHECKED, now, started, details)
    return [interval.pk for interval in checked]


def intervals_settle_many(*, interval_ids: list[int], now: datetime) -> tuple[list[int], set[int]]:
    """Settle these confirmed intervals in one transaction, as ``_settle`` settles one, every
    ledger posting under one chain lock (``settlement.intervals_settle``). Those still waiting
    for readings are noted as ``_settle`` notes them. Returns (ids settled, ids dealt with:
    settled or noted as waiting)."""
    if not interval_ids:
        return [], set()
    started = time.perf_counter()
    with transaction.atomic(durable=True):
        locked = _locked_for_step(interval_ids, IntervalState.SETTLED, now)
        results = intervals_settle(interval_ids=[interval.pk for interval in locked], now=now)
        settling = [i for i in locked if i.pk in results and results[i.pk].settled]
        waiting = [pk for pk, result in results.items() if not result.settled]
        if waiting:
            newest = dict(
                MeterReading.objects.filter(interval_id__in=waiting)
                .order_by()
                .values("interval_id")
                .annotate(newest=Max("pk"))
                .values_list("interval_id", "newest")
            )
            update_rows(
                Interval, ["settlement_seen_reading"], [(pk, newest.get(pk) or 0) for pk in waiting]
            )
        details = {
            pk: {"ledger_transaction": r.transaction_id,
                 "estimated_members": len(r.estimated_membership_ids)}
            for pk, r in results.items()
            if r.settled
        }  # fmt: skip
        _move(settling, IntervalState.SETTLED, now, started, details)
        announce_many(Event.INTERVAL_SETTLED, [interval.pk for interval in settling])
    return [interval.pk for interval in settling], {*details, *waiting}


BATCHED_STEPS: dict[str, Callable[..., list[int]]] = {
    IntervalState.GATE_CLOSED: intervals_close_gates,
    IntervalState.CLEARED: intervals_clear_many,
    IntervalState.GRID_CHECKED: intervals_grid_check_many,
    IntervalState.CONFIRMED: intervals_confirm,
}


def _record_failure(
    *, interval_id: int, to_state: str, error: BaseException, now: datetime
) -> None:
    message = f"{to_state}: {type(error).__name__}: {error}"[:2000]
    logger.warning("interval %s: step to %s failed: %s", interval_id, to_state, message)
    try:
        with transaction.atomic():
            interval = _lock_interval(interval_id)
            if interval is None:
                return
            timings = dict(interval.timings or {})
            failures = list(timings.get("failures", []))[-(MAX_FAILURES_KEPT - 1) :]
            failures.append({"step": to_state, "at": now.isoformat(), "error": message})
            timings["failures"] = failures
            timings["last_failure_at"] = now.isoformat()
            interval.timings = timings
            interval.last_error = message
            interval.failed_attempts += 1
            interval.save(update_fields=["timings", "last_error", "failed_attempts"])
    except Exception:
        # The step's own error is what matters; a second one (e.g. the database is gone) must not
        # hide it.
        logger.exception("interval %s: could not record the failure", interval_id)


def interval_retry(*, interval: Interval, now: datetime | None = None) -> bool:
    """The manager's retry: release a held interval and run its next step now.

    True if the step moved the interval on; a step that holds it again sets a new reason.
    """
    to_state = NEXT_STATE.get(interval.state)
    if to_state is None:
        return False
    Interval.objects.filter(pk=interval.pk).update(held_reason="")
    return interval_advance(interval_id=interval.pk, to_state=to_state, now=now)


def retry_delay(failed_attempts: int) -> timedelta:
    """How long the tick leaves an interval alone after its ``failed_attempts``-th failure."""
    if failed_attempts <= 0:
        return timedelta(0)
    return min(RETRY_BASE * 2 ** min(failed_attempts - 1, 16), RETRY_MAX)


def _in_backoff(interval: Interval, now: datetime) -> bool:
    if interval.failed_attempts <= 0:
        return False
    at = (interval.timings or {}).get("last_failure_at")
    if not at:
        return False
    return now < datetime.fromisoformat(at) + retry_delay(interval.failed_attempts)


def due_steps_condition(now: datetime) -> Q:
    """Intervals whose next step is due at ``now`` (before backoff), as one indexed condition.

    Served by the (state, gate_closure_at) index: open intervals past their gate, intervals
    between the immediate steps, confirmed ones past their end. Settled history and the open
    horizon ahead are never read, so the cost follows the steps that are due. A confirmed
    interval whose settlement found readings missing is due again only when a newer reading of
    it arrives or its settlement window has passed.
    """
    newer_reading = MeterReading.objects.filter(
        interval=OuterRef("pk"), pk__gt=OuterRef("settlement_seen_reading")
    )
    settlement_due = Q(state=IntervalState.CONFIRMED, end__lte=now - SETTLEMENT_DELAY) & (
        Q(settlement_seen_reading__isnull=True)
        | Q(end__lte=now - settlement_window())
        | Q(Exists(newer_reading))
    )
    # A held interval waits for the manager (interval_retry), not for the tick.
    return (
        Q(state=IntervalState.OPEN, gate_closure_at__lte=now)
        | Q(state__in=[PREVIOUS_STATE[s] for s in IMMEDIATE_STEPS])
        | settlement_due
    ) & Q(held_reason="")


def intervals_due(
    *,
    now: datetime,
    community: Community | None = None,
    communities: Iterable[Community] | None = None,
) -> list[DueStep]:
    """Every interval whose next step is due at ``now``, oldest first, one step per interval."""
    if communities is None:
        rows = _due_rows(now, None if community is None else community.pk)
    else:
        queryset = Interval.objects.filter(due_steps_condition(now))
        if community is not None:
            queryset = queryset.filter(community=community)
        queryset = queryset.filter(community__in=[c.pk for c in communities])
        rows = list(
            queryset.order_by("start", "pk").only(
                "pk", "community_id", "state", "timings", "failed_attempts"
            )
        )
    due: list[DueStep] = []
    for interval in rows:
        if _in_backoff(interval, now):
            continue
        due.append(DueStep(interval.pk, interval.community_id, NEXT_STATE[interval.state]))
    return due


def _due_rows(now: datetime, community_id: int | None) -> list[Interval]:
    """``due_steps_condition`` as one hand-written statement (see ``_due_select``)."""
    at = connection.ops.adapt_datetimefield_value
    params: list[Any] = [
        IntervalState.OPEN,
        at(now),
        *sorted(PREVIOUS_STATE[s] for s in IMMEDIATE_STEPS),
        IntervalState.CONFIRMED,
        at(now - SETTLEMENT_DELAY),
        at(now - settlement_window()),
        "",
    ]
    if community_id is not None:
        params.append(community_id)
    select = _due_select(community_id is not None)
    with connection.cursor() as cursor:
        cursor.execute(select.sql, params)
        return [select.build(row)[0] for row in cursor.fetchall()]


@functools.cache
def _due_select(by_community: bool) -> ModelSelect:
    """``due_steps_condition`` over the intervals (of one community), oldest first.

    Hand-written, with the condition's every value a parameter: the replay asks for what is due
    several times per interval, and the ORM's compilation of the condition (an ``Exists`` over
    the readings) cost more CPU than the database's work. ``test_pipeline`` checks it against
    the ORM's condition.
    """
    q = connection.ops.quote_name
    end, start = q("end"), q("start")
    immediate = ", ".join(["%s"] * len(IMMEDIATE_STEPS))
    community = " AND i.community_id = %s" if by_community else ""
    return ModelSelect(
        [(Interval, "i", ("id", "community_id", "state", "timings", "failed_attempts"))],
        f"FROM {table_name(Interval)} i"  # noqa: S608 - names only; values are parameters
        f" WHERE ((i.state = %s AND i.gate_closure_at <= %s) OR i.state IN ({immediate})"
        f" OR (i.state = %s AND i.{end} <= %s AND (i.settlement_seen_reading IS NULL"
        f" OR i.{end} <= %s OR EXISTS (SELECT 1 FROM {table_name(MeterReading)} r"
        " WHERE r.interval_id = i.id AND r.id > i.settlement_seen_reading))))"
        f" AND i.held_reason = %s{community} ORDER BY i.{start}, i.id",
    )


def communities_horizon_due(now: datetime) -> QuerySet[Community]:
    """Communities whose rolling horizon needs an interval opened at ``now``: served by the
    ``horizon_due_at`` index, so between boundaries it reads none of the others."""
    return (
        Community.objects.filter(Q(horizon_due_at__isnull=True) | Q(horizon_due_at__lte=now))
        .order_by("pk")
        .only("pk")
    )


def intervals_open_all(*, now: datetime, communities: Iterable[Community] | None = None) -> int:
    """Open the rolling horizon of every community that is due (of ``communities``, or all).

    A community is due once per interval length (``Community.horizon_due_at``), so a tick visits
    a few communities, not all of them; at a boundary, when all are due, they open together in a
    fixed number of statements.
    """
    from marketplace.services.intervals import intervals_open_horizons

    queryset = communities_horizon_due(now)
    if communities is not None:
        queryset = queryset.filter(pk__in=[c.pk for c in communities])
    return intervals_open_horizons(communities=list(queryset), now=now)


def pipeline_tick(
    *, now: datetime | None = None, dispatch: Callable[[DueStep], None] | None = None
) -> list[DueStep]:
    """What beat runs every few seconds: open horizons, then queue every due step as a task.

    Each (interval, step) becomes its own task, queued after this transaction commits, so one
    community's slow or failing step never holds up another's. A step queued twice (this tick
    and the last, or after a worker restart) is harmless: the second run finds the state moved.
    """
    now = now or timezone.now()
    intervals_open_all(now=now)
    due = intervals_due(now=now)
    periods = region_periods_due(now=now)
    if dispatch is None:
        dispatch = dispatch_step
    with transaction.atomic():
        # Regions first: a period due for its region clears before its intervals settle.
        for period in periods:
            transaction.on_commit(lambda period=period: dispatch_region(period))  # type: ignore[misc]
        for step in due:
            transaction.on_commit(lambda step=step: dispatch(step))  # type: ignore[misc]
    return due


def step_queue(community_id: int) -> str:
    """The Celery queue of a community's pipeline steps.

    With ``PEERGRID_QUEUE_SHARDS`` = N > 1, community ``c`` goes to ``<queue>.<c mod N>``, so
    workers on several machines can each consume some shards: every step of a community lands on
    the same shard, whose workers keep that community's network parsed. With 1 (the default)
    everything uses the one queue.
    """
    from config.celery import app

    base = str(app.conf.task_default_queue)
    shards = int(getattr(settings, "PEERGRID_QUEUE_SHARDS", 1))
    return base if shards <= 1 else f"{base}.{community_id % shards}"


def dispatch_step(step: DueStep) -> None:
    """Queue the Celery task for one step on its community's queue (imported late: tasks
    import this module)."""
    from marketplace.tasks import interval_advance_task

    interval_advance_task.apply_async(
        args=(step.interval_id, step.to_state),
        queue=step_queue(step.community_id),
        # The next tick queues the step again anyway; an old copy that sat in a queue while the
        # workers were down need not run.
        expires=TASK_EXPIRES_SECONDS,
    )


TASK_EXPIRES_SECONDS = 300


def dispatch_region(period: RegionPeriod) -> None:
    """Queue the Celery task that clears one region period (on the region's shard)."""
    from marketplace.tasks import region_clear_task

    region_clear_task.apply_async(
        args=(period.region_id, period.start.isoformat(), period.end.isoformat()),
        queue=step_queue(period.region_id),
        expires=TASK_EXPIRES_SECONDS,
    )


def next_step_if_due(interval: Interval, now: datetime | None = None) -> DueStep | None:
    """The step after the one just done, if it can run at once (used to chain steps)."""
    to_state = NEXT_STATE.get(interval.state)
    if to_state is None or not _step_due(interval, to_state, now or timezone.now()):
        return None
    return DueStep(interval.pk, interval.community_id, to_state)


def intervals_advance_due(
    *,
    now: datetime,
    community: Community | None = None,
    communities: Iterable[Community] | None = None,
    max_rounds: int = 10,
) -> tuple[int, list[str]]:
    """Run every step due at ``now`` synchronously (the command and the tests).

    Each step due runs for all its intervals at once (see above: gate closures, clearings,
    grid checks of communities without a grid model, confirmations, settlements with their
    ledger postings under one chain lock); what a batch leaves (a grid check with a network,
    a clearing refused) or a batch that fails runs one interval at a time, where a failure is
    that interval's own. Returns (steps done, errors). A failing interval is recorded and
    skipped; the others go on.
    """
    done = 0
    errors: list[str] = []
    failed: set[int] = set()
    for _ in range(max_rounds):
        # Regions first, as the tick queues them (the region periods due now).
        try:
            done += regions_clear_due(now=now)
        except Exception as exc:
            errors.append(f"regions: {exc}")
        due = [
            s
            for s in intervals_due(now=now, community=community, communities=communities)
            if s.interval_id not in failed
        ]
        if not due:
            break
        moved = 0
        single: list[DueStep] = []
        # What one batch moved is due for the next immediate step at once, so it goes on in
        # this round (gate closed -> cleared -> grid checked -> confirmed) instead of waiting
        # for another read of what is due. Settlement is not chained: it waits for the
        # interval's end and, in the next round, for the region periods cleared before it.
        # What a batch moved on and the next batch leaves (a grid check with a network) runs
        # one at a time below, in this round too.
        moved_on: list[int] = []
        community_of = {s.interval_id: s.community_id for s in due}
        for to_state in (*BATCHED_STEPS, IntervalState.SETTLED):
            ids = [s.interval_id for s in due if s.to_state == to_state]
            chained = moved_on if to_state in IMMEDIATE_STEPS else []
            ids += chained
            moved_on = []
            try:
                if to_state == IntervalState.SETTLED:
                    handled = settlements_note_waiting(interval_ids=ids, now=now)
                    settled, noted = intervals_settle_many(
                        interval_ids=[pk for pk in ids if pk not in handled], now=now
                    )
                    moved += len(settled)
                    handled |= noted
                else:
                    moved_on = BATCHED_STEPS[to_state](interval_ids=ids, now=now)
                    handled = set(moved_on)
                    moved += len(handled)
            except Exception:
                # One interval's step one at a time below, where its failure is its own.
                logger.exception("steps to %s for %s intervals at once failed", to_state, len(ids))
                handled = set()
            single += [s for s in due if s.to_state == to_state and s.interval_id not in handled]
            single += [
                DueStep(pk, community_of[pk], to_state) for pk in chained if pk not in handled
            ]
        position = {s.interval_id: i for i, s in enumerate(due)}
        checked: list[int] = []
        for step in sorted(single, key=lambda step: position[step.interval_id]):
            try:
                if interval_advance(interval_id=step.interval_id, to_state=step.to_state, now=now):
                    moved += 1
                    if step.to_state == IntervalState.GRID_CHECKED:
                        checked.append(step.interval_id)
            except Exception as exc:
                failed.add(step.interval_id)
                errors.append(f"interval {step.interval_id} -> {step.to_state}: {exc}")
        if checked:
            # Confirmed at once, as the batch's grid checks are above, instead of a round later.
            try:
                moved += len(intervals_confirm(interval_ids=checked, now=now))
            except Exception:
                # The next round confirms them one at a time, where a failure is its own.
                logger.exception("confirming %s grid-checked intervals failed", len(checked))
        done += moved
        if not moved:
            break  # what is still due at ``now`` refused at ``now``: another round changes nothing
    return done, errors
