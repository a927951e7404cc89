"""The one permission layer: who may do what, used by pages, admin, API and services alike.

Every channel asks these functions; nothing else decides access. Roles and what they may do:

| role                       | read market     | trade | own history | manage     | identities |
| -------------------------- | --------------- | ----- | ----------- | ---------- | ---------- |
| anonymous                  | no              | no    | no          | no         | no         |
| pending/rejected applicant | no              | no    | no          | no         | no         |
| approved member (prosumer) | own community   | yes   | yes         | no         | own only   |
| suspended member           | own community   | no    | yes         | no         | own only   |
| community manager          | own communities | yes*  | yes         | own comms. | own comms. |
| other community's manager  | no (not theirs) | no    | no          | no         | no         |
| regulator                  | all, anonymised | no    | -           | no         | never      |
| superuser (operator)       | all             | no**  | -           | all        | all        |

"read market" is the anonymised board, prices and volumes; "own history" is one's own orders,
trades and statements; "identities" is who stands behind a pseudonym.

\\* a manager's membership is an approved membership: the manager's household trades on the same
terms as everyone else. \\*\\* operators run the platform; they trade only through a membership.

Tokens narrow, never widen: a request authenticated by a personal access token may do what the
token's user may do *and* what its scopes allow (`read`, `trade`, `meter`, `manage`,
`meter_data`). Scopes are independent; `trade` does not imply `read`. A session has every scope
its user's role allows. `manage` and `meter_data` are managers' only: meter readings settle
money, so they come from a metering source (``meter_reading_community_ids``), never from the
member they bill.

Object level: a prosumer sees only their own memberships, meter points and tokens; a manager sees
the memberships, meter points and audit events of the communities they manage; a regulator sees
market data of every community through anonymised selectors and never a membership's user.

List querysets are filtered here (`visible_*`), because DRF's object permissions only run in
`get_object()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import QuerySet
from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import (
    ApiToken,
    AuditEvent,
    Membership,
    MembershipRole,
    MembershipStatus,
    MeterPoint,
    TokenScope,
    User,
)
from accounts.tokens import TokenAuth
from config.errors import ApplicationError, ErrorCode
from marketplace.models import Community

if TYPE_CHECKING:
    from django.http import HttpRequest
    from rest_framework.request import Request
    from rest_framework.views import APIView

AnyUser: TypeAlias = "User | AnonymousUser"

ALL_SCOPES: frozenset[str] = frozenset(TokenScope.values)
MEMBER_SCOPES: frozenset[str] = frozenset(
    {TokenScope.READ.value, TokenScope.TRADE.value, TokenScope.METER.value}
)
# A regulator observes the market and never takes part in it: no trading, no readings, no
# management, whatever memberships the account also has.
REGULATOR_SCOPES: frozenset[str] = frozenset({TokenScope.READ.value})
# Statuses that keep read access to one's own history: a suspended member still sees it.
HISTORY_STATUSES = (MembershipStatus.APPROVED, MembershipStatus.SUSPENDED)


# --- Who the user is -------------------------------------------------------------------------
def _active(user: AnyUser | None) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def _uid(user: AnyUser | None) -> int:
    """The user's primary key; callers have checked `_active` first."""
    return int(user.pk) if user is not None and user.pk is not None else 0


def is_superuser(user: AnyUser | None) -> bool:
    return _active(user) and bool(user.is_superuser)  # type: ignore[union-attr]


def is_regulator(user: AnyUser | None) -> bool:
    return _active(user) and bool(getattr(user, "is_regulator", False))


def membership_of(user: AnyUser | None, community: Community) -> Membership | None:
    """The user's membership in the community, whatever its status, or None."""
    if not _active(user):
        return None
    return Membership.objects.filter(user_id=_uid(user), community_id=community.pk).first()


def managed_communities(user: AnyUser | None) -> QuerySet[Community]:
    """Communities the user manages: all for a superuser, approved manager memberships else."""
    if not _active(user):
        return Community.objects.none()
    if is_superuser(user):
        return Community.objects.all()
    return Community.objects.filter(
        memberships__user_id=_uid(user),
        memberships__role=MembershipRole.MANAGER,
        memberships__status=MembershipStatus.APPROVED,
    ).distinct()


def manages_any_community(user: AnyUser | None) -> bool:
    return managed_communities(user).exists()


