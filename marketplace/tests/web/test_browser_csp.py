"""Every main page in Debian's chromium with the Content-Security-Policy enforced.

The policy (config/settings.py) allows no inline script, style or eval. Each page is opened with
a listener for ``securitypolicyviolation`` (added before any of the page's own code runs) and a
watch on the console; any violation or "Refused to ..." message fails the test, as does a page
without the header. On the way it checks that what the policy could break still works: the
charts are drawn, the board's forms and the dashboard's refresh go through htmx, and the
countdowns tick.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from accounts.models import Membership
from conftest import save_screenshot
from marketplace.models import Community, Interval, Posting, PostingStatus
from marketplace.services.rules import current_rules
from simulation.demo import DEMO_SLUG
from simulation.management.commands.seed_demo import DEMO_PASSWORD, demo_email

C = f"/c/{DEMO_SLUG}"
LISTEN = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCsp(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile}:${event.lineNumber} (${event.sample})`);
});
"""


class Watched:
    """A browser page whose every policy violation and console error is collected."""

    def __init__(self, browser: Any, live_server: Any) -> None:
        self.context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1280, "height": 900}
        )
        self.context.set_default_timeout(15_000)
        self.problems: list[str] = []
        self.context.expose_binding(
            "__reportCsp", lambda source, text: self.problems.append(f"violation: {text}")
        )
        self.context.add_init_script(LISTEN)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(f"console {message.type}: {message.text}")

    def visit(self, path: str) -> Any:
        response = self.page.goto(path)
        assert response is not None
        assert response.status < 400, f"{path}: {response.status}"
        policy = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy, f"{path} has no policy: {policy!r}"
        self.page.wait_for_load_state("networkidle")
        return response

    def settle(self, where: str) -> None:
        """No violation or console error so far; the listener was on this page too."""
        self.page.wait_for_timeout(200)  # a late violation event is delivered asynchronously
        assert self.page.evaluate("typeof window.__reportCsp") == "function", where
        assert self.problems == [], f"{where}: {self.problems}"

    def forgive(self, text: str) -> None:
        """Drop the console's note of a status the test asked for (and only that)."""
        self.problems = [
            p for p in self.problems if not (p.startswith("console error") and text in p)
        ]

    def sign_in(self, email: str) -> None:
        self.visit("/accounts/login/")
        self.page.fill("input[name=username]", email)
        self.page.fill("input[name=password]", DEMO_PASSWORD)
        self.page.click("main button[type=submit]")
        self.page.wait_for_load_state()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any, live_server: Any) -> Any:
    opened: list[Watched] = []

    def open_one() -> Watched:
        opened.append(Watched(browser, live_server))
        return opened[-1]

    yield open_one
    for one in opened:
        one.close()


@pytest.mark.browser
def test_every_main_page_runs_under_the_policy(
    watched: Any, demo: tuple[Community, Interval]
) -> None:
    """One demo community (seeding it is most of the time) for the three roles' pages."""
    _a_prosumers_pages(watched, demo)
    _the_regulators_dashboards(watched)
    _the_admin(watched, demo)


