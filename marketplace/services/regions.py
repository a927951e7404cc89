"""A region's market: its communities' residuals cleared against each other, once per period.

When a region clears a period (``region_interval_clear``):

* It waits until every community of the region with an interval of that start and end has
  confirmed it (the grid check is done, so the residual is final), has it held by the grid
  check, or until delivery begins (the interval's start), whichever comes first. Then it clears
  with the communities that are confirmed; a held interval, one not yet confirmed at the start
  and one already settled are left out (their residual goes to the outside grid as before) and
  recorded with the reason (``RegionPart``).
* A community's residual is its confirmed trades with the outside grid (``source=grid``); its
  manager offers the net surplus or requests the net deficit at the region's tariff positions
  (``marketplace.clearing.region``), with the time its interval was confirmed as the order's
  time priority. The region's mechanism clears them.
* The members' schedule does not change: an exchange with another community happens at the
  community's connection point to the outside grid (the feeder head), where the grid check
  already placed the residual. Each community's grid check therefore covers its side of the
  region's trades as it stands.

Money moves when each community settles its interval (``marketplace.ledger.services.region``).

A compare-and-set in one durable transaction: the region's row is locked, then the period's
intervals; a period cleared before returns None (and the unique constraint on the region
interval is the second guard), so the Celery step may run twice, late or after a crash.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from config.errors import ApplicationError, ErrorCode
from config.sql import ModelSelect, table_name
from marketplace.clearing.region import Residual, region_clear
from marketplace.lock_objects import lock_region, lock_region_period_intervals
from marketplace.models import (
    Community,
    Interval,
    IntervalState,
    Region,
    RegionInterval,
    RegionPart,
    RegionResidual,
    RegionTrade,
    Trade,
    TradeSource,
)
from marketplace.services.clearing import order_key

ZERO = Decimal("0")


@dataclass(frozen=True, slots=True)
class RegionPeriod:
    """One period a region should clear now."""

    region_id: int
    start: datetime
    end: datetime


@transaction.atomic
def region_communities_set(*, region: Region, communities: Iterable[Community]) -> Region:
    """Make ``communities`` the region's communities; the others it held leave it.

    A community belongs to at most one region: one already in another region is refused
    (``conflict``) and nothing changes. Periods the region cleared keep their results.
    """
    wanted = {c.pk for c in communities}
    locked = list(
        Community.objects.filter(Q(pk__in=wanted) | Q(region=region))
        .order_by("pk")
        .select_for_update()
    )
    taken = [c for c in locked if c.pk in wanted and c.region_id not in (None, region.pk)]
    if taken:
        names = ", ".join(sorted(c.name for c in taken))
        raise ApplicationError(
            ErrorCode.CONFLICT,
            f"A community belongs to at most one region; already in another: {names}.",
            field="communities",
        )
    Community.objects.filter(region=region).exclude(pk__in=wanted).update(region=None)
    Community.objects.filter(pk__in=wanted).update(region=region)
    return region


def _order_id(community_id: int) -> str:
    # Padded like the communities' own books, so exact ties break by community in id order.
    return order_key("c", community_id)


def _ready(intervals: list[tuple[str, str]], start: datetime, now: datetime) -> bool:
    """Every interval (state, held reason) is confirmed, settled or held, or delivery began."""
    if now >= start:
        return True
    return all(
        state in (IntervalState.CONFIRMED, IntervalState.SETTLED) or held
        for state, held in intervals
    )


def region_periods_due(*, now: datetime, region: Region | None = None) -> list[RegionPeriod]:
    """Periods some community of a region has confirmed that the region has not yet cleared
    and may clear at ``now``, oldest first."""
    periods = sorted(
        _confirmed_periods(None if region is None else region.pk), key=lambda p: (p[1], p[0])
    )
    if not periods:
        return []
    starts = {start for _, start, _ in periods}
    states: dict[tuple[int, datetime, datetime], list[tuple[str, str]]] = defaultdict(list)
    for region_id, start, end, state, held in Interval.objects.filter(
        community__region_id__in={p[0] for p in periods}, start__in=starts
    ).values_list("community__region_id", "start", "end", "state", "held_reason"):
        states[(region_id, start, end)].append((state, held))
    return [
        RegionPeriod(region_id, start, end)
        for region_id, start, end in periods
        if _ready(states[(region_id, start, end)], start, now)
    ]


def _confirmed_periods(region_id: int | None) -> set[tuple[int, datetime, datetime]]:
    """(region, start, end) of every interval confirmed in a region whose period the region
    has not cleared: one hand-written statement (``_confirmed_select``)."""
    select = _confirmed_select(region_id is not None)
    params: list[Any] = [IntervalState.CONFIRMED]
    if region_id is not None:
        params.append(region_id)
    with connection.cursor() as cursor:
        cursor.execute(select.sql, params)
        rows = cursor.fetchall()
    periods = set()
    for row in rows:
        interval, community = select.build(row)
        periods.add((community.region_id, interval.start, interval.end))
    return periods


@functools.cache
def _confirmed_select(by_region: bool) -> ModelSelect:
    """The confirmed intervals of communities in a region (that region) with no region
    interval of their period yet. Hand-written: the pipeline asks before every round of steps,
    and the ORM's compilation of the ``NOT EXISTS`` cost more CPU than the database's work;
    ``test_regions`` checks it against the ORM's query."""
    q = connection.ops.quote_name
    end, start = q("end"), q("start")
    region = " AND c.region_id = %s" if by_region else ""
    return ModelSelect(
        [(Interval, "i", ("id", "start", "end")), (Community, "c", ("id", "region_id"))],
        f"FROM {table_name(Interval)} i"  # noqa: S608 - names only; values are parameters
        f" JOIN {table_name(Community)} c ON c.id = i.community_id"
        f" WHERE i.state = %s AND c.region_id IS NOT NULL{region}"
        f" AND NOT EXISTS (SELECT 1 FROM {table_name(RegionInterval)} ri"
        f" WHERE ri.region_id = c.region_id AND ri.{start} = i.{start} AND ri.{end} = i.{end})",
    )