def user_manages_sql(user_column: str) -> tuple[str, list[str]]:
    """``manages_any_community`` for a non-superuser as an SQL ``EXISTS`` over the user id in
    ``user_column``, with its parameters: the token authentication reads it in the token's own
    query. The same rule as ``managed_communities``: an approved manager membership."""
    membership = connection.ops.quote_name(Membership._meta.db_table)
    sql = (
        f"EXISTS (SELECT 1 FROM {membership} mm WHERE mm.user_id = {user_column}"  # noqa: S608
        " AND mm.role = %s AND mm.status = %s)"
    )
    return sql, [MembershipRole.MANAGER.value, MembershipStatus.APPROVED.value]


# --- What the user may do in a community -----------------------------------------------------
def can_manage(user: AnyUser | None, community: Community) -> bool:
    """Approve and suspend members, map meter points to buses, set rules, read the audit log."""
    return is_superuser(user) or managed_communities(user).filter(pk=community.pk).exists()


def membership_may_trade(membership: Membership | None) -> bool:
    """The rule behind ``can_trade``, for a caller that holds the membership already."""
    return membership is not None and membership.status == MembershipStatus.APPROVED


def membership_reads_history(membership: Membership | None) -> bool:
    """The rule behind ``can_read_own_history``, for a caller that holds the membership."""
    return membership is not None and membership.status in HISTORY_STATUSES


def can_trade(user: AnyUser | None, community: Community) -> bool:
    """Post, bid, accept and cancel: only an approved (not suspended) member."""
    return membership_may_trade(membership_of(user, community))


def can_read_market(user: AnyUser | None, community: Community) -> bool:
    """The anonymised board, prices and volumes of a community."""
    if is_superuser(user) or is_regulator(user):
        return True
    return membership_reads_history(membership_of(user, community))


def can_read_own_history(user: AnyUser | None, community: Community) -> bool:
    """One's own orders, trades and statements; a suspended member keeps this."""
    return membership_reads_history(membership_of(user, community))


def meter_reading_community_ids(
    user: AnyUser | None, *, token_community_id: int | None = None
) -> frozenset[int] | None:
    """The communities whose meter readings the user may send; None: every community.

    Readings move money, so they come from a metering source only: a manager of the meter
    point's community (the CSV import, their session) or a ``meter_data`` token a manager
    issued for that community (``token_community_id``), never the member whose bill they make.
    A token bound to a community sends that community's readings and no other's; an operator
    (superuser) may send any.
    """
    if not _active(user):
        return frozenset()
    if is_superuser(user):
        return None if token_community_id is None else frozenset({token_community_id})
    if is_regulator(user):  # observes the market, never feeds it
        return frozenset()
    managed = frozenset(managed_communities(user).values_list("pk", flat=True))
    if token_community_id is not None:
        managed &= {token_community_id}
    return managed


def can_send_meter_readings(
    user: AnyUser | None, meter_point: MeterPoint, *, token_community_id: int | None = None
) -> bool:
    """Readings for a meter point come from a metering source of its community only
    (``meter_reading_community_ids``): its own member's word is not a measurement."""
    allowed = meter_reading_community_ids(user, token_community_id=token_community_id)
    return allowed is None or meter_point.membership.community_id in allowed


def can_edit_meter_point(user: AnyUser | None, meter_point: MeterPoint) -> bool:
    """A meter point's label, capacity and assets: its own member or the community's manager."""
    return _active(user) and (
        meter_point.membership.user_id == _uid(user)
        or can_manage(user, meter_point.membership.community)
    )


def can_register_meter_point(user: AnyUser | None, membership: Membership) -> bool:
    """A member registers meter points for their own membership only."""
    return _active(user) and membership.user_id == _uid(user)


def can_revoke_api_token(user: AnyUser | None, token: ApiToken) -> bool:
    """A token's owner, or an operator revoking a leaked one."""
    return is_superuser(user) or (_active(user) and token.user_id == _uid(user))


def can_read_dashboards(user: AnyUser | None) -> bool:
    """The regulators' dashboards: regulators and operators."""
    return is_regulator(user) or is_superuser(user)


def can_see_identities(user: AnyUser | None, community: Community) -> bool:
    """Who is behind a pseudonym: the community's managers and operators, never a regulator."""
    return can_manage(user, community)


def can_read_audit_log(user: AnyUser | None, community: Community | None) -> bool:
    if community is None:
        return is_superuser(user)
    return can_manage(user, community)