def _a_prosumers_pages(watched: Any, demo: tuple[Community, Interval]) -> None:
    from playwright.sync_api import expect

    community, _ = demo
    w = watched()
    page = w.page
    page.clock.install()  # so the countdown and the refresh can be moved on, not waited for
    w.sign_in(demo_email("prosumer", 1))
    page.wait_for_url(f"**{C}/dashboard/")
    w.visit(f"{C}/dashboard/")
    expect(page.locator("#dashboard-live svg").first).to_be_visible()
    countdown = page.locator("#dashboard-live time[data-countdown]").first
    before = countdown.inner_text()
    assert before.startswith("gate closes in")
    # The dashboard refreshes itself through htmx (every 15 s) and the countdown ticks.
    with page.expect_response(
        lambda r: r.url.endswith(f"{C}/dashboard/") and r.request.headers.get("hx-request")
    ) as refresh:
        page.clock.run_for(16_000)
    assert refresh.value.status == 200
    expect(page.locator("#dashboard-live time[data-countdown]").first).not_to_have_text(before)
    w.settle("dashboard")

    w.visit(f"{C}/board/")
    expect(page.locator("#board-main time[data-countdown]").first).to_be_visible()
    rules = current_rules(community)
    page.evaluate("window.__sameDocument = true")
    page.fill("#id_quantity_kwh", "0.5")
    page.fill("#id_limit_price_per_kwh", str(rules.price_cap + 1))
    page.click("#posting-form button[type=submit]")
    expect(page.locator("#id_limit_price_per_kwh_errors")).to_contain_text("between the floor")
    w.forgive("status of 400")  # the refusal asked for: the console notes its status
    page.fill("#id_limit_price_per_kwh", str(rules.price_cap))
    page.click("#posting-form button[type=submit]")
    expect(page.locator("#board-main .messages")).to_contain_text("is on the board")
    assert page.evaluate("window.__sameDocument") is True  # swapped by htmx, not reloaded
    expect(page.locator(".depth svg").first).to_be_visible()
    w.settle("board")

    # An order clearing left out (what clearing writes; its own tests make it happen) shows on
    # My trades with the reason, and clearing's words behind a click.
    _, curtailed = demo
    one = Membership.objects.get(user__email=demo_email("prosumer", 1), community=community)
    excluded = Posting.objects.create(
        interval=curtailed, membership=one, meter_point=one.meter_points.order_by("pk")[0],
        side="sell", quantity_kwh=Decimal("1.250"), limit_price_per_kwh=Decimal("0.1500"),
        status=PostingStatus.EXCLUDED,
        exclusion_reason="Its meter point is not approved by the community manager.",
    )  # fmt: skip
    w.visit(f"{C}/trades/")
    row = page.locator(f"#excluded-{excluded.pk}")
    expect(row).to_contain_text("excluded")
    expect(row).to_contain_text("was not approved by your community's manager")
    row.locator("details.technical summary").click()
    expect(row.locator("details.technical")).to_contain_text("Its meter point is not approved")
    save_screenshot(page, "trades-excluded")
    w.settle("trades with an excluded order")

    for path, visible in (
        (f"{C}/trades/", ".trades"),
        (f"{C}/history/", "main svg"),
        (f"{C}/autopilot/", "main form"),
        ("/accounts/", "main table"),
        ("/accounts/meter-points/", "main table"),
        ("/accounts/tokens/", "main form"),
        ("/notifications/", ".notifications"),
        ("/notifications/settings/", "main form"),
        (f"/ledger/statements/{DEMO_SLUG}/", "main ul a"),
        ("/help/glossary/", "main h1"),
        ("/api/docs/", "#swagger-ui .info"),
        # The API answers JSON in a browser too (it has no HTML renderer), with the policy.
        ("/api/v1/me/", "text=prosumer01@peergrid.local"),
    ):
        w.visit(path)
        expect(page.locator(visible).first).to_be_visible()
        w.settle(path)
    # Redoc's bundle fetches its maker's logo from the internet; the policy refuses exactly that
    # (the page hides the image when it fails) and nothing else.
    w.visit("/api/redoc/")
    expect(page.locator("redoc h1").first).to_contain_text("PeerGrid API")
    page.locator("redoc input[placeholder]").first.fill("postings")  # the search worker
    expect(page.locator("redoc [role=search] li, redoc .search-result").first).to_be_visible()
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    blocked = [p for p in w.problems if logo in p]
    assert blocked, "Redoc's external logo was not refused"
    w.problems = [p for p in w.problems if logo not in p]
    w.settle("/api/redoc/")
    w.visit(f"/ledger/statements/{DEMO_SLUG}/")
    page.locator("main ul a").first.click()
    expect(page.locator("table.statement")).to_be_visible()
    w.settle("statement")
    missing = page.goto("/no-such-page/")
    assert missing is not None
    assert missing.status == 404
    assert "default-src 'self'" in missing.headers["content-security-policy"]
    w.forgive("status of 404")  # the console notes the page's status
    w.settle("404 page")


def _the_regulators_dashboards(watched: Any) -> None:
    from playwright.sync_api import expect

    w = watched()
    w.sign_in(demo_email("regulator"))
    w.page.wait_for_url("**/regulator/**")
    tabs = w.page.locator(".oversight .tabs a")
    paths = [tabs.nth(i).get_attribute("href") for i in range(tabs.count())]
    assert len(paths) >= 4
    for path in paths:
        assert path is not None
        w.visit(path)
        expect(w.page.locator("main svg.chart").first).to_be_visible()
        w.settle(path)


def _the_admin(watched: Any, demo: tuple[Community, Interval]) -> None:
    from playwright.sync_api import expect

    community, curtailed = demo
    w = watched()
    w.sign_in(demo_email("manager"))
    w.page.wait_for_url("**/admin/")
    for path in (
        "/admin/",
        f"/admin/marketplace/marketrules/edit/{community.pk}/",
        f"/admin/marketplace/interval/{curtailed.pk}/change/",
        "/admin/marketplace/interval/",
        f"/admin/grid/gridmodel/community/{community.pk}/",
        "/admin/accounts/meterpoint/",
    ):
        w.visit(path)
        expect(w.page.locator("#content")).to_be_visible()
        w.settle(path)
    # A change page with the admin's own scripts (date pickers, related-object widgets).
    w.page.locator("#result_list tbody a").first.click()
    w.page.wait_for_load_state("networkidle")
    expect(w.page.locator("#content form")).to_be_visible()
    w.settle("meter point change page")
    operator = watched()
    operator.sign_in(demo_email("admin"))
    operator.visit("/admin/accounts/user/")
    operator.page.locator("#result_list tbody a").first.click()
    operator.page.wait_for_load_state("networkidle")
    expect(operator.page.locator("#content form")).to_be_visible()
    operator.page.locator("#changelist-filter, #content").first.wait_for()
    operator.settle("user change page")
