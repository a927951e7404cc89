"""In Debian's chromium: a member switches the autopilot on (a bad limit is refused next to its
field), it posts before gate closure, the page shows what it did, My trades marks the trade, and
the member switches it off. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import User
from accounts.services import (
    membership_approve,
    membership_request,
    meter_point_approve,
    meter_point_register,
)
from conftest import save_screenshot
from marketplace.models import Interval, Posting, Trade
from marketplace.services.autopilot import autopilot_post_due
from marketplace.services.bids import bid_create
from marketplace.services.communities import community_create
from marketplace.services.intervals import intervals_open_horizon
from marketplace.tests.factories import Member
from marketplace.tests.services.test_autopilot import history
from marketplace.tests.web.test_browser_flow import PASSWORD, _sign_in

SLUG = "lindenhof"


def _member(community: Any, email: str) -> Member:
    user = User.objects.create_user(email, PASSWORD)
    membership = membership_approve(
        membership=membership_request(user=user, community=community), decided_by=None
    )
    meter_point = meter_point_register(
        membership=membership, label="Roof", import_capacity_kw=Decimal(20),
        export_capacity_kw=Decimal(20),
    )  # fmt: skip
    meter_point = meter_point_approve(meter_point=meter_point, approved_by=None)
    return Member(membership, meter_point)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_member_runs_the_autopilot_from_the_page(
    browser: Any, live_server: Any, page: Any
) -> None:
    from playwright.sync_api import expect

    now = timezone.now()
    community = community_create(name="Lindenhof Energy", slug=SLUG, opening_horizon_hours=2)
    intervals_open_horizon(community=community, now=now)
    interval = (
        Interval.objects.filter(community=community, gate_closure_at__gt=now + timedelta(minutes=4))
        .select_related("rules")
        .order_by("start")
        .first()
    )
    assert interval is not None
    anna = _member(community, "anna@lindenhof.test")
    ben = _member(community, "ben@lindenhof.test")
    history(anna, interval, exported="1.000")  # her roof exports 4 kW at this time of day

    _sign_in(page, "anna@lindenhof.test")
    page.goto(f"/c/{SLUG}/dashboard/")
    page.click("nav.subnav >> text=Autopilot")
    expect(page.locator("main h1")).to_contain_text("Autopilot")
    page.check("input[value=at-limits]")
    page.fill("#id_max_buy_kwh", "0.5")
    page.fill("#id_max_sell_kwh", "0.8")
    page.fill("#id_sell_floor_per_kwh", "0.4000")
    page.fill("#id_buy_ceiling_per_kwh", "0.3000")
    page.click("#autopilot-form button[value=on]")
    expect(page.locator("#id_sell_floor_per_kwh_errors")).to_contain_text("buying ceiling")
    assert page.input_value("#id_max_sell_kwh") == "0.8"  # nothing typed is lost
    page.fill("#id_sell_floor_per_kwh", "0.1800")
    page.click("#autopilot-form button[value=on]")
    expect(page.locator(".messages")).to_contain_text("The autopilot for Roof is on")
    expect(page.locator(f"#autopilot-{anna.meter_point.pk}")).to_contain_text("On")

    # Beat's round shortly before the gate; Ben bids on what it offered.
    (offer,) = autopilot_post_due(now=interval.gate_closure_at - timedelta(minutes=2))
    assert (offer.side, offer.quantity_kwh, offer.limit_price_per_kwh) == (
        "sell", Decimal("0.8"), Decimal("0.18")
    )  # fmt: skip
    bid_create(
        membership=ben.membership, meter_point=ben.meter_point, posting=offer,
        quantity_kwh="0.5", price_per_kwh="0.2000",
    )  # fmt: skip
    page.reload()
    row = page.locator(f"#autopilot-posting-{offer.pk}")
    expect(row).to_contain_text("Open")
    expect(row).to_contain_text("0.800")

    # At gate closure the best bid is accepted; the interval runs past its delivery.
    call_command(
        "advance_intervals", community=SLUG, now=(interval.end + timedelta(minutes=1)).isoformat()
    )
    # Ben's 0.5 kWh at his bid; the unsold 0.3 kWh went to the outside grid at its tariff.
    trade = Trade.objects.get(posting=offer, bid__isnull=False)
    page.reload()
    expect(row).to_contain_text("Traded 0.500 kWh with members")
    expect(row).to_contain_text("0.300 kWh with the outside grid")
    expect(row).to_contain_text("0.800 kWh confirmed for delivery")
    save_screenshot(page, "autopilot")
    page.click("nav.subnav >> text=My trades")
    expect(page.locator(f"#trade-{trade.pk}")).to_contain_text("autopilot")

    page.click("nav.subnav >> text=Autopilot")
    page.click("#autopilot-form button[value=off]")
    expect(page.locator(".messages")).to_contain_text("The autopilot for Roof is off")
    expect(page.locator(f"#autopilot-{anna.meter_point.pk}")).to_contain_text("Off")
    assert Posting.objects.filter(autopilot=True).count() == 1