def can_use_admin(user: AnyUser | None) -> bool:
    """Operators and community managers work in the admin; nobody else."""
    if not _active(user) or not getattr(user, "is_staff", False):
        return False
    return is_superuser(user) or manages_any_community(user)


def require_manage(user: AnyUser | None, community: Community) -> None:
    """Raise the domain error services use when a non-manager tries a manager's action."""
    if not can_manage(user, community):
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED,
            "Only a manager of this community can do that.",
            field="community",
        )


def require_superuser(user: AnyUser | None) -> None:
    if not is_superuser(user):
        raise ApplicationError(
            ErrorCode.PERMISSION_DENIED, "Only an operator (superuser) can do that."
        )


# --- What the user may see (list querysets) --------------------------------------------------
def visible_memberships(user: AnyUser | None) -> QuerySet[Membership]:
    """Own memberships, plus every membership of a managed community; regulators get only their
    own, because a membership names its user."""
    if not _active(user):
        return Membership.objects.none()
    if is_superuser(user):
        return Membership.objects.all()
    own = Membership.objects.filter(user_id=_uid(user))
    managed = Membership.objects.filter(community__in=managed_communities(user))
    return (own | managed).distinct()


def visible_meter_points(user: AnyUser | None) -> QuerySet[MeterPoint]:
    if not _active(user):
        return MeterPoint.objects.none()
    if is_superuser(user):
        return MeterPoint.objects.all()
    own = MeterPoint.objects.filter(membership__user_id=_uid(user))
    managed = MeterPoint.objects.filter(membership__community__in=managed_communities(user))
    return (own | managed).distinct()


def visible_audit_events(user: AnyUser | None) -> QuerySet[AuditEvent]:
    if not _active(user):
        return AuditEvent.objects.none()
    if is_superuser(user):
        return AuditEvent.objects.all()
    return AuditEvent.objects.filter(community__in=managed_communities(user))


def visible_api_tokens(user: AnyUser | None) -> QuerySet[ApiToken]:
    """A token is its owner's business alone (operators see all to revoke a leaked one)."""
    if not _active(user):
        return ApiToken.objects.none()
    if is_superuser(user):
        return ApiToken.objects.all()
    return ApiToken.objects.filter(user_id=_uid(user))


def readable_communities(user: AnyUser | None) -> QuerySet[Community]:
    """Communities whose anonymised market data the user may read."""
    if not _active(user):
        return Community.objects.none()
    if is_superuser(user) or is_regulator(user):
        return Community.objects.all()
    return Community.objects.filter(
        memberships__user_id=_uid(user),
        memberships__status__in=HISTORY_STATUSES,
    ).distinct()


# --- Scopes ----------------------------------------------------------------------------------
def scopes_allowed_for(user: AnyUser | None, *, manages: bool | None = None) -> frozenset[str]:
    """The scopes a user's role allows: a session has all of them; a token at most these.

    ``manages``: whether the user manages a community, when the caller has already read it
    (``user_manages_sql``); superusers are always asked here.
    """
    if not _active(user):
        return frozenset()
    if is_regulator(user) and not is_superuser(user):
        return REGULATOR_SCOPES
    if manages is None or is_superuser(user):
        manages = manages_any_community(user)
    return ALL_SCOPES if manages else MEMBER_SCOPES


def request_scopes(request: HttpRequest | Request) -> frozenset[str]:
    """The scopes of this request: the token's for a bearer token, the role's for a session."""
    user = getattr(request, "user", None)  # first: on a DRF request this runs authentication
    auth = getattr(request, "auth", None)
    if isinstance(auth, TokenAuth):
        # A token never outgrows its user: a manager who stepped down loses `manage` at once
        # (the role's scopes are read with the token, on every request).
        role_scopes = auth.role_scopes
        if role_scopes is None:
            role_scopes = scopes_allowed_for(user)
        return auth.scopes & role_scopes
    return scopes_allowed_for(user)


# --- Objects to communities ------------------------------------------------------------------
def community_of(obj: Any) -> Community | None:
    """The community an object belongs to, following the project's usual relations."""
    if isinstance(obj, Community):
        return obj
    for attribute in ("community", "membership", "interval", "posting", "meter_point"):
        related = getattr(obj, attribute, None)
        if related is not None and related is not obj:
            return community_of(related)
    return None


