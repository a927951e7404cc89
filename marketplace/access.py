"""The one way to look up a market object for a member: each function returns the object if the
member may act on it, else raises ``ObjectNotFoundError`` (Zulip's ``access_stream_by_id``).

The caller has already reached the community (``accounts.access``): these look only inside it,
so another community's posting or bid is reported exactly like a missing one. Whether the member
may then post, bid, accept or cancel is the services' rule, checked under their locks.
"""

from __future__ import annotations

from config.errors import ObjectNotFoundError
from marketplace.models import Bid, Community, Interval, Posting


def access_interval(*, community: Community, pk: int) -> Interval:
    """One of the community's intervals, with its rules."""
    interval = Interval.objects.filter(community=community, pk=pk).select_related("rules").first()
    if interval is None:
        raise ObjectNotFoundError("No such interval in this community.", field="interval")
    return interval


def access_posting(*, community: Community, pk: int) -> Posting:
    """One of the community's postings, with its interval."""
    posting = (
        Posting.objects.filter(pk=pk, interval__community=community)
        .select_related("interval")
        .first()
    )
    if posting is None:
        raise ObjectNotFoundError("No such posting.", field="posting")
    return posting


def access_bid(*, community: Community, pk: int) -> Bid:
    """One of the bids on the community's postings, with its posting."""
    bid = (
        Bid.objects.filter(pk=pk, posting__interval__community=community)
        .select_related("posting")
        .first()
    )
    if bid is None:
        raise ObjectNotFoundError("No such bid.", field="bid")
    return bid
