"""The only place marketplace rows are locked, always in one fixed order.

Every write that touches the book takes its locks through these helpers and in this order:
region, then interval, then meter points, then postings, then bids, each group by ascending
primary key (a region's clearing locks its row, then its communities' intervals of the period). Two
code paths that lock the same rows therefore always queue in the same order and cannot deadlock.
``of=("self",)`` keeps a ``select_related`` join from locking the related rows too.

Posting takes the interval in *shared* mode (``share_lock_interval``): postings into one interval
do not wait for each other, while everything that changes the interval or its book (the
pipeline's steps, bids, cancellations) takes it exclusively and so waits for them, and they for
it. Nothing that holds the shared lock asks for the exclusive one later, so the two modes cannot
deadlock on one interval either.

On SQLite ``select_for_update`` is a no-op; the settings open every transaction IMMEDIATE, which
serialises writers for the whole database, so the same code is safe there as well.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet

from accounts.models import Membership, MeterPoint
from config.sql import ModelSelect, table_name
from grid.models import GridModel
from marketplace.models import (
    Bid,
    BidStatus,
    Community,
    Interval,
    MarketRules,
    Posting,
    PostingStatus,
    Region,
)

_LOCK_CHUNK = 5_000


def lock_interval(pk: int) -> Interval:
    """Lock one interval (with its rules and community read alongside, not locked).

    Hand-written like ``share_lock_interval``: every pipeline step starts with it, and the
    ORM's compilation of this join was a tenth of a replayed interval's time. Raises
    ``Interval.DoesNotExist``.
    """
    return _locked_interval(_interval_select("UPDATE"), pk)


def lock_intervals(ids: Iterable[int]) -> list[Interval]:
    """Lock several intervals (rules and community not read) by ascending primary key: the
    pipeline's steps run for all the intervals of a tick at once."""
    return list(Interval.objects.filter(pk__in=list(ids)).order_by("pk").select_for_update())


def lock_region(pk: int) -> Region:
    """Lock a region: its clearings of one period queue behind each other."""
    return Region.objects.filter(pk=pk).select_for_update().get()


def lock_region_period_intervals(region_id: int, start: datetime, end: datetime) -> list[Interval]:
    """Lock the intervals of the region's communities for one period (rules and community read
    alongside), by ascending primary key; the caller holds the region's lock."""
    return list(
        Interval.objects.filter(community__region_id=region_id, start=start, end=end)
        .select_related("rules", "community")
        .order_by("pk")
        .select_for_update(of=("self",))
    )


def share_lock_interval(pk: int) -> Interval:
    """Lock one interval in shared mode (``FOR SHARE``), its rules and community read alongside.

    For posting only: it orders the posting against the pipeline's gate closure (which locks
    the interval exclusively) without making the interval's postings queue behind each other.
    Django's ``select_for_update`` has no shared mode, hence one hand-written statement; it also
    skips the ORM's query compilation on the API's hottest path. Raises
    ``Interval.DoesNotExist`` like ``lock_interval``.
    """
    return _locked_interval(_interval_select("SHARE"), pk)


def _locked_interval(select: ModelSelect, pk: int) -> Interval:
    with connection.cursor() as cursor:
        cursor.execute(select.sql, [pk])
        row = cursor.fetchone()
    if row is None:
        raise Interval.DoesNotExist("Interval matching query does not exist.")
    interval, rules, community = select.build(row)
    interval.rules = rules
    interval.community = community
    return interval


def lock_meter_point_with_membership(
    pk: int, *, user_id: int | None = None
) -> tuple[MeterPoint, Membership, bool]:
    """Lock one meter point and read its membership's current status in the same statement,
    and whether its community has a grid model (then the meter point needs a place on it).

    The membership is read, not locked (as ``fresh_membership`` does), inside the caller's
    transaction, so a suspension committed before this statement is seen. With ``user_id``,
    only a meter point of that user's is found: a caller that named the meter point by its id
    alone has its ownership checked by the same statement. Raises ``MeterPoint.DoesNotExist``
    (for another user's meter point too, so the two cannot be told apart).
    """
    select = _meter_point_select(owned=user_id is not None)
    with connection.cursor() as cursor:
        cursor.execute(select.sql, [pk] if user_id is None else [pk, user_id])
        row = cursor.fetchone()
    if row is None:
        raise MeterPoint.DoesNotExist("MeterPoint matching query does not exist.")
    meter_point, membership, has_grid = select.build(row)
    return meter_point, membership, bool(has_grid)


