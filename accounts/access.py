"""The one way to look up an account object for a user: each function returns the object if the
user may act on it, else raises ``ObjectNotFoundError`` (Zulip's ``access_stream_by_id``).

Pages, the API, the admin and the services call these instead of filtering querysets themselves,
so "the caller's meter point" means the same everywhere. Whether the user may do something is a
rule in ``accounts.permissions``; these functions apply those rules to one object. Someone else's
object is reported exactly like a missing one: its existence is not the caller's business.
"""

from __future__ import annotations

import functools

from django.db import connection

from accounts import permissions
from accounts.models import ApiToken, Membership, MeterPoint, User
from accounts.permissions import AnyUser
from accounts.selectors import membership_of_user_in
from config.errors import ObjectNotFoundError
from config.sql import ModelSelect, table_name
from marketplace.models import Community


def access_community(user: User, slug: str) -> Community:
    """A community whose anonymised market data the user may read (``can_read_market``)."""
    community = permissions.readable_communities(user).filter(slug=slug).first()
    if community is None:
        raise ObjectNotFoundError("No such community.", field="community")
    return community


def access_managed_community(user: AnyUser, pk: int) -> Community:
    """A community the user manages (``can_manage``): the admin's community pages."""
    community = permissions.managed_communities(user).filter(pk=pk).first()
    if community is None:
        raise ObjectNotFoundError("No such community.", field="community")
    return community


def access_own_membership(user: User, *, community_slug: str) -> Membership:
    """The user's own membership in a community, whatever its status, with the community."""
    membership = membership_of_user_in(user=user, community_slug=community_slug)
    if membership is None:
        raise ObjectNotFoundError("You are not a member of this community.", field="community")
    return membership


def access_meter_point(user: User, pk: int, *, membership: Membership | None = None) -> MeterPoint:
    """The user's own meter point, with its membership; within ``membership`` when given.

    A manager reaches the meter points of their community's members through the admin, not here.
    """
    # Hand-written (config/sql.py): every order post and bid looks its meter point up, and the
    # ORM's compilation of this join cost more CPU than the database's work.
    select = _own_meter_point_select()
    params: list[int] = [pk, user.pk]
    sql = select.sql
    if membership is not None:
        sql += " AND m.id = %s"
        params.append(membership.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise ObjectNotFoundError("You have no meter point with this id.", field="meter_point")
    meter_point, owner = select.build(row)
    meter_point.membership = owner
    return meter_point


@functools.cache
def _own_meter_point_select() -> ModelSelect:
    return ModelSelect(
        [(MeterPoint, "mp", None), (Membership, "m", None)],
        f"FROM {table_name(MeterPoint)} mp JOIN {table_name(Membership)} m"
        " ON m.id = mp.membership_id WHERE mp.id = %s AND m.user_id = %s",
    )


def access_api_token(user: User, pk: int) -> ApiToken:
    """One of the user's own tokens (operators revoke other people's in the admin)."""
    token = permissions.visible_api_tokens(user).filter(pk=pk, user=user).first()
    if token is None:
        raise ObjectNotFoundError("No such token.", field="token")
    return token
