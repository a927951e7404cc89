"""Where each role lands, the 403 page, the glossary, offline API docs, a community added in the
admin, and the posting form keeping the interval and side after a post."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.services import community_manager_add
from marketplace.models import Community, MarketRules
from marketplace.tests.factories import Member
from marketplace.tests.web.conftest import client_for, form_token

pytestmark = pytest.mark.django_db


def _client(user: User) -> Any:
    client = Client()
    client.force_login(user)
    return client


def test_each_role_lands_where_it_works(community: Community, alice: Member) -> None:
    alice_client: Any = client_for(alice)
    regulator = User.objects.create_user("reg@roles.test", "pw", is_regulator=True)
    manager = User.objects.create_user("mgr@roles.test", "pw", is_staff=True)
    community_manager_add(user=manager, community=community, added_by=None)
    landing = reverse("landing")
    assert _client(regulator).get(landing).url == reverse("oversight:index")
    assert _client(manager).get(landing).url == reverse("admin:index")
    assert alice_client.get(landing).url == reverse("marketplace:dashboard_home")
    # A regulator following a prosumer link ends on the dashboards, not an empty page.
    assert _client(regulator).get(reverse("marketplace:dashboard_home")).url == reverse(
        "oversight:index"
    )
    page = _client(regulator).get(reverse("oversight:index"), follow=True).content.decode()
    assert "Dashboards" in page
    assert reverse("marketplace:board_home") not in page
    assert settings_redirect() == "landing"


def settings_redirect() -> str:
    from django.conf import settings

    return str(settings.LOGIN_REDIRECT_URL)


def test_a_refused_page_is_the_styled_403_with_the_reason(alice: Member) -> None:
    response = client_for(alice).get(reverse("oversight:index"), follow=True)
    text = response.content.decode()
    assert response.status_code == 403
    assert "You cannot open this page" in text
    assert "The dashboards are for regulators." in text
    assert "peergrid.css" in text  # the site's own page, not Django's bare one


def test_glossary_explains_the_words(client: Client) -> None:
    text = client.get(reverse("glossary")).content.decode()
    anchors = ("gate-closure", "curtailment", "system-strength", "losses", "imbalance")
    for anchor in (*anchors, "settlement", "savings"):
        assert f'id="{anchor}"' in text


def test_api_docs_load_nothing_from_the_internet(client: Client) -> None:
    for name in ("api-docs", "api-redoc"):
        text = client.get(reverse(name)).content.decode()
        assert "drf_spectacular_sidecar" in text
        assert "cdn." not in text
        assert "unpkg" not in text
        assert "jsdelivr" not in text


def test_a_community_added_in_the_admin_has_default_rules() -> None:
    operator = User.objects.create_superuser("op@roles.test", "pw")
    client = _client(operator)
    response = client.post(
        reverse("admin:marketplace_community_add"),
        {
            "name": "Neue Siedlung",
            "slug": "neue-siedlung",
            "timezone": "Europe/Berlin",
            "currency": "EUR",
            "description": "",
            "created_at_0": "2026-03-01",
            "created_at_1": "10:00:00",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    community = Community.objects.get(slug="neue-siedlung")
    assert MarketRules.objects.filter(community=community).count() == 1
    edit = client.get(reverse("admin:marketplace_marketrules_edit", args=[community.pk]))
    assert edit.status_code == 200


def test_after_posting_the_form_keeps_interval_and_side(
    community: Community, alice: Member, interval: Any, frozen: Any
) -> None:
    client = client_for(alice)
    url = reverse("marketplace:posting_new", args=[community.slug])
    response = client.post(
        url,
        {
            "side": "buy",
            "interval": interval.pk,
            "quantity_kwh": "1.5",
            "limit_price_per_kwh": "0.2500",
            "meter_point": alice.meter_point.pk,
            "form_token": form_token(),
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "1.500 kWh at 25.00 ct/kWh (0.2500 EUR/kWh)" in text
    assert re.search(r'value="buy"[^>]*checked', text)
    assert f'<option value="{interval.pk}" selected>' in text