def lock_meter_points_with_membership(
    ids: Iterable[int],
) -> dict[int, tuple[MeterPoint, Membership, bool]]:
    """``lock_meter_point_with_membership`` for many meter points, locked by ascending id in
    one statement; meter point id -> (meter point, membership, community has a grid). An id
    that does not exist is absent."""
    ordered = sorted(set(ids))
    out = {}
    # In chunks far below SQLite's parameter limit; each chunk's ids are above the last's, so
    # the rows are still locked in ascending order.
    for start in range(0, len(ordered), _LOCK_CHUNK):
        chunk = ordered[start : start + _LOCK_CHUNK]
        select = _meter_points_select(len(chunk))
        with connection.cursor() as cursor:
            cursor.execute(select.sql, chunk)
            rows = cursor.fetchall()
        for row in rows:
            meter_point, membership, has_grid = select.build(row)
            out[meter_point.pk] = (meter_point, membership, bool(has_grid))
    return out


def lock_meter_points(ids: Iterable[int]) -> list[MeterPoint]:
    return list(
        MeterPoint.objects.filter(pk__in=list(ids)).order_by("pk").select_for_update(of=("self",))
    )


def lock_posting(pk: int) -> Posting:
    return Posting.objects.filter(pk=pk).select_for_update(of=("self",)).get()


def lock_postings(ids: Iterable[int]) -> list[Posting]:
    return list(
        Posting.objects.filter(pk__in=list(ids)).order_by("pk").select_for_update(of=("self",))
    )


def lock_open_postings_of_interval(interval_id: int) -> QuerySet[Posting]:
    """The interval's open postings, locked when the caller evaluates the queryset."""
    return (
        Posting.objects.filter(interval_id=interval_id, status=PostingStatus.OPEN)
        .order_by("pk")
        .select_for_update(of=("self",))
    )


def lock_bid(pk: int) -> Bid:
    return Bid.objects.filter(pk=pk).select_for_update(of=("self",)).get()


def lock_bids(ids: Iterable[int]) -> list[Bid]:
    return list(Bid.objects.filter(pk__in=list(ids)).order_by("pk").select_for_update(of=("self",)))


def lock_pending_bids_of_interval(interval_id: int) -> QuerySet[Bid]:
    """Pending bids on the interval's postings, locked when the caller evaluates the queryset."""
    return (
        Bid.objects.filter(posting__interval_id=interval_id, status=BidStatus.PENDING)
        .order_by("pk")
        .select_for_update(of=("self",))
    )


# --- Hand-written selects (see config/sql.py), built once per process --------------------------
def _for(mode: str, alias: str) -> str:
    """The row-lock clause, or nothing where the database has none (SQLite: see above)."""
    return f" FOR {mode} OF {alias}" if connection.features.has_select_for_update_of else ""


@functools.cache
def _interval_select(mode: str) -> ModelSelect:
    """The interval with its rules and community, locked ``FOR <mode> OF i`` (UPDATE or SHARE)."""
    return ModelSelect(
        [(Interval, "i", None), (MarketRules, "r", None), (Community, "c", None)],
        f"FROM {table_name(Interval)} i"
        f" JOIN {table_name(MarketRules)} r ON r.id = i.rules_id"
        f" JOIN {table_name(Community)} c ON c.id = i.community_id"
        f" WHERE i.id = %s{_for(mode, 'i')}",
    )


@functools.cache
def _meter_point_select(*, owned: bool) -> ModelSelect:
    owner = " AND m.user_id = %s" if owned else ""
    return _meter_point_with_membership(f"WHERE mp.id = %s{owner}{_for('UPDATE', 'mp')}")


@functools.lru_cache(maxsize=64)
def _meter_points_select(count: int) -> ModelSelect:
    marks = ", ".join(["%s"] * count)
    return _meter_point_with_membership(
        f"WHERE mp.id IN ({marks}) ORDER BY mp.id{_for('UPDATE', 'mp')}"
    )


def _meter_point_with_membership(where: str) -> ModelSelect:
    return ModelSelect(
        [
            (MeterPoint, "mp", None),
            (Membership, "m", ("id", "community_id", "status", "pseudonym")),
        ],
        f"FROM {table_name(MeterPoint)} mp"
        f" JOIN {table_name(Membership)} m ON m.id = mp.membership_id"
        f" {where}",
        # Table names only; the id is a parameter.
        extra=[
            f"(SELECT COUNT(*) FROM {table_name(GridModel)} g"  # noqa: S608
            " WHERE g.community_id = m.community_id)"
        ],
    )