def _part(interval: Interval) -> str | None:
    """Why the interval is left out of its region's clearing; None if it takes part."""
    if interval.state == IntervalState.CONFIRMED:
        return None
    if interval.state == IntervalState.SETTLED:
        return RegionPart.SETTLED
    return RegionPart.HELD if interval.held_reason else RegionPart.LATE


def _grid_energy(interval_ids: list[int]) -> dict[int, tuple[Decimal, Decimal]]:
    """Interval id -> (confirmed kWh bought from, sold to the outside grid)."""
    energy: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    # Summed here: SQLite would add the decimals as floats.
    for interval_id, buyer_id, kwh in Trade.objects.filter(
        interval_id__in=interval_ids, source=TradeSource.GRID, confirmed_kwh__gt=0
    ).values_list("interval_id", "buyer_id", "confirmed_kwh"):
        energy[interval_id][0 if buyer_id is not None else 1] += kwh
    return {pk: (imp, exp) for pk, (imp, exp) in energy.items()}


def region_interval_clear(
    *, region_id: int, start: datetime, end: datetime, now: datetime | None = None
) -> RegionInterval | None:
    """Clear the region's market for one period (module docstring).

    Returns the new region interval, or None when it was cleared before or is not due yet
    (nothing is written then).
    """
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        region = lock_region(region_id)
        if RegionInterval.objects.filter(region=region, start=start, end=end).exists():
            return None
        intervals = lock_region_period_intervals(region.pk, start, end)
        if not intervals or not _ready([(i.state, i.held_reason) for i in intervals], start, now):
            return None
        taking_part = [i for i in intervals if _part(i) is None]
        energy = _grid_energy([i.pk for i in taking_part])
        residuals = []
        for interval in taking_part:
            imp, exp = energy.get(interval.pk, (ZERO, ZERO))
            residuals.append(
                Residual(
                    _order_id(interval.community_id),
                    imp,
                    exp,
                    interval.rules.retail_tariff,
                    interval.rules.feed_in_tariff,
                    interval.state_changed_at,
                )
            )
        k = None if region.clearing_mechanism == "pay-as-bid" else region.pricing_k
        result = region_clear(
            residuals,
            mechanism=region.clearing_mechanism,
            k=k,
            offer_k=region.offer_k,
            request_k=region.request_k,
        )
        region_interval = RegionInterval.objects.create(
            region=region,
            start=start,
            end=end,
            cleared_at=now,
            mechanism=region.clearing_mechanism,
            pricing_k=region.pricing_k,
            offer_k=region.offer_k,
            request_k=region.request_k,
            price_per_kwh=result.clearing.price,
            traded_kwh=result.clearing.volume,
        )
        parts: dict[str, RegionResidual] = {}
        for interval in intervals:
            key = _order_id(interval.community_id)
            order = result.order_of(key) if _part(interval) is None else None
            imp, exp = energy.get(interval.pk, (ZERO, ZERO))
            traded = result.traded_kwh.get(key, ZERO)
            parts[key] = RegionResidual.objects.create(
                region_interval=region_interval,
                interval=interval,
                community_id=interval.community_id,
                part=_part(interval) or (RegionPart.TRADED if traded else RegionPart.NO_RESIDUAL),
                import_kwh=imp,
                export_kwh=exp,
                side="" if order is None else str(order.side),
                quantity_kwh=ZERO if order is None else order.quantity,
                limit_price_per_kwh=None if order is None else order.price,
                traded_kwh=traded,
            )
        RegionTrade.objects.bulk_create(
            RegionTrade(
                region_interval=region_interval,
                sequence=sequence,
                buyer=parts[match.buyer],
                seller=parts[match.seller],
                quantity_kwh=match.quantity,
                price_per_kwh=match.price,
            )
            for sequence, match in enumerate(result.trades, start=1)
        )
        return region_interval


def regions_clear_due(*, now: datetime, region: Region | None = None) -> int:
    """Clear every region period due at ``now`` synchronously (the command and the tests)."""
    return sum(
        region_interval_clear(region_id=p.region_id, start=p.start, end=p.end, now=now) is not None
        for p in region_periods_due(now=now, region=region)
    )


def region_period_of(interval: Interval) -> RegionPeriod | None:
    """The region period an interval belongs to, if its community is in a region."""
    region_id = interval.community.region_id
    if region_id is None:
        return None
    return RegionPeriod(region_id, interval.start, interval.end)
