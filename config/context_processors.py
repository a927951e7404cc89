"""What every page's navigation needs: the signed-in user's roles, read once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, OuterRef, Subquery
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts import permissions
from accounts.models import Membership, MembershipRole, User
from notifications.selectors import unread_notifications


@dataclass(frozen=True, slots=True)
class Navigation:
    trades: bool  # has a prosumer membership: dashboard, board, trades
    regulator: bool
    manages: bool  # admin pages (a manager or an operator)
    unread: int  # notifications not read yet, for the bell


def _navigation(request: HttpRequest) -> Navigation:
    user = request.user
    if not isinstance(user, User):
        return Navigation(False, False, False, 0)
    # One query for the role links and the bell, on every page.
    row = (
        User.objects.filter(pk=user.pk)
        .annotate(
            trades=Exists(
                Membership.objects.filter(user_id=OuterRef("pk"), role=MembershipRole.PROSUMER)
            ),
            unread=Subquery(
                unread_notifications()
                .filter(user_id=OuterRef("pk"))
                .values("user_id")
                .annotate(n=Count("pk"))
                .values("n")[:1]
            ),
        )
        .values("trades", "unread")
        .first()
    ) or {"trades": False, "unread": 0}
    regulator = permissions.is_regulator(user) or permissions.is_superuser(user)
    return Navigation(
        trades=row["trades"] or not regulator,
        regulator=regulator,
        manages=user.is_staff,
        unread=row["unread"] or 0,
    )


def navigation(request: HttpRequest) -> dict[str, Any]:
    # Lazy: a page that never draws the navigation (a fragment, a CSV) reads nothing.
    return {"nav": SimpleLazyObject(lambda: _navigation(request))}
