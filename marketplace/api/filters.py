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
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field

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
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID, "format": "int64"})
class IdFilter(django_filters.NumberFilter):
    """An object id: a whole number the database can hold (NumberFilter takes decimals)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 60})
class SlugFilter(django_filters.CharFilter):
    """A community's or region's slug: 1 to 60 characters, as the schema says."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 60)
        super().__init__(*args, **kwargs)


class BoundedDateTimeField(django_filters.fields.IsoDateTimeField):
    """Any ISO 8601 date-time the schema's ``date-time`` format allows, in UTC.

    Every year from 1 to 9999 is a valid bound: a moment that shifting to UTC would carry past
    the calendar's ends is clamped to that end, which selects the same rows (no interval lies
    there). A time without an offset is refused: a range needs a moment, not a wall clock.
    """

    def to_python(self, value: Any) -> datetime | None:
        try:
            written = parse_datetime(value.strip()) if isinstance(value, str) else None
        except ValueError:  # a day or an hour out of range: the parent says it in its words
            written = None
        if written is not None and written.utcoffset() is None:
            raise ValidationError("Give the time zone offset (e.g. Z or +01:00).")
        try:
            moment = super().to_python(value)
        except OverflowError as exc:
            raise ValidationError("Enter an ISO 8601 date and time with an offset.") from exc
        if moment is None:
            return None
        try:
            # In UTC: PostgreSQL refuses offsets beyond 15:59 that Python accepts (+20:39).
            return moment.astimezone(UTC)
        except OverflowError:
            return _EARLIEST if moment.year == 1 else _LATEST


class TimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedDateTimeField


def _range(field: str) -> tuple[TimeFilter, TimeFilter]:
    # A range that ends before it starts is empty, not an error: it selects nothing.
    what = field.replace("__", " ")
    return (
        TimeFilter(
            field_name=field, lookup_expr="gte",
            label=f"{what} at or after this moment (RFC 3339, with an offset)",
        ),
        TimeFilter(
            field_name=field, lookup_expr="lt",
            label=f"{what} before this moment (RFC 3339, with an offset); before start_after "
            "selects nothing",
        ),
    )  # fmt: skip


class IntervalFilter(django_filters.FilterSet):
    community = SlugFilter(field_name="community__slug")
    state = django_filters.MultipleChoiceFilter(choices=IntervalState.choices)
    start_after, start_before = _range("start")

    class Meta:
        model = Interval
        fields = ("community", "state")


class RegionIntervalFilter(django_filters.FilterSet):
    region = SlugFilter(field_name="region__slug")
    start_after, start_before = _range("start")

    class Meta:
        model = RegionInterval
        fields = ("region",)


class PostingFilter(django_filters.FilterSet):
    community = SlugFilter(field_name="interval__community__slug")
    interval = IdFilter(field_name="interval_id")
    status = django_filters.MultipleChoiceFilter(choices=PostingStatus.choices)
    side = django_filters.ChoiceFilter(choices=Side.choices)
    start_after, start_before = _range("interval__start")

    class Meta:
        model = Posting
        fields = ("community", "interval", "status", "side")


class BidFilter(django_filters.FilterSet):
    community = SlugFilter(field_name="posting__interval__community__slug")
    interval = IdFilter(field_name="posting__interval_id")
    posting = IdFilter(field_name="posting_id")
    status = django_filters.MultipleChoiceFilter(choices=BidStatus.choices)
    start_after, start_before = _range("posting__interval__start")

    class Meta:
        model = Bid
        fields = ("community", "interval", "posting", "status")


class TradeFilter(django_filters.FilterSet):
    community = SlugFilter(field_name="interval__community__slug")
    interval = IdFilter(field_name="interval_id")
    source = django_filters.ChoiceFilter(choices=TradeSource.choices)
    start_after, start_before = _range("interval__start")

    class Meta:
        model = Trade
        fields = ("community", "interval", "source")


class MeterPointFilter(django_filters.FilterSet):
    community = SlugFilter(field_name="membership__community__slug")
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
    community = SlugFilter(field_name="interval__community__slug")
    interval = IdFilter(field_name="interval_id")
    start_after, start_before = _range("interval__start")

    class Meta:
        model = Settlement
        fields = ("community", "interval")
