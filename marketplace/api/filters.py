"""Query filters (django-filter) by community, interval, state and time range.

Filters only narrow a queryset that a selector already limited to what the caller may see.
Ids and times are bounded so no query parameter can reach the database as an overflow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError

from accounts.models import MeterPoint, MeterPointStatus
from marketplace.ledger.models import MeterReading, Settlement
from marketplace.models import (
    Bid,
    BidStatus,
    Interval,
    IntervalState,
    Posting,
    PostingStatus,
    RegionInterval,
    Side,
    Trade,
    TradeSource,
)

MAX_ID = 2**63 - 1
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class IdFilter(django_filters.NumberFilter):
    """An object id: a whole number the database can hold (NumberFilter takes decimals)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class BoundedDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time between 1970 and 9000, in UTC: far years overflow when shifted."""

    def to_python(self, value: Any) -> datetime | None:
        try:
            moment = super().to_python(value)
        except OverflowError as exc:
            raise ValidationError("Enter a date and time between 1970 and 9000.") from exc
        if moment is None:
            return None
        try:
            if not _EARLIEST <= moment <= _LATEST:
                raise ValidationError("Enter a date and time between 1970 and 9000.")
            # In UTC: PostgreSQL refuses offsets beyond 15:59 that Python accepts (+20:39).
            return moment.astimezone(UTC)
        except (OverflowError, TypeError) as exc:
            raise ValidationError("Enter a date and time between 1970 and 9000.") from exc


class TimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedDateTimeField


def _range(field: str) -> tuple[TimeFilter, TimeFilter]:
    return (
        TimeFilter(field_name=field, lookup_expr="gte", label=f"{field} at or after (ISO 8601)"),
        TimeFilter(field_name=field, lookup_expr="lt", label=f"{field} before (ISO 8601)"),
    )


class IntervalFilter(django_filters.FilterSet):
    community = django_filters.CharFilter(field_name="community__slug", max_length=60)
    state = django_filters.MultipleChoiceFilter(choices=IntervalState.choices)
    start_after, start_before = _range("start")

    class Meta:
        model = Interval
        fields = ("community", "state")


class RegionIntervalFilter(django_filters.FilterSet):
    region = django_filters.CharFilter(field_name="region__slug", max_length=60)
    start_after, start_before = _range("start")

    class Meta:
        model = RegionInterval
        fields = ("region",)


class PostingFilter(django_filters.FilterSet):
    community = django_filters.CharFilter(field_name="interval__community__slug", max_length=60)
    interval = IdFilter(field_name="interval_id")
    status = django_filters.MultipleChoiceFilter(choices=PostingStatus.choices)
    side = django_filters.ChoiceFilter(choices=Side.choices)
    start_after, start_before = _range("interval__start")

    class Meta:
        model = Posting
        fields = ("community", "interval", "status", "side")


class BidFilter(django_filters.FilterSet):
    community = django_filters.CharFilter(
        field_name="posting__interval__community__slug", max_length=60
    )
    interval = IdFilter(field_name="posting__interval_id")
    posting = IdFilter(field_name="posting_id")
    status = django_filters.MultipleChoiceFilter(choices=BidStatus.choices)
    start_after, start_before = _range("posting__interval__start")

    class Meta:
        model = Bid
        fields = ("community", "interval", "posting", "status")


class TradeFilter(django_filters.FilterSet):
    community = django_filters.CharFilter(field_name="interval__community__slug", max_length=60)
    interval = IdFilter(field_name="interval_id")
    source = django_filters.ChoiceFilter(choices=TradeSource.choices)
    start_after, start_before = _range("interval__start")

    class Meta:
        model = Trade
        fields = ("community", "interval", "source")


class MeterPointFilter(django_filters.FilterSet):
    community = django_filters.CharFilter(field_name="membership__community__slug", max_length=60)
    status = django_filters.ChoiceFilter(choices=MeterPointStatus.choices)

    class Meta:
        model = MeterPoint
        fields = ("community", "status")


class MeterReadingFilter(django_filters.FilterSet):
    meter_point = IdFilter(field_name="meter_point_id")
    interval = IdFilter(field_name="interval_id")
    start_after, start_before = _range("interval__start")

    class Meta:
        model = MeterReading
        fields = ("meter_point", "interval")


class SettlementFilter(django_filters.FilterSet):
    community = django_filters.CharFilter(field_name="interval__community__slug", max_length=60)
    interval = IdFilter(field_name="interval_id")
    start_after, start_before = _range("interval__start")

    class Meta:
        model = Settlement
        fields = ("community", "interval")
