"""Pages (forms and their errors), admin scoping and actions, and the create_api_token command."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts.models import (
    ApiToken,
    AuditEvent,
    Membership,
    MembershipStatus,
    MeterPoint,
    MeterPointStatus,
)
from accounts.tests import factories
from accounts.tests.conftest import World
from accounts.tokens import token_digest

pytestmark = pytest.mark.django_db


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    return client


# --- pages -------------------------------------------------------------------------------------
def test_join_and_account_page(world: World) -> None:
    user = factories.UserFactory.create()
    client = _client(user)
    response = client.post(reverse("accounts:join"), {"community": world.community.pk})
    assert response.status_code == 302
    page = client.get(reverse("accounts:account")).content.decode()
    assert "Sonnenfeld" in page
    assert "Pending approval" in page


def test_register_meter_point_page_shows_service_errors(world: World) -> None:
    client = _client(world.prosumer)
    data = {
        "membership": world.membership.pk,
        "label": "Garage",
        "import_capacity_kw": "0",
        "export_capacity_kw": "5",
    }
    response = client.post(reverse("accounts:meter_points"), data)
    assert response.status_code == 400
    assert "Capacity must be greater than 0 kW." in response.content.decode()
    data["import_capacity_kw"] = "11"
    assert client.post(reverse("accounts:meter_points"), data).status_code == 302
    assert MeterPoint.objects.filter(label="Garage", membership=world.membership).exists()


def test_cannot_register_on_someone_elses_membership(world: World) -> None:
    client = _client(world.prosumer)
    data = {
        "membership": world.other_membership.pk,
        "label": "Sneaky",
        "import_capacity_kw": "1",
        "export_capacity_kw": "1",
    }
    response = client.post(reverse("accounts:meter_points"), data)
    assert response.status_code == 400
    assert not MeterPoint.objects.filter(label="Sneaky").exists()


def test_token_page_shows_the_token_once(world: World) -> None:
    client = _client(world.prosumer)
    response = client.post(
        reverse("accounts:api_tokens"), {"name": "home manager", "scopes": ["read", "meter"]}
    )
    assert response.status_code == 200
    content = response.content.decode()
    start = content.index(">", content.index('id="new-token"')) + 1
    raw = content[start : content.index("</code>", start)]
    token = ApiToken.objects.get(digest=token_digest(raw))
    assert token.scopes == ["meter", "read"]
    assert raw not in client.get(reverse("accounts:api_tokens")).content.decode()


def test_token_page_offers_manage_only_to_managers(world: World) -> None:
    response = _client(world.prosumer).post(
        reverse("accounts:api_tokens"), {"name": "x", "scopes": ["manage"]}
    )
    assert response.status_code == 400
    assert "manage is not one of the available choices" in response.content.decode()


def test_password_reset_sends_a_console_email(world: World) -> None:
    response = Client().post(reverse("accounts:password_reset"), {"email": world.prosumer.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/" in mail.outbox[0].body


def test_password_reset_mails_are_rate_limited_per_address_and_ip(world: World) -> None:
    url = reverse("accounts:password_reset")
    for _ in range(5):  # one address, many requests: three mails an hour
        response = Client().post(url, {"email": world.prosumer.email}, REMOTE_ADDR="10.3.0.1")
        assert response.status_code == 302  # always the same "check your mail" page
        assert response["Location"] == reverse("accounts:password_reset_done")
    assert len(mail.outbox) == 3
    # One IP mailing many addresses: ten requests an hour, known addresses or not.
    mail.outbox.clear()
    addresses = [world.manager.email, world.other_prosumer.email] + [
        f"nobody{n}@example.test" for n in range(12)
    ]
    for address in addresses:
        response = Client().post(url, {"email": address}, REMOTE_ADDR="10.3.0.2")
        assert response.status_code == 302
    assert len(mail.outbox) == 2  # both known addresses were among the first ten
    assert (
        Client().post(url, {"email": world.manager.email}, REMOTE_ADDR="10.3.0.2").status_code
        == 302
    )
    assert len(mail.outbox) == 2  # that IP has no mails left this hour


# --- admin scoping -------------------------------------------------------------------------------
def test_manager_lists_only_own_communitys_members(world: World) -> None:
    content = _client(world.manager).get(reverse("admin:accounts_membership_changelist")).content
    assert world.membership.pseudonym.encode() in content
    assert world.other_membership.pseudonym.encode() not in content


@pytest.mark.parametrize("view", ["change", "history"])
def test_manager_cannot_reach_another_communitys_membership_by_url(world: World, view: str) -> None:
    # The object is outside the manager's queryset: Django's admin answers "does not exist".
    url = reverse(f"admin:accounts_membership_{view}", args=[world.other_membership.pk])
    response = _client(world.manager).get(url)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@pytest.mark.parametrize("model", ["membership", "meterpoint"])
def test_manager_cannot_delete_by_url(world: World, model: str) -> None:
    # Managers hold no delete permission at all, so the admin refuses before looking the id up.
    other = world.other_membership if model == "membership" else world.other_meter_point
    url = reverse(f"admin:accounts_{model}_delete", args=[other.pk])
    assert _client(world.manager).get(url).status_code == 403


def test_manager_cannot_reach_another_communitys_meter_point_by_url(world: World) -> None:
    url = reverse("admin:accounts_meterpoint_change", args=[world.other_meter_point.pk])
    response = _client(world.manager).get(url)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_manager_sees_inline_rows_of_own_community_only(world: World) -> None:
    # Inlines build their rows' queryset before any object is known; managers must still see
    # their own community's members and meter points there.
    client = _client(world.manager)
    community_page = client.get(
        reverse("admin:marketplace_community_change", args=[world.community.pk])
    ).content.decode()
    assert world.membership.pseudonym in community_page
    assert world.other_membership.pseudonym not in community_page
    membership_page = client.get(
        reverse("admin:accounts_membership_change", args=[world.membership.pk])
    ).content.decode()
    assert world.meter_point.label in membership_page


def test_manager_cannot_delete_even_own_members(world: World) -> None:
    url = reverse("admin:accounts_membership_delete", args=[world.membership.pk])
    assert _client(world.manager).post(url, {"post": "yes"}).status_code == 403
    assert Membership.objects.filter(pk=world.membership.pk).exists()


def test_suspend_action_asks_for_a_reason_then_calls_the_service(world: World) -> None:
    client = _client(world.manager)
    url = reverse("admin:accounts_membership_changelist")
    selected = {"action": "suspend", ACTION_CHECKBOX_NAME: [world.membership.pk]}
    response = client.post(url, selected)
    assert response.status_code == 200
    assert b"Reason" in response.content
    response = client.post(url, {**selected, "apply": "1", "reason": ""})
    assert b"Give a reason" in response.content
    response = client.post(url, {**selected, "apply": "1", "reason": "meter tampering"})
    assert response.status_code == 302
    world.membership.refresh_from_db()
    assert world.membership.status == MembershipStatus.SUSPENDED
    assert AuditEvent.objects.filter(kind="membership.suspended", actor=world.manager).exists()


def test_action_on_another_communitys_member_does_nothing(world: World) -> None:
    client = _client(world.manager)
    client.post(
        reverse("admin:accounts_membership_changelist"),
        {
            "action": "suspend",
            ACTION_CHECKBOX_NAME: [world.other_membership.pk],
            "apply": "1",
            "reason": "x",
        },
    )
    world.other_membership.refresh_from_db()
    assert world.other_membership.status == MembershipStatus.APPROVED


def test_assign_bus_in_admin_offers_only_connection_buses(world: World) -> None:
    client = _client(world.manager)
    url = reverse("admin:accounts_meterpoint_change", args=[world.meter_point.pk])
    form = client.get(url).content.decode()
    assert "Bus 2" in form
    assert "Bus 7" not in form
    data = {
        "label": world.meter_point.label,
        "import_capacity_kw": "17",
        "export_capacity_kw": "10",
        "pv_kwp": "5",
        "battery_kwh": "0",
        "battery_kw": "0",
        "flexible_load_kw": "0",
        "bus": "7",
    }
    response = client.post(url, data)
    assert response.status_code == 200  # the form again, with the error
    assert "Select a valid choice" in response.content.decode()
    response = client.post(url, {**data, "bus": "2"})
    assert response.status_code == 302
    world.meter_point.refresh_from_db()
    assert world.meter_point.bus == 2


def test_the_manager_approves_a_meter_point_in_admin_with_capacities_and_bus(
    world: World,
) -> None:
    pending = factories.meter_point_for(world.membership, approve=False)
    pending.bus = None
    pending.save(update_fields=["bus"])
    client = _client(world.manager)
    listing = client.get(reverse("admin:accounts_meterpoint_changelist"), {"status": "pending"})
    assert pending.label in listing.content.decode()
    url = reverse("admin:accounts_meterpoint_change", args=[pending.pk])
    data = {
        "label": pending.label,
        "import_capacity_kw": "17",
        "export_capacity_kw": "45",
        "pv_kwp": "5",
        "battery_kwh": "0",
        "battery_kw": "0",
        "flexible_load_kw": "0",
        "bus": "",
        "approve": "on",
    }
    client.post(url, data, follow=True)
    pending.refresh_from_db()
    assert pending.status == MeterPointStatus.PENDING  # 45 kW is above the 30 kW maximum
    response = client.post(url, {**data, "export_capacity_kw": "9", "bus": "3"}, follow=True)
    assert "above this community" not in response.content.decode()
    pending.refresh_from_db()
    assert (pending.status, pending.bus, pending.export_capacity_kw) == (
        MeterPointStatus.APPROVED,
        3,
        Decimal("9"),
    )
    assert AuditEvent.objects.filter(kind="meter_point.approved").exists()


# --- create_api_token ---------------------------------------------------------------------------
def test_create_api_token_prints_only_the_token(world: World) -> None:
    out = StringIO()
    call_command(
        "create_api_token", "--user", world.prosumer.email, "--scopes", "read,trade", stdout=out
    )
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(digest=token_digest(raw))
    assert token.scopes == ["read", "trade"]
    assert token.user == world.prosumer


@pytest.mark.parametrize(
    ("email_attr", "scopes", "message"),
    [
        (None, "read", "No user with the email address"),
        ("prosumer", "read,fly", "Unknown scope fly"),
        ("prosumer", "manage", "only for community managers"),
    ],
)
def test_create_api_token_bad_input(
    world: World, email_attr: str | None, scopes: str, message: str
) -> None:
    email = getattr(world, email_attr).email if email_attr else "ghost@example.test"
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", "--user", email, "--scopes", scopes, stdout=StringIO())
