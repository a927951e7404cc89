"""Forecasts of a meter point's net power from its own metered history.

One forecast for every reader: the grid check's baseline for meter points without a trade and
the autopilot's posting for a member who opted in both use ``net_export_forecast_kw``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from marketplace.ledger.models import MeterReading, ReadingStatus

# How many past weeks the same quarter-hour (same weekday and time of day) is read from.
FORECAST_WEEKS = 4


def net_export_forecast_kw(
    *, community_id: int, start: datetime, meter_points: Iterable[int]
) -> dict[int, float]:
    """Forecast net export (kW; negative: net import) for the interval starting at ``start``.

    The mean metered net export (exported - imported, per hour) of the interval at the same
    time one, two, three and four weeks before: the latest version of each reading, as many of
    those weeks as have readings. A meter point without any such reading is left out: it has no
    history to forecast from. One query whatever the number of meter points.
    """
    wanted = sorted(set(meter_points))
    if not wanted:
        return {}
    starts = [start - timedelta(weeks=k) for k in range(1, FORECAST_WEEKS + 1)]
    rows = (
        MeterReading.objects.filter(
            meter_point_id__in=wanted,
            interval__community_id=community_id,
            interval__start__in=starts,
            superseded_by__isnull=True,
            status=ReadingStatus.ACCEPTED,  # a flagged reading is no measurement yet
        )
        .order_by()
        .values_list(
            "meter_point_id", "exported_kwh", "imported_kwh", "interval__start", "interval__end"
        )
    )
    values: dict[int, list[float]] = defaultdict(list)
    for mp, exported, imported, begin, end in rows:
        hours = (end - begin).total_seconds() / 3600.0
        values[mp].append(float(exported - imported) / hours)
    return {mp: sum(kw) / len(kw) for mp, kw in values.items()}
