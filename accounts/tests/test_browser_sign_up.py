"""The whole sign-up in Debian's chromium, with the Content-Security-Policy enforced.

A taken and a free address get the same page; each mailbox gets its own mail; the existing
account's mail leads to its password reset; the new address's link leads to the account, a
weak password is refused next to its field, and the used link then says so.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail

from accounts.tests import factories
from conftest import save_screenshot
from marketplace.tests.web.test_browser_csp import Watched

PASSWORD = "Sunny-roof-2026!"


def _path(body: str, prefix: str) -> str:
    match = re.search(rf"https?://[^/\s]+({prefix}\S+/)", body)
    assert match, body
    return match.group(1)


def _mail_to(email: str) -> Any:
    (message,) = [m for m in mail.outbox if m.to == [email]]
    return message


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_sign_up_in_the_browser(browser: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    factories.UserFactory.create(email="ada@example.test")
    w = Watched(browser, live_server)
    page = w.page
    answers = []
    for email in ("ada@example.test", "bea@example.test"):
        w.visit("/accounts/signup/")
        page.fill("#id_email", email)
        page.click("main button[type=submit]")
        page.wait_for_url("**/accounts/signup/sent/")
        answers.append(page.inner_text("main"))
    assert answers[0] == answers[1]
    assert "Check your email" in answers[0]
    save_screenshot(page, "sign-up-sent")
    w.settle("sign-up")

    # The owner of the taken address is told, and can reset the password from the mail.
    existing = _mail_to("ada@example.test")
    assert "already has" in existing.body
    w.visit(_path(existing.body, "/accounts/password/reset/"))
    expect(page.locator("#id_new_password1")).to_be_visible()
    w.settle("password reset from the mail")

    # The new address's link makes the account.
    link = _path(_mail_to("bea@example.test").body, "/accounts/signup/confirm/")
    w.visit(link)
    expect(page.locator("main")).to_contain_text("bea@example.test")
    page.fill("#id_display_name", "Bea Example")
    page.fill("#id_password1", "short")
    page.fill("#id_password2", "short")
    page.click("main button[type=submit]")
    expect(page.locator("#id_password1_errors")).to_contain_text("too short")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/")
    expect(page.locator(".messages")).to_contain_text("Your account is ready")
    expect(page.locator(".topbar")).to_contain_text("bea@example.test")
    save_screenshot(page, "sign-up-done")
    page.click("text=Sign out")
    page.wait_for_load_state()

    # The link worked once.
    response = page.goto(link)
    assert response is not None
    assert response.status == 400
    expect(page.locator("main h1")).to_contain_text("This link was used already")
    w.forgive("status of 400")
    w.settle("used link")

    # And the account signs in with the password chosen on the link's page.
    w.visit("/accounts/login/")
    page.fill("input[name=username]", "bea@example.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    expect(page.locator(".topbar")).to_contain_text("bea@example.test")
    w.settle("sign-in")
    w.close()
