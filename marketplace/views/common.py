"""What every prosumer page needs: the caller's membership in the community, checked through
``accounts.permissions``, and whether they may trade (with the reason when not)."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts import permissions
from accounts.access import access_own_membership
from accounts.models import Membership, MembershipStatus, User
from marketplace.models import Community, Interval
from marketplace.services.idempotency import (
    idempotency_claim,
    idempotency_complete,
    idempotency_release,
    key_digest,
)

# How often an open dashboard or board refreshes its live parts (htmx polling).
REFRESH_SECONDS = 15


@dataclass(frozen=True)
class MemberView:
    """The caller as a member of one community, as the pages see them."""

    user: User
    community: Community
    membership: Membership
    may_trade: bool
    # Why the forms are disabled; empty when the member may trade.
    trade_refusal: str


def current_user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # login_required guarantees it
    return request.user


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def member_view(request: HttpRequest, slug: str) -> MemberView | HttpResponse:
    """The caller's membership, or the response to give instead.

    A community the caller has no history in is a 404 (whether it exists is not their business);
    a pending or rejected applicant gets the page that explains their state.
    """
    user = current_user(request)
    membership = access_own_membership(user, community_slug=slug)
    if not permissions.membership_reads_history(membership):
        return render(
            request,
            "marketplace/not_yet_member.html",
            {"memberships": [membership]},
            status=403,
        )
    community = membership.community
    may_trade = permissions.membership_may_trade(membership)
    refusal = ""
    if not may_trade:
        refusal = (
            "Your membership is suspended"
            if membership.status == MembershipStatus.SUSPENDED
            else "Your membership is not approved"
        )
        refusal += f" ({membership.status_reason})" if membership.status_reason else ""
        refusal += ". You can see your history, but you cannot post or bid."
    return MemberView(user, community, membership, may_trade, refusal)


@dataclass(frozen=True)
class FormSubmission:
    """A claimed one-time form token: ``done`` once it created something, ``failed`` if not."""

    record_id: int

    def done(self, status: int, result: dict[str, object]) -> None:
        idempotency_complete(record_id=self.record_id, status=status, response=result)

    def failed(self) -> None:
        # Nothing was created: the same form, corrected, may be sent again.
        idempotency_release(record_id=self.record_id)


def form_submission_claim(request: HttpRequest, token: str) -> FormSubmission | None:
    """Claim a form's one-time token (``OneTimeForm``); None when it was already submitted."""
    claim = idempotency_claim(
        caller=f"u{current_user(request).pk}",
        digest=key_digest(f"form:{token}"),
        fingerprint=key_digest(request.path),
    )
    return FormSubmission(claim.record_id) if claim.record_id is not None else None


def interval_label(interval: Interval, zone: zoneinfo.ZoneInfo) -> str:
    """``Mon 02 Mar 10:15-10:30`` (en dash) in the community's zone, as members name intervals."""
    start, end = interval.start.astimezone(zone), interval.end.astimezone(zone)
    return f"{start:%a %d %b %H:%M}\u2013{end:%H:%M}"


def local_zone(community: Community) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(community.timezone)


def local_now(community: Community, now: datetime) -> datetime:
    return now.astimezone(local_zone(community))
