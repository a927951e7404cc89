"""Opening a community's delivery intervals on a rolling horizon, and whether one takes orders.

Intervals are aligned to their length in UTC (a 15-minute interval starts at :00, :15, :30 or
:45 UTC), so nothing here counts intervals per local day: a day with a daylight-saving change
simply has more or fewer of them in local time. Each interval keeps the rules version it opened
under.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Max

from marketplace.models import Community, Interval, IntervalState
from marketplace.services.rules import current_rules

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

    Uses the community's current rules. Idempotent: intervals already there are kept as they are
    (unique ``(community, start)``; inserts ignore conflicts, so two beats racing are harmless).
    Intervals whose gate would already be closed are not opened: nobody could ever trade in them.

    Records when the community is next due (``Community.horizon_due_at``), so the tick need not
    look at it before then; a change of the horizon in the rules applies from that moment, at
    most one interval later.

    When the interval length was changed (say 15 to 60 minutes), the intervals already open end
    on a boundary of the old grid; the gap up to the next boundary of the new grid is filled with
    intervals of the old length under the new rules, so there is never a stretch without a market.
    """
    rules = current_rules(community)
    length = timedelta(minutes=rules.interval_minutes)
    lead = timedelta(minutes=rules.gate_closure_lead_minutes)
    horizon_end = now + timedelta(hours=rules.opening_horizon_hours)
    last = Interval.objects.filter(community=community).order_by("-end").first()
    if last is not None and last.end > now:
        cursor = last.end
        old_length = last.end - last.start
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
                community=community,
                rules=rules,
                start=start,
                end=end,
                gate_closure_at=start - lead,
                state=IntervalState.OPEN,
                state_changed_at=now,
            )
        )
    # Nothing more to open until `now + horizon` passes the last interval's end.
    last_end = new[-1].end if new else (last.end if last is not None else None)
    Community.objects.filter(pk=community.pk).update(
        horizon_due_at=last_end - (horizon_end - now) if last_end is not None else now + length
    )
    if not new:
        return 0
    starts = [interval.start for interval in new]
    before = Interval.objects.filter(community=community, start__in=starts).count()
    Interval.objects.bulk_create(new, ignore_conflicts=True)
    after = Interval.objects.filter(community=community, start__in=starts).count()
    return after - before


def interval_is_open_for_orders(interval: Interval, now: datetime) -> bool:
    """Postings and bids are taken while the interval is open and its gate has not closed."""
    return interval.state == IntervalState.OPEN and now < interval.gate_closure_at
