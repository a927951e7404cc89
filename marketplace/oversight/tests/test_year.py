"""A year of quarter-hours: every dashboard answers, with the same query count as a day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from marketplace.oversight.seed import seed_year
from marketplace.oversight.tests.test_views import QUERIES
from marketplace.oversight.views import DASHBOARDS

START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR = {"community": "year", "date_from": "2025-01-01", "date_to": "2025-12-31"}


@pytest.mark.django_db
def test_a_year_of_intervals(django_assert_num_queries: object) -> None:
    # How long this takes is measured by bench/bench_dashboards.py, not asserted here.
    _, size = seed_year(slug="year", start=START, members=100, trades_per_interval=2)
    assert size.intervals == 35_040
    regulator = User.objects.create_user("reg@year.test", "pw", is_regulator=True)
    client = Client()
    client.force_login(regulator)
    for name in DASHBOARDS:
        # Daily buckets: the same grouped queries as for one day (the named community's lookup
        # takes the place of the common time zone's).
        with django_assert_num_queries(QUERIES[name]):  # type: ignore[operator]
            response = client.get(reverse("oversight:dashboard", args=[name]), YEAR)
        assert response.status_code == 200
        assert "one point per day" in response.content.decode()
    csv = client.get(reverse("oversight:csv", args=["prices", "prices"]), YEAR)
    assert len(csv.content.decode().strip().splitlines()) == 1 + 365
