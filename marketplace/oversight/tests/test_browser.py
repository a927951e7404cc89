"""Chromium opens every regulator dashboard and the managers' admin pages on seeded data.

Screenshots land in test-artifacts/screenshots/ (oversight-*.png) for review.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import User
from accounts.tests.factories import manager_of
from conftest import save_screenshot
from grid.services import grid_model_use_reference
from marketplace.models import IntervalState, Trade, TradeSource
from marketplace.oversight.tests.conftest import START, Market, _interval, build_market
from marketplace.oversight.views import DASHBOARDS
from marketplace.services.grid_check import interval_grid_check

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
RANGE = "?date_from=2026-03-02&date_to=2026-03-02"


def _sign_in(page: Any, user: User, live_server: Any) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )


def _checked_grid(market: Market) -> int:
    """A real network and a real grid check of one interval, so the drawing has colours."""
    grid_model = grid_model_use_reference(community=market.community, name="cigre_lv")
    buses = grid_model.connection_buses
    for i, membership in enumerate((market.a, market.b, market.c, market.e)):
        membership.meter_points.update(bus=buses[(i * 5) % len(buses)])
    interval = _interval(market.community, START + timedelta(hours=1), state=IntervalState.CLEARED)
    mp = {m.pk: m.meter_points.get() for m in (market.a, market.b, market.c)}
    Trade.objects.create(
        interval=interval, source=TradeSource.BILATERAL, sequence=1,
        buyer=market.a, buyer_meter_point=mp[market.a.pk],
        seller=market.c, seller_meter_point=mp[market.c.pk],
        quantity_kwh=Decimal("6"), price_per_kwh=Decimal("0.2"),
        seller_price_per_kwh=Decimal("0.2"), orders_submitted_at=START,
    )  # fmt: skip
    interval_grid_check(interval=interval)
    return interval.pk


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_dashboards_in_chromium(page: Any, live_server: Any, name: str) -> None:
    build_market()
    regulator = User.objects.create_user("reg@oversight.test", "pw", is_regulator=True)
    _sign_in(page, regulator, live_server)
    page.goto(f"/regulator/{name}/{RANGE}")
    assert page.locator("svg.chart").count() >= 1
    assert page.locator("h1").inner_text() == DASHBOARDS[name][0]
    page.locator("details summary").first.click()
    save_screenshot(page, f"oversight-dashboard-{name}")


def test_manager_admin_pages_in_chromium(page: Any, live_server: Any) -> None:
    market = build_market()
    interval_id = _checked_grid(market)
    manager = manager_of(market.community)
    _sign_in(page, manager, live_server)
    page.goto(f"/admin/grid/gridmodel/community/{market.community.pk}/")
    assert page.locator("svg.network circle.bus").count() > 10
    save_screenshot(page, "oversight-admin-grid")
    page.goto(f"/admin/marketplace/marketrules/edit/{market.community.pk}/")
    page.fill("#id_retail_tariff", "0.3500")
    page.fill("#id_price_cap", "0.3000")
    page.click("input[name=preview]")
    assert page.locator("input[name=confirm]").count() == 1
    save_screenshot(page, "oversight-admin-rules-preview")
    page.goto("/admin/marketplace/interval/")
    save_screenshot(page, "oversight-admin-pipeline")
    page.goto(f"/admin/marketplace/interval/{interval_id}/change/")
    assert page.get_by_text("Grid check").count() >= 1
    save_screenshot(page, "oversight-admin-interval")
    # Another community's grid page is not there for this manager.
    response = page.goto(f"/admin/grid/gridmodel/community/{market.other.pk}/")
    assert response.status == 404
