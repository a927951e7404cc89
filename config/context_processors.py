"""What every page's navigation needs: the signed-in user's roles, read once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts import permissions
from accounts.models import Membership, MembershipRole, User
from notifications.selectors import notifications_unread_count


@dataclass(frozen=True, slots=True)
class Navigation:
    trades: bool  # has a prosumer membership: dashboard, board, trades
    regulator: bool
    manages: bool  # admin pages (a manager or an operator)


def _navigation(request: HttpRequest) -> Navigation:
    user = request.user
    if not user.is_authenticated:
        return Navigation(False, False, False)
    trades = Membership.objects.filter(user_id=user.pk, role=MembershipRole.PROSUMER).exists()
    regulator = permissions.is_regulator(user) or permissions.is_superuser(user)
    return Navigation(trades=trades or not regulator, regulator=regulator, manages=user.is_staff)


def _unread(request: HttpRequest) -> int:
    user = request.user
    if not isinstance(user, User):
        return 0
    return notifications_unread_count(user=user)


def navigation(request: HttpRequest) -> dict[str, Any]:
    # Lazy: a page that never draws the navigation (a fragment, a CSV) reads nothing.
    return {
        "nav": SimpleLazyObject(lambda: _navigation(request)),
        "nav_unread": SimpleLazyObject(lambda: _unread(request)),
    }
