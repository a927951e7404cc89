"""The home page in a real browser: it says what PeerGrid is and its links work."""

from __future__ import annotations

import pytest

from conftest import save_screenshot


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_home_page_in_chromium(page) -> None:
    page.goto("/")
    assert "Trade energy with your neighbours" in page.inner_text("h1")
    save_screenshot(page, "home")
    page.click("text=Sign in")
    page.wait_for_url("**/accounts/login/")
    assert page.locator("input[name=username]").is_visible()
