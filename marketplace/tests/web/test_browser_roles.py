"""Each role's main path in Debian's chromium, at desktop and phone width.

The demo community (``seed_demo``) with a day of a prosumer's history: a settled trade, a trade
the grid check curtailed, one with the grid. A prosumer, the manager and the regulator walk their
pages; every page is saved as a screenshot at 1280 px and 390 px, and fails the test if a text
sticks out of its card (or the page scrolls sideways) or the browser logs an error.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import save_screenshot
from marketplace.models import Community, Interval
from simulation.demo import DEMO_SLUG
from simulation.management.commands.seed_demo import DEMO_PASSWORD, demo_email

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Cards whose content must stay inside them; tables scroll inside their own .table-scroll.
CARDS = ".panel, .figure, .chart-card, .card, main, #content-main, .module"
OVERFLOW_JS = """(selector) => {
  const bad = [];
  if (document.documentElement.scrollWidth > window.innerWidth + 1) {
    bad.push(`page ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
  }
  for (const card of document.querySelectorAll(selector)) {
    if (card.closest('.table-scroll, .table-wrap')) continue;
    const style = getComputedStyle(card);
    if (style.overflowX === 'auto' || style.overflowX === 'scroll') continue;
    if (card.scrollWidth > card.clientWidth + 1) {
      const name = `${card.tagName.toLowerCase()}.${card.className}`;
      bad.push(`${name} ${card.scrollWidth} > ${card.clientWidth}`);
    }
  }
  return bad;
}"""


def _sign_in(page: Any, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def _check(page: Any, errors: list[str], name: str) -> None:
    """Screenshots at both widths; nothing sticks out of its card; no error in the console."""
    for label, size in (("desktop", DESKTOP), ("phone-390", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)
        save_screenshot(page, f"{name}-{label}")
        overflowing = page.evaluate(OVERFLOW_JS, CARDS)
        assert overflowing == [], f"{name} at {label}: {overflowing}"
    page.set_viewport_size(DESKTOP)
    assert errors == [], f"{name}: console errors {errors}"


def _new_page(browser: Any, live_server: Any) -> tuple[Any, list[str]]:
    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Which resource failed: the console only says that one did.
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return page, errors


@pytest.mark.browser
def test_a_prosumer_reads_money_trades_history_and_notifications(
    browser: Any, live_server: Any, demo: tuple[Community, Interval]
) -> None:
    from playwright.sync_api import expect

    page, errors = _new_page(browser, live_server)
    _sign_in(page, demo_email("prosumer", 1))
    page.wait_for_url(f"**/c/{DEMO_SLUG}/dashboard/")
    expect(page.locator("#money-summary")).to_contain_text("EUR")
    expect(page.locator(".bell .count")).to_be_visible()
    _check(page, errors, "prosumer-dashboard")

    page.goto(f"/c/{DEMO_SLUG}/trades/")
    row = page.locator(".trades tbody tr", has_text="Curtailed 1.200 kWh")
    expect(row).to_contain_text("local transformer would have been overloaded")
    expect(row.locator("details.technical")).not_to_have_attribute("open", "")
    row.locator("details.technical summary").click()
    expect(row.locator("details.technical")).to_contain_text("sensitivity 0.266")
    expect(page.locator("main")).to_contain_text("21.00 ct/kWh")
    _check(page, errors, "prosumer-trades")

    page.goto(f"/c/{DEMO_SLUG}/history/")
    expect(page.locator("main")).to_contain_text("Last 12 months")
    _check(page, errors, "prosumer-history")

    page.goto(f"/c/{DEMO_SLUG}/board/")
    expect(page.locator("#posting-form")).to_be_visible()
    _check(page, errors, "prosumer-board")

    page.goto(f"/ledger/statements/{DEMO_SLUG}/")
    page.locator("main ul a").first.click()
    expect(page.locator("table.statement")).to_be_visible()
    _check(page, errors, "prosumer-statement")

    page.locator(".bell").click()
    expect(page.locator("main")).to_contain_text("was curtailed")
    _check(page, errors, "prosumer-notifications")
    page.locator(".notifications li", has_text="was curtailed").locator("button").click()
    page.wait_for_url(f"**/c/{DEMO_SLUG}/trades/**")
    page.goto("/help/glossary/")
    _check(page, errors, "glossary")


@pytest.mark.browser
def test_the_regulator_lands_on_the_dashboards(
    browser: Any, live_server: Any, demo: tuple[Community, Interval]
) -> None:
    from playwright.sync_api import expect

    page, errors = _new_page(browser, live_server)
    _sign_in(page, demo_email("regulator"))
    page.wait_for_url("**/regulator/**")
    nav = page.locator(".topbar nav")
    expect(nav).to_contain_text("Dashboards")
    expect(nav).not_to_contain_text("Board")
    _check(page, errors, "regulator-prices")
    page.locator(".oversight .tabs a").nth(1).click()
    page.wait_for_load_state()
    _check(page, errors, "regulator-second-dashboard")
    # A prosumer's short link leads a regulator back to the dashboards.
    page.goto("/dashboard/")
    page.wait_for_url("**/regulator/**")


@pytest.mark.browser
def test_the_manager_runs_the_community_in_the_admin(
    browser: Any, live_server: Any, demo: tuple[Community, Interval]
) -> None:
    from playwright.sync_api import expect

    community, curtailed = demo
    page, errors = _new_page(browser, live_server)
    _sign_in(page, demo_email("manager"))
    page.wait_for_url("**/admin/")
    expect(page.locator("#user-tools")).to_contain_text("Times in Europe/Berlin")
    _check(page, errors, "manager-admin-home")
    page.goto(f"/admin/marketplace/marketrules/edit/{community.pk}/")
    expect(page.locator("#content form")).to_be_visible()
    _check(page, errors, "manager-market-rules")
    page.goto(f"/admin/marketplace/interval/{curtailed.pk}/change/")
    _check(page, errors, "manager-interval")
    page.goto("/admin/grid/gridmodel/")
    _check(page, errors, "manager-grid-models")
