"""The only place marketplace rows are locked, always in one fixed order.

Every write that touches the book takes its locks through these helpers and in this order:
interval, then meter points, then postings, then bids, each group by ascending primary key. Two
code paths that lock the same rows therefore always queue in the same order and cannot deadlock.
``of=("self",)`` keeps a ``select_related`` join from locking the related rows too.

On SQLite ``select_for_update`` is a no-op; the settings open every transaction IMMEDIATE, which
serialises writers for the whole database, so the same code is safe there as well.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from accounts.models import MeterPoint
from marketplace.models import Bid, BidStatus, Interval, Posting, PostingStatus


def lock_interval(pk: int) -> Interval:
    """Lock one interval (with its rules read alongside, not locked)."""
    return (
        Interval.objects.filter(pk=pk)
        .select_related("rules", "community")
        .select_for_update(of=("self",))
        .get()
    )


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
    return list(
        Bid.objects.filter(pk__in=list(ids)).order_by("pk").select_for_update(of=("self",))
    )


def lock_pending_bids_of_interval(interval_id: int) -> QuerySet[Bid]:
    """Pending bids on the interval's postings, locked when the caller evaluates the queryset."""
    return (
        Bid.objects.filter(posting__interval_id=interval_id, status=BidStatus.PENDING)
        .order_by("pk")
        .select_for_update(of=("self",))
    )
