"""Opening a community's delivery intervals on a rolling horizon, and whether one takes orders.

Intervals are aligned to their length in UTC (a 15-minute interval starts at :00, :15, :30 or
:45 UTC), so nothing here counts intervals per local day: a day with a daylight-saving change
simply has more or fewer of them in local time. Each interval keeps the rules version it opened
under.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Max, OuterRef, Subquery

from marketplace.models import Community, Interval, IntervalState, MarketRules

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def align_up(moment: datetime, minutes: int) -> datetime:
    """The first boundary of a ``minutes``-long interval grid (in UTC) at or after ``moment``."""
    step = timedelta(minutes=minutes)
    elapsed = moment.astimezone(UTC) - _EPOCH
    whole = elapsed // step
    boundary = _EPOCH + whole * step
    return boundary if boundary == moment else boundary + step


def next_unopened_start(*, community: Community, now: datetime, interval_minutes: int) -> datetime:
    """Where the next interval opened for ``community`` would start."""
    latest_end = Interval.objects.filter(community=community).aggregate(m=Max("end"))["m"]
    if latest_end is not None and latest_end > now:
        return latest_end
    return align_up(now, interval_minutes)


@transaction.atomic
def intervals_open_horizon(*, community: Community, now: datetime) -> int:
    """Open every interval from ``now`` up to ``now + opening horizon``; return how many opened.

    ``intervals_open_horizons`` for one community.
    """
    return intervals_open_horizons(communities=[community], now=now)


@transaction.atomic
def intervals_open_horizons(*, communities: Sequence[Community], now: datetime) -> int:
    """Open each community's intervals from ``now`` up to ``now + its opening horizon``.

    Returns how many opened. Uses each community's current rules. Idempotent: intervals already
    there are kept as they are (unique ``(community, start)``; inserts ignore conflicts, so two
    beats racing are harmless). Intervals whose gate would already be closed are not opened:
    nobody could ever trade in them.

    Records when each community is next due (``Community.horizon_due_at``), so the tick need not
    look at it before then; a change of the horizon in the rules applies from that moment, at
    most one interval later.

    When the interval length was changed (say 15 to 60 minutes), the intervals already open end
    on a boundary of the old grid; the gap up to the next boundary of the new grid is filled with
    intervals of the old length under the new rules, so there is never a stretch without a market.

    A fixed number of statements whatever the number of communities: at an interval boundary
    every community of the platform is due at once, and the tick must not pay per community.
    """
    ids = [community.pk for community in communities]
    if not ids:
        return 0
    rules_of: dict[int, MarketRules] = {}
    for version in MarketRules.objects.filter(community_id__in=ids).order_by("created_at", "pk"):
        rules_of[version.community_id] = version  # the newest wins, as in ``current_rules``
    # Intervals of a community never overlap, so the latest start is the latest end too (and
    # the (community, start) index serves it).
    latest = Interval.objects.filter(community=OuterRef("pk")).order_by("-start")
    last_of = {
        pk: (start, end)
        for pk, start, end in Community.objects.filter(pk__in=ids)
        .annotate(
            last_start=Subquery(latest.values("start")[:1]),
            last_end=Subquery(latest.values("end")[:1]),
        )
        .values_list("pk", "last_start", "last_end")
        if end is not None
    }
    new: list[Interval] = []
    due_at: dict[int, datetime] = {}
    for community_id in ids:
        rules = rules_of.get(community_id)
        if rules is None:
            # Every community gets default rules when it is created; one without cannot open
            # intervals, and is looked at again an interval later rather than on every tick.
            logger.warning("community %s has no market rules; no intervals opened", community_id)
            due_at[community_id] = now + timedelta(minutes=15)
            continue
        last = last_of.get(community_id)
        opened = _horizon(rules, last, now)
        new += opened
        length = timedelta(minutes=rules.interval_minutes)
        horizon = timedelta(hours=rules.opening_horizon_hours)
        last_end = opened[-1].end if opened else (last[1] if last is not None else None)
        # Nothing more to open until `now + horizon` passes the last interval's end.
        due_at[community_id] = last_end - horizon if last_end is not None else now + length
    _set_horizon_due(due_at)
    if not new:
        return 0
    earliest = min(interval.start for interval in new)
    opened_before = Interval.objects.filter(community_id__in=ids, start__gte=earliest).count()
    Interval.objects.bulk_create(new, ignore_conflicts=True, batch_size=2000)
    return Interval.objects.filter(community_id__in=ids, start__gte=earliest).count() - (
        opened_before
    )


def _horizon(
    rules: MarketRules, last: tuple[datetime, datetime] | None, now: datetime
) -> list[Interval]:
    """The intervals to open for one community whose last interval is ``last`` (start, end)."""
    length = timedelta(minutes=rules.interval_minutes)
    lead = timedelta(minutes=rules.gate_closure_lead_minutes)
    horizon_end = now + timedelta(hours=rules.opening_horizon_hours)
    if last is not None and last[1] > now:
        cursor = last[1]
        old_length = last[1] - last[0]
    else:
        cursor = align_up(now, rules.interval_minutes)
        old_length = length
    new: list[Interval] = []
    while cursor < horizon_end:
        aligned = align_up(cursor, rules.interval_minutes)
        # Off the new grid only right after a length change: step on the old grid until aligned.
        step = length if aligned == cursor else min(old_length, aligned - cursor)
        start, end = cursor, cursor + step
        cursor = end
        if start - lead <= now:
            continue
        new.append(
            Interval(
                community_id=rules.community_id,
                rules=rules,
                start=start,
                end=end,
                gate_closure_at=start - lead,
                state=IntervalState.OPEN,
                state_changed_at=now,
            )
        )
    return new


def _set_horizon_due(due_at: dict[int, datetime]) -> None:
    """Each community's next ``horizon_due_at``, one statement per thousand communities."""
    rows = [Community(pk=pk, horizon_due_at=moment) for pk, moment in due_at.items()]
    Community.objects.bulk_update(rows, ["horizon_due_at"], batch_size=1000)


def interval_is_open_for_orders(interval: Interval, now: datetime) -> bool:
    """Postings and bids are taken while the interval is open and its gate has not closed."""
    return interval.state == IntervalState.OPEN and now < interval.gate_closure_at
