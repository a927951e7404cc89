"""The access layer: the caller's own object, or ObjectNotFoundError that looks the same whether
the object is someone else's or does not exist."""

from __future__ import annotations

import pytest

from accounts import access, permissions
from accounts.models import Membership, MeterPoint
from accounts.tests import factories
from accounts.tests.conftest import World
from config.errors import ErrorCode, ObjectNotFoundError

MISSING = 2**31 - 1


def _not_found(lookup: object) -> ObjectNotFoundError:
    with pytest.raises(ObjectNotFoundError) as refused:
        lookup()  # type: ignore[operator]
    assert refused.value.code == ErrorCode.NOT_FOUND
    return refused.value


def test_meter_point_is_the_callers_own(world: World) -> None:
    own = access.access_meter_point(world.prosumer, world.meter_point.pk)
    assert own == world.meter_point
    assert own.membership == world.membership  # loaded with it
    foreign = _not_found(
        lambda: access.access_meter_point(world.prosumer, world.other_meter_point.pk)
    )
    missing = _not_found(lambda: access.access_meter_point(world.prosumer, MISSING))
    assert (
        (foreign.message, foreign.field)
        == (missing.message, missing.field)
        == (
            "You have no meter point with this id.",
            "meter_point",
        )
    )
    # A manager reaches the members' meter points through the admin, not as their own.
    _not_found(lambda: access.access_meter_point(world.manager, world.meter_point.pk))


def test_meter_point_fields_equal_the_orms(world: World, django_assert_num_queries: object) -> None:
    # The lookup is hand-written SQL; every field must come back as the ORM would give it.
    with django_assert_num_queries(1):  # type: ignore[operator]
        own = access.access_meter_point(world.prosumer, world.meter_point.pk)
        membership = own.membership
    orm = MeterPoint.objects.select_related("membership").get(pk=world.meter_point.pk)
    for field in MeterPoint._meta.concrete_fields:
        assert getattr(own, field.attname) == getattr(orm, field.attname), field.name
    for field in Membership._meta.concrete_fields:
        assert getattr(membership, field.attname) == getattr(orm.membership, field.attname)


def test_meter_point_within_one_membership(world: World) -> None:
    second = factories.member_of(world.other_community, user=world.prosumer)
    elsewhere = factories.meter_point_for(second)
    assert access.access_meter_point(world.prosumer, elsewhere.pk, membership=second) == elsewhere
    _not_found(
        lambda: access.access_meter_point(world.prosumer, elsewhere.pk, membership=world.membership)
    )


def test_communities(world: World) -> None:
    slug = world.community.slug
    assert access.access_community(world.prosumer, slug) == world.community
    assert access.access_community(world.regulator, slug) == world.community
    _not_found(lambda: access.access_community(world.pending, slug))
    _not_found(lambda: access.access_community(world.prosumer, world.other_community.slug))
    _not_found(lambda: access.access_community(world.prosumer, "no-such-community"))
    managed = access.access_managed_community(world.manager, world.community.pk)
    assert managed == world.community
    _not_found(lambda: access.access_managed_community(world.other_manager, world.community.pk))
    _not_found(lambda: access.access_managed_community(world.prosumer, world.community.pk))


def test_own_membership_whatever_its_status(world: World) -> None:
    slug = world.community.slug
    assert (
        access.access_own_membership(world.pending, community_slug=slug) == world.pending_membership
    )
    suspended = access.access_own_membership(world.suspended, community_slug=slug)
    assert not permissions.membership_may_trade(suspended)
    assert permissions.membership_reads_history(suspended)
    _not_found(lambda: access.access_own_membership(world.regulator, community_slug=slug))


def test_api_tokens_are_the_owners(world: World) -> None:
    token = world.token_objects["read"]
    assert access.access_api_token(token.user, token.pk) == token
    _not_found(lambda: access.access_api_token(world.other_prosumer, token.pk))
    _not_found(lambda: access.access_api_token(world.superuser, token.pk))  # the admin's job


def test_the_rules_behind_the_services(world: World) -> None:
    assert permissions.can_edit_meter_point(world.prosumer, world.meter_point)
    assert permissions.can_edit_meter_point(world.manager, world.meter_point)
    assert not permissions.can_edit_meter_point(world.other_manager, world.meter_point)
    assert not permissions.can_edit_meter_point(world.other_prosumer, world.meter_point)
    assert permissions.can_register_meter_point(world.prosumer, world.membership)
    assert not permissions.can_register_meter_point(world.manager, world.membership)
    assert permissions.can_read_dashboards(world.regulator)
    assert permissions.can_read_dashboards(world.superuser)
    assert not permissions.can_read_dashboards(world.manager)
