"""The Content-Security-Policy: on every kind of response, as strict as the pages allow.

The browser test (marketplace/tests/web/test_browser_csp.py) proves the pages run under it;
these prove every response carries it and that nothing in the templates needs more.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client

from accounts.tests import factories

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def _directives(response: Any) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    pairs = (part.strip().partition(" ") for part in header.split(";") if part.strip())
    return {name: value.strip() for name, _, value in pairs}


def assert_strict(response: Any) -> None:
    assert "Content-Security-Policy" in response, f"{response.status_code} without a policy"
    directives = _directives(response)
    for name, value in REQUIRED.items():
        assert directives.get(name) == value, f"{name}: {directives.get(name)!r}"
    header = response["Content-Security-Policy"]
    assert "unsafe-inline" not in header
    assert "unsafe-eval" not in header


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/help/glossary/", "/accounts/login/", "/accounts/signup/"])
def test_public_pages_carry_the_policy(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert_strict(response)


@pytest.mark.django_db
def test_a_members_page_the_admin_and_the_api_carry_it(client: Client) -> None:
    membership = factories.member_of(factories.CommunityFactory.create(slug="sonnenfeld"))
    client.force_login(membership.user)
    assert_strict(client.get("/c/sonnenfeld/dashboard/"))
    operator = factories.UserFactory.create(is_staff=True, is_superuser=True)
    client.force_login(operator)
    for path in ("/admin/", "/admin/accounts/user/", f"/admin/accounts/user/{operator.pk}/change/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_strict(response)
    api = client.get("/api/v1/me/")
    assert api.status_code == 200
    assert api["Content-Type"].startswith("application/json")
    assert_strict(api)


@pytest.mark.django_db
def test_api_errors_carry_it(client: Client) -> None:
    for path, status in (("/api/v1/me/", 403), ("/api/v1/no-such-thing/", 404)):
        response = client.get(path)
        assert response.status_code in {status, 401}, path
        assert response["Content-Type"].startswith("application/json")
        assert_strict(response)


def test_the_icon_browsers_ask_for_is_there(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith("favicon.svg")


@pytest.mark.django_db
def test_a_missing_page_is_styled_and_carries_it(client: Client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"This page does not exist" in response.content
    assert_strict(response)


@pytest.mark.django_db
@pytest.mark.urls("config.tests.urls_failing")
def test_a_server_error_page_and_api_error_carry_it() -> None:
    client = Client(raise_request_exception=False)
    page = client.get("/failing/")
    assert page.status_code == 500
    assert b"Something went wrong on our side" in page.content
    assert_strict(page)
    api = client.get("/api/v1/failing/")
    assert api.status_code == 500
    assert api.json()["code"] == "server_error"
    assert_strict(api)


@pytest.mark.django_db
def test_the_api_documentation_needs_no_inline_script(client: Client) -> None:
    operator = factories.UserFactory.create(is_staff=True, is_superuser=True)
    client.force_login(operator)
    for path in ("/api/docs/", "/api/redoc/"):
        response = client.get(path)
        assert response.status_code == 200
        assert "unsafe-inline" not in response["Content-Security-Policy"].split("script-src")[1]
        html = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert "<style" not in html
        assert "fonts.googleapis" not in html
    script = client.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


# --- Nothing in the templates needs more than the policy allows ---------------------------
INLINE = {
    "an inline style attribute": re.compile(r"\sstyle\s*=", re.I),
    "a <style> element": re.compile(r"<style[\s>]", re.I),
    "an inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "an event-handler attribute": re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
    "htmx code (hx-on, js: values, trigger filters)": re.compile(
        r"hx-on|hx-vals=['\"]js:|hx-trigger=\"[^\"]*\[", re.I
    ),
}


def _offences(text: str) -> list[str]:
    return [what for what, pattern in INLINE.items() if pattern.search(text)]


def test_no_template_needs_inline_code_or_style() -> None:
    templates = sorted((ROOT / "templates").rglob("*.html"))
    assert len(templates) > 40
    found = {
        str(path.relative_to(ROOT)): offences
        for path in templates
        if (offences := _offences(path.read_text()))
    }
    assert found == {}


def test_the_template_scan_finds_each_kind() -> None:
    """The scan above is not vacuous."""
    assert _offences('<div style="margin:0">') == ["an inline style attribute"]
    assert _offences("<style>p{}</style>") == ["a <style> element"]
    assert _offences("<script>alert(1)</script>") == ["an inline script"]
    assert _offences('<script src="/x.js"></script>') == []
    assert _offences('<button onclick="go()">') == ["an event-handler attribute"]
    assert _offences('<div hx-trigger="every 5s [ok()]">') == [
        "htmx code (hx-on, js: values, trigger filters)"
    ]


def test_no_model_admin_makes_django_write_its_inline_style() -> None:
    """Django's change list writes a <style> element when both action bars are off."""
    for model_admin in admin.site._registry.values():
        assert model_admin.actions_on_top or model_admin.actions_on_bottom, model_admin