def community_for_view(view: APIView) -> Community | None:
    """The community a DRF view works on: `view.get_community()` or a `community_slug` kwarg."""
    getter = getattr(view, "get_community", None)
    if callable(getter):
        community = getter()
        return community if isinstance(community, Community) else None
    slug = getattr(view, "kwargs", {}).get("community_slug")
    if slug:
        return Community.objects.filter(slug=slug).first()
    return None


# --- DRF permission classes ------------------------------------------------------------------
class HasTokenScope(BasePermission):
    """The request carries a scope: `permission_classes = [HasTokenScope("trade")]`.

    DRF instantiates permission classes by calling them; an instance returns itself when called,
    so a configured instance can stand where a class is expected (also in `&` and `|`).
    """

    def __init__(self, scope: str) -> None:
        if scope not in ALL_SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        self.scope = scope
        self.message = f"This needs the '{scope}' scope."

    def __call__(self) -> HasTokenScope:
        return self

    def has_permission(self, request: Request, view: APIView) -> bool:
        return self.scope in request_scopes(request)


class AnyScope(BasePermission):
    """Any valid session or token, whatever its scopes: a caller may always ask who they are."""

    message = "Sign in or send a valid token."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return _active(request.user)


class _CommunityPermission(BasePermission):
    """Checks a rule against the view's community, then against each object's community."""

    scope: str = TokenScope.READ.value

    def scope_for(self, request: Request) -> str:
        return self.scope

    def rule(self, request: Request, community: Community) -> bool:
        """The permission's own rule; every subclass names one from this module."""
        raise NotImplementedError

    def has_permission(self, request: Request, view: APIView) -> bool:
        if self.scope_for(request) not in request_scopes(request):
            return False
        community = community_for_view(view)
        if community is None:
            # Object-level check follows; list views filter through the visible_* selectors.
            return _active(request.user)
        return self.rule(request, community)

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        community = community_of(obj)
        return community is not None and self.rule(request, community)


class CanReadMarket(_CommunityPermission):
    """Read the anonymised market data of the view's community (`read` scope)."""

    message = "You cannot read this community's market data."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.method in SAFE_METHODS and super().has_permission(request, view)

    def rule(self, request: Request, community: Community) -> bool:
        return can_read_market(request.user, community)


class IsApprovedMember(_CommunityPermission):
    """Trade in the view's community: an approved, not suspended member (`trade` scope).

    Safe methods need only the `read` scope and read access to one's own history, so a
    suspended member can still list their own orders and trades.
    """

    message = "Only approved members of this community can trade."

    def scope_for(self, request: Request) -> str:
        if request.method in SAFE_METHODS:
            return TokenScope.READ.value
        return TokenScope.TRADE.value

    def rule(self, request: Request, community: Community) -> bool:
        if request.method in SAFE_METHODS:
            return can_read_own_history(request.user, community)
        return can_trade(request.user, community)


class IsCommunityManager(_CommunityPermission):
    """Manage the view's community (`manage` scope)."""

    scope = TokenScope.MANAGE.value
    message = "Only a manager of this community can do that."

    def rule(self, request: Request, community: Community) -> bool:
        return can_manage(request.user, community)


class IsRegulator(BasePermission):
    """The regulator's read-only dashboards and exports (`read` scope, safe methods only)."""

    message = "Only regulators can see this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return (
            request.method in SAFE_METHODS
            and is_regulator(request.user)
            and TokenScope.READ.value in request_scopes(request)
        )


class CanSendMeterReadings(BasePermission):
    """Send a community's meter readings: a metering source only (`meter_data` scope, which
    only managers hold; a member's own token or session cannot)."""

    message = (
        "Meter readings come only from a metering source: the community manager's CSV import "
        "or a 'meter_data' token a manager issued for the community."
    )
    code = ErrorCode.NOT_METERING_SOURCE.value

    def has_permission(self, request: Request, view: APIView) -> bool:
        return _active(request.user) and TokenScope.METER_DATA.value in request_scopes(request)

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        return isinstance(obj, MeterPoint) and can_send_meter_readings(
            request.user, obj, token_community_id=token_community_id(request)
        )


def token_community_id(request: HttpRequest | Request) -> int | None:
    """The community a bearer token is bound to (a ``meter_data`` token), else None."""
    auth = getattr(request, "auth", None)
    return auth.community_id if isinstance(auth, TokenAuth) else None
