"""End to end in Debian's chromium: join, get approved, post, bid, accept, advance, see the trade.

The first prosumer does everything a newcomer does through the pages (sign up and follow the
mailed link, ask to join, meter point, post an offer); the manager's approval is the service call
the admin action makes. A second prosumer, set up through the services, bids in the browser; the
first accepts; the pipeline's own command advances the interval past delivery; both see the
confirmed trade.
Screenshots of the main pages go to test-artifacts/screenshots/ for review.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Membership, MeterPoint, User
from accounts.services import (
    membership_approve,
    membership_request,
    meter_point_approve,
    meter_point_register,
)
from conftest import save_screenshot
from marketplace.models import Bid, Interval, IntervalState, Posting, Trade
from marketplace.services.communities import community_create
from marketplace.services.intervals import intervals_open_horizon
from marketplace.services.postings import posting_create

PASSWORD = "Sunny-roof-2026!"
SLUG = "sonnenweg"


def sign_up_link_from_mail(email: str) -> str:
    """The path of the confirmation link in the last mail to ``email`` (the test's mailbox)."""
    message = [m for m in mail.outbox if email in m.to][-1]
    match = re.search(r"https?://[^/\s]+(/accounts/signup/confirm/\S+/)", str(message.body))
    assert match, message.body
    return match.group(1)


def _sign_in(page: Any, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_two_prosumers_trade_through_the_pages(browser: Any, live_server: Any, page: Any) -> None:
    from playwright.sync_api import expect

    now = timezone.now()
    community = community_create(name="Sonnenweg Energy", slug=SLUG, opening_horizon_hours=2)
    intervals_open_horizon(community=community, now=now)
    # Far enough from its gate that the test never races it.
    interval = (
        Interval.objects.filter(community=community, gate_closure_at__gt=now + timedelta(minutes=4))
        .order_by("start")
        .first()
    )
    assert interval is not None

    # --- The first prosumer joins through the pages ------------------------------------------
    page.goto("/accounts/signup/")
    page.fill("#id_email", "anna@sonnenweg.test")
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/signup/sent/")
    page.goto(sign_up_link_from_mail("anna@sonnenweg.test"))
    page.fill("#id_display_name", "Anna Example")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/")
    page.select_option("#id_community", label="Sonnenweg Energy")
    page.click("text=Ask to join")
    expect(page.locator("main")).to_contain_text("Pending approval")
    page.goto("/dashboard/")
    expect(page.locator("main")).to_contain_text("Pending approval")
    anna = Membership.objects.get(user__email="anna@sonnenweg.test", community=community)
    membership_approve(membership=anna, decided_by=None)

    page.goto("/accounts/meter-points/")
    page.fill("#id_label", "Rooftop PV")
    page.fill("#id_import_capacity_kw", "11")
    page.fill("#id_export_capacity_kw", "10")
    page.fill("#id_pv_kwp", "9.8")
    page.click("main button[type=submit]")
    expect(page.locator("main table")).to_contain_text("Rooftop PV")
    expect(page.locator("main table")).to_contain_text("Awaiting the manager's approval")
    # The manager confirms the connection (in the admin; here through the same service).
    meter_point_approve(meter_point=MeterPoint.objects.get(label="Rooftop PV"), approved_by=None)

    # --- She posts an offer; a bad price is refused inline, without a reload -----------------
    page.goto(f"/c/{SLUG}/board/?interval={interval.pk}")
    page.evaluate("window.__sameDocument = true")
    page.select_option("#id_interval", str(interval.pk))
    page.fill("#id_quantity_kwh", "2")
    page.fill("#id_limit_price_per_kwh", "0.9")
    page.click("#posting-form button[type=submit]")
    expect(page.locator("#id_limit_price_per_kwh_errors")).to_contain_text("between the floor")
    assert page.input_value("#id_quantity_kwh") == "2"  # nothing typed is lost
    page.fill("#id_limit_price_per_kwh", "0.2000")
    page.click("#posting-form button[type=submit]")
    expect(page.locator("#board-main .messages")).to_contain_text("is on the board")
    assert page.evaluate("window.__sameDocument") is True  # htmx swapped; no full reload
    offer = Posting.objects.get(membership=anna)

    # --- A second prosumer (set up through the services) bids in her own browser -------------
    ben_user = User.objects.create_user("ben@sonnenweg.test", PASSWORD)
    ben = membership_approve(
        membership=membership_request(user=ben_user, community=community), decided_by=None
    )
    ben_meter = meter_point_register(
        membership=ben, label="Flat", import_capacity_kw=Decimal(20), export_capacity_kw=Decimal(4)
    )
    ben_meter = meter_point_approve(meter_point=ben_meter, approved_by=None)
    # A request too, so the depth chart has both curves.
    posting_create(
        membership=ben, meter_point=ben_meter, interval=interval, side="buy",
        quantity_kwh="3", limit_price_per_kwh="0.1500",
    )  # fmt: skip
    ben_context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}
    )
    ben_page = ben_context.new_page()
    _sign_in(ben_page, "ben@sonnenweg.test")
    ben_page.goto(f"/c/{SLUG}/board/?interval={interval.pk}")
    row = ben_page.locator(f"#posting-{offer.pk}")
    expect(row).to_contain_text(anna.pseudonym)
    expect(ben_page.locator("main")).not_to_contain_text("anna@sonnenweg.test")
    expect(ben_page.locator("main")).not_to_contain_text("Anna Example")
    row.locator("summary").click()
    row.locator(f"#id_bid{offer.pk}_quantity_kwh").fill("1.5")
    row.locator(f"#id_bid{offer.pk}_price_per_kwh").fill("0.2500")
    row.locator("button[type=submit]").click()
    expect(ben_page.locator("#board-main .messages")).to_contain_text("is with the poster")
    bid = Bid.objects.get(membership=ben)

    ben_page.set_viewport_size({"width": 390, "height": 844})
    ben_page.reload()
    save_screenshot(ben_page, "board-phone-390")

    # --- Anna sees the bid and accepts it ------------------------------------------------------
    page.goto(f"/c/{SLUG}/board/?interval={interval.pk}")
    expect(page.locator(f"#bid-{bid.pk}")).to_contain_text(ben.pseudonym)
    expect(page.locator(".depth polyline.supply")).to_have_count(1)
    expect(page.locator(".depth polyline.demand")).to_have_count(1)
    save_screenshot(page, "board")
    page.locator(f"#bid-{bid.pk} button", has_text="Accept").click()
    expect(page.locator("#board-main .messages")).to_contain_text("Bid accepted")

    # --- The interval runs through the pipeline past its delivery ----------------------------
    after_delivery = interval.end + timedelta(minutes=1)
    call_command("advance_intervals", community=SLUG, now=after_delivery.isoformat())
    interval.refresh_from_db()
    assert interval.state in {IntervalState.CONFIRMED, IntervalState.SETTLED}
    trade = Trade.objects.get(bid=bid)
    assert trade.confirmed_kwh == Decimal("1.500")

    for who_page, side in ((page, "sold"), (ben_page, "bought")):
        who_page.goto(f"/c/{SLUG}/trades/")
        trade_row = who_page.locator(f"#trade-{trade.pk}")
        expect(trade_row).to_contain_text("Confirmed 1.500 kWh")
        expect(trade_row).to_contain_text(side)
    save_screenshot(ben_page, "trades-phone-390")
    save_screenshot(page, "trades")
    page.goto("/dashboard/")
    page.wait_for_url(f"**/c/{SLUG}/dashboard/")
    expect(page.locator("main")).to_contain_text("My position per interval")
    save_screenshot(page, "dashboard")
    ben_context.close()
