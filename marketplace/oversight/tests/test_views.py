"""Dashboard access, filters, CSV exports and pinned query counts."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import manager_of
from marketplace.oversight.tests.conftest import Market
from marketplace.oversight.views import DASHBOARDS

pytestmark = pytest.mark.django_db
RANGE = {"date_from": "2026-03-02", "date_to": "2026-03-02"}


def _client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_refused_to_anonymous_prosumer_and_manager(market: Market, name: str) -> None:
    url = reverse("oversight:dashboard", args=[name])
    assert _client(None).get(url).status_code == 302  # to sign in
    assert _client(market.a.user).get(url).status_code == 403
    manager = manager_of(market.community)
    manager.is_staff = True
    manager.save()
    assert _client(manager).get(url).status_code == 403
    csv_url = reverse("oversight:csv", args=[name, DASHBOARDS[name][1][0]])
    assert _client(market.a.user).get(csv_url).status_code == 403


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_regulator_and_superuser_see_every_dashboard(
    market: Market, regulator: User, name: str
) -> None:
    superuser = User.objects.create_superuser("operator@oversight.test", "pw")
    for user in (regulator, superuser):
        response = _client(user).get(reverse("oversight:dashboard", args=[name]), RANGE)
        assert response.status_code == 200
        body = response.content.decode()
        assert "<svg" in body
        # Anonymised: nobody's email address or pseudonym appears.
        for membership in (market.a, market.b, market.c):
            assert membership.user.email not in body
            assert membership.pseudonym not in body


def test_index_redirects_to_prices(regulator: User) -> None:
    response = _client(regulator).get(reverse("oversight:index"))
    assert response.status_code == 302
    assert response["Location"].endswith("/regulator/prices/")


def test_bad_range_is_reported_and_defaults_used(market: Market, regulator: User) -> None:
    response = _client(regulator).get(
        reverse("oversight:dashboard", args=["prices"]),
        {"date_from": "2026-03-05", "date_to": "2026-03-01"},
    )
    assert response.status_code == 200
    assert "must start before it ends" in response.content.decode()


@pytest.mark.parametrize(
    ("name", "chart", "first_column"),
    [
        ("prices", "prices", "interval start (UTC)"),
        ("volumes", "sufficiency", "community"),
        ("network", "violations", "violation_kind"),
        ("access", "groups", "group"),
        ("access", "savings", "savings_from"),
        ("access", "concentration", "community"),
        ("integrity", "pipeline", "state"),
    ],
)
def test_csv_is_the_charts_table(
    market: Market, regulator: User, name: str, chart: str, first_column: str
) -> None:
    response = _client(regulator).get(
        reverse("oversight:csv", args=[name, chart]), {**RANGE, "community": "sonnenfeld"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "sonnenfeld-2026-03-02-2026-03-02" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == first_column
    assert len(rows) > 1


def test_csv_prices_values(market: Market, regulator: User) -> None:
    response = _client(regulator).get(reverse("oversight:csv", args=["prices", "prices"]), RANGE)
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][1:] == ["0.1933", "0.1800", "0.2000", "0.3200", "0.0800", "2.500"]
    assert rows[2][1] == ""  # no trade in the second interval


def test_unknown_dashboard_or_chart_is_404(regulator: User) -> None:
    client = _client(regulator)
    assert client.get("/regulator/nothing/").status_code == 404
    assert client.get("/regulator/prices/csv/groups/").status_code == 404


# Session + user (2), the navigation and its bell (1), community choices (1) and the common time
# zone (1) come first; then the selectors: each figure is a fixed number of grouped queries,
# whatever the data size.
QUERIES = {"prices": 7, "volumes": 10, "network": 11, "access": 12, "integrity": 7, "regions": 10}


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_query_counts_are_pinned(
    market: Market, regulator: User, name: str, django_assert_num_queries: object
) -> None:
    client = _client(regulator)
    with django_assert_num_queries(QUERIES[name]):  # type: ignore[operator]
        assert client.get(reverse("oversight:dashboard", args=[name]), RANGE).status_code == 200


def test_navigation_links_dashboards_for_regulators_only(market: Market, regulator: User) -> None:
    dashboards_link = f'href="{reverse("oversight:index")}"'
    assert dashboards_link in _client(regulator).get("/").content.decode()
    manager = manager_of(market.community)
    assert dashboards_link not in _client(manager).get("/").content.decode()


def test_network_dashboard_counts_system_strength_events(market: Market, regulator: User) -> None:
    from grid.models import GridCheckResult

    event = {"bus": 4, "short_circuit_mva": 2.0, "export_kw": 80.0, "ratio": 25.0,
             "min_ratio": 30.0, "hostable_kw": 66.667}  # fmt: skip
    GridCheckResult.objects.filter(interval=market.intervals[0]).update(
        strength_events=[event, {**event, "bus": 5}]
    )
    client = _client(regulator)
    page = client.get(reverse("oversight:dashboard", args=["network"]), RANGE).content.decode()
    assert "System-strength events" in page
    response = client.get(reverse("oversight:csv", args=["network", "strength"]), RANGE)
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["interval start (UTC)", "community", "bus"]
    assert [row[2] for row in rows[1:]] == ["4", "5"]
    costs = client.get(reverse("oversight:csv", args=["network", "costs"]), RANGE).content.decode()
    header, *body = list(csv.reader(io.StringIO(costs)))
    assert sum(int(row[header.index("strength_events")]) for row in body) == 2
