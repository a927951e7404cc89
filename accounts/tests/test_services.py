"""Services: sign-up, membership decisions, meter points, tokens, regulator role; bad input."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken, AuditEvent, MembershipStatus
from accounts.tests import factories
from accounts.tests.conftest import World
from accounts.tokens import token_digest
from config.errors import ApplicationError, ErrorCode

pytestmark = pytest.mark.django_db


def test_user_create_lowercases_email_and_checks_password() -> None:
    user = services.user_create(email="Ada@Example.TEST", password=factories.PASSWORD)
    assert user.email == "ada@example.test"
    assert user.check_password(factories.PASSWORD)


def test_user_create_duplicate_email_is_a_clear_error_on_email() -> None:
    services.user_create(email="ada@example.test", password=factories.PASSWORD)
    with pytest.raises(ApplicationError) as error:
        services.user_create(email="ADA@example.test", password=factories.PASSWORD)
    assert error.value.code == ErrorCode.DUPLICATE
    assert error.value.field == "email"
    assert "already exists" in error.value.message


@pytest.mark.parametrize(
    ("password", "fragment"),
    [("short1", "too short"), ("password123", "too common"), ("8675309912", "entirely numeric")],
)
def test_user_create_weak_password_is_an_error_on_password(password: str, fragment: str) -> None:
    with pytest.raises(ApplicationError) as error:
        services.user_create(email="bob@example.test", password=password)
    assert error.value.field == "password"
    assert fragment in error.value.message


def test_user_create_invalid_email() -> None:
    with pytest.raises(ApplicationError) as error:
        services.user_create(email="not-an-email", password=factories.PASSWORD)
    assert error.value.field == "email"


def test_reject_needs_a_reason_and_is_audited(world: World) -> None:
    with pytest.raises(ApplicationError) as error:
        services.membership_reject(
            membership=world.pending_membership, decided_by=world.manager, reason="  "
        )
    assert (error.value.code, error.value.field) == (ErrorCode.REQUIRED, "reason")
    services.membership_reject(
        membership=world.pending_membership, decided_by=world.manager, reason="not in the area"
    )
    world.pending_membership.refresh_from_db()
    assert world.pending_membership.status == MembershipStatus.REJECTED
    event = AuditEvent.objects.get(kind="membership.rejected")
    assert event.actor == world.manager
    assert event.detail["reason"] == "not in the area"


def test_suspend_needs_a_reason_and_reinstate_keeps_pseudonym(world: World) -> None:
    with pytest.raises(ApplicationError) as error:
        services.membership_suspend(
            membership=world.membership, decided_by=world.manager, reason=""
        )
    assert error.value.field == "reason"
    pseudonym = world.membership.pseudonym
    services.membership_suspend(
        membership=world.membership, decided_by=world.manager, reason="meter tampering"
    )
    membership = services.membership_reinstate(
        membership=world.membership, decided_by=world.manager
    )
    assert membership.status == MembershipStatus.APPROVED
    assert membership.pseudonym == pseudonym
    kinds = set(AuditEvent.objects.values_list("kind", flat=True))
    assert {"membership.suspended", "membership.reinstated"} <= kinds


@pytest.mark.parametrize("actor", ["other_manager", "prosumer", "regulator"])
def test_only_the_communitys_managers_decide(world: World, actor: str) -> None:
    with pytest.raises(ApplicationError) as error:
        services.membership_approve(
            membership=world.pending_membership, decided_by=getattr(world, actor)
        )
    assert error.value.code == ErrorCode.PERMISSION_DENIED
    world.pending_membership.refresh_from_db()
    assert world.pending_membership.status == MembershipStatus.PENDING


def test_superuser_may_decide_anywhere(world: World) -> None:
    membership = services.membership_approve(
        membership=world.pending_membership, decided_by=world.superuser
    )
    assert membership.status == MembershipStatus.APPROVED
    assert membership.pseudonym


def test_invalid_transition_is_refused(world: World) -> None:
    with pytest.raises(ApplicationError) as error:
        services.membership_reinstate(membership=world.membership, decided_by=world.manager)
    assert error.value.code == ErrorCode.INVALID_STATE


def test_rejected_applicant_may_ask_again(world: World) -> None:
    services.membership_reject(
        membership=world.pending_membership, decided_by=world.manager, reason="incomplete"
    )
    again = services.membership_request(user=world.pending, community=world.community)
    assert again.pk == world.pending_membership.pk
    assert again.status == MembershipStatus.PENDING


def test_asking_twice_is_a_clear_error(world: World) -> None:
    with pytest.raises(ApplicationError) as error:
        services.membership_request(user=world.prosumer, community=world.community)
    assert (error.value.code, error.value.field) == (ErrorCode.ALREADY_MEMBER, "community")


@pytest.mark.parametrize("capacity", [Decimal("0"), Decimal("-1")])
@pytest.mark.parametrize("field", ["import_capacity_kw", "export_capacity_kw"])
def test_meter_point_capacity_must_be_positive(world: World, field: str, capacity: Decimal) -> None:
    with pytest.raises(ApplicationError) as error:
        factories.meter_point_for(world.membership, **{field: capacity})
    assert error.value.field == field
    assert "greater than 0 kW" in error.value.message


def test_meter_point_needs_approved_membership(world: World) -> None:
    with pytest.raises(ApplicationError) as error:
        factories.meter_point_for(world.pending_membership)
    assert error.value.code == ErrorCode.NOT_APPROVED


def test_meter_point_only_for_own_membership(world: World) -> None:
    with pytest.raises(ApplicationError) as error:
        factories.meter_point_for(world.membership, registered_by=world.other_prosumer)
    assert error.value.code == ErrorCode.PERMISSION_DENIED


def test_meter_point_update(world: World) -> None:
    updated = services.meter_point_update(
        meter_point=world.meter_point, updated_by=world.prosumer, battery_kwh=Decimal("13.5")
    )
    assert updated.battery_kwh == Decimal("13.5")
    with pytest.raises(ApplicationError) as error:
        services.meter_point_update(
            meter_point=world.meter_point, updated_by=world.prosumer, import_capacity_kw=0
        )
    assert error.value.field == "import_capacity_kw"
    with pytest.raises(ApplicationError) as error:
        services.meter_point_update(
            meter_point=world.meter_point, updated_by=world.other_prosumer, label="mine now"
        )
    assert error.value.code == ErrorCode.PERMISSION_DENIED


def test_assign_bus_checks_the_grid_model_and_the_manager(world: World) -> None:
    with pytest.raises(ApplicationError) as error:
        services.meter_point_assign_bus(
            meter_point=world.meter_point, bus=99, assigned_by=world.manager
        )
    assert (error.value.code, error.value.field) == (ErrorCode.UNKNOWN_BUS, "bus")
    with pytest.raises(ApplicationError) as error:
        services.meter_point_assign_bus(
            meter_point=world.meter_point, bus=2, assigned_by=world.other_manager
        )
    assert error.value.code == ErrorCode.PERMISSION_DENIED
    meter_point = services.meter_point_assign_bus(
        meter_point=world.meter_point, bus=2, assigned_by=world.manager
    )
    assert meter_point.bus == 2


def test_token_is_stored_hashed_and_returned_once(world: World) -> None:
    token, raw = services.api_token_create(
        user=world.prosumer, name="battery", scopes=["trade", "read", "read"]
    )
    assert raw.startswith("pgt_")
    assert token.digest == token_digest(raw)
    assert raw not in {token.digest, token.prefix}
    assert raw.startswith(token.prefix)
    assert token.scopes == ["read", "trade"]
    assert AuditEvent.objects.filter(kind="api_token.created", detail__token=token.pk).exists()


@pytest.mark.parametrize(
    ("scopes", "code"),
    [
        ([], ErrorCode.REQUIRED),
        (["admin"], ErrorCode.UNKNOWN_CHOICE),
        (["manage"], ErrorCode.PERMISSION_DENIED),
    ],
)
def test_token_scopes_are_validated(world: World, scopes: list[str], code: ErrorCode) -> None:
    with pytest.raises(ApplicationError) as error:
        services.api_token_create(user=world.prosumer, name="x", scopes=scopes)
    assert (error.value.code, error.value.field) == (code, "scopes")


def test_manage_scope_for_managers(world: World) -> None:
    token, _ = services.api_token_create(user=world.manager, name="ops", scopes=["manage"])
    assert token.scopes == ["manage"]


def test_token_expiry_must_be_in_the_future(world: World) -> None:
    with pytest.raises(ApplicationError) as error:
        services.api_token_create(
            user=world.prosumer,
            name="x",
            scopes=["read"],
            expires_at=timezone.now() - dt.timedelta(minutes=1),
        )
    assert error.value.field == "expires_at"


def test_token_revoke_only_by_owner_or_operator(world: World) -> None:
    token = world.token_objects["read"]
    with pytest.raises(ApplicationError):
        services.api_token_revoke(token=token, revoked_by=world.manager)
    services.api_token_revoke(token=token, revoked_by=world.prosumer)
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_regulator_grant_is_superuser_only_and_audited(world: World) -> None:
    with pytest.raises(ApplicationError) as error:
        services.regulator_grant(user=world.prosumer, granted_by=world.manager)
    assert error.value.code == ErrorCode.PERMISSION_DENIED
    user = services.regulator_grant(user=world.prosumer, granted_by=world.superuser)
    assert user.is_regulator
    assert AuditEvent.objects.filter(kind="user.regulator_granted", actor=world.superuser).exists()
    assert not services.regulator_revoke(user=user, revoked_by=world.superuser).is_regulator


@pytest.mark.parametrize("scopes", [["trade"], ["read", "trade"], ["meter"], ["manage"]])
def test_a_regulator_cannot_hold_a_trading_scope(world: World, scopes: list[str]) -> None:
    with pytest.raises(ApplicationError) as error:
        services.api_token_create(user=world.regulator, name="x", scopes=scopes)
    assert (error.value.code, error.value.field) == (ErrorCode.PERMISSION_DENIED, "scopes")
    assert not ApiToken.objects.filter(user=world.regulator).exists()
    token, _raw = services.api_token_create(user=world.regulator, name="read", scopes=["read"])
    assert token.scopes == ["read"]


def test_a_regulator_token_given_trade_in_the_database_still_cannot_trade(world: World) -> None:
    from rest_framework.test import APIClient

    token, raw = services.api_token_create(user=world.regulator, name="read", scopes=["read"])
    ApiToken.objects.filter(pk=token.pk).update(scopes=["read", "trade", "meter"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.post("/api/v1/postings/", {}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    session = APIClient()
    session.force_login(world.regulator)
    assert session.post("/api/v1/postings/", {}, format="json").status_code == 403
    page = Client()
    page.force_login(world.regulator)
    refused = page.post(
        reverse("accounts:api_tokens"), {"name": "bot", "scopes": ["trade"], "expires_in_days": 30}
    )
    assert refused.status_code == 400
    assert ApiToken.objects.filter(user=world.regulator).count() == 1
