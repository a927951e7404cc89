"""Bilateral board: automatic acceptance of the best bids on a posting at gate closure.

In the fully decentralised market a prosumer posts an offer (sell) or a request (buy) and others
bid on it. Bids the poster has not accepted by gate closure are accepted automatically by this
rule: for a sell posting the highest-priced buy bids first, for a buy posting the lowest-priced
sell bids first; ties by submission time, then bid id. Only bids that satisfy the posting's limit
(buy bid >= sell posting's price, sell bid <= buy posting's price) qualify. Each accepted bid is
a bilateral trade at the *bid* price; the last accepted bid may be partially filled, and no more
than ``remaining`` kWh is ever allocated.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from marketplace.clearing.book import decimal_units, validate_order
from marketplace.clearing.types import (
    KWH_PLACES,
    MAX_QUANTITY_KWH,
    ZERO,
    ClearingError,
    Match,
    Order,
    Side,
)


def bilateral_accept(
    posting: Order, bids: Sequence[Order], *, remaining: Decimal
) -> tuple[Match, ...]:
    """Accept the best qualifying ``bids`` on ``posting`` up to ``remaining`` kWh.

    Returns the trades in acceptance order. Raises ``ClearingError`` if the posting or a bid is
    invalid, a bid is on the same side as the posting, bid ids repeat, or ``remaining`` is
    negative, not on the 0.001 kWh grid or above the posting's quantity.
    """
    validate_order(posting)
    seen: set[str] = set()
    for i, bid in enumerate(bids):
        validate_order(bid, i)
        if bid.side == posting.side:
            raise ClearingError(f"bid {bid.id!r} is on the same side as posting {posting.id!r}")
        if bid.id in seen:
            raise ClearingError(f"duplicate bid id {bid.id!r}")
        seen.add(bid.id)
    milli = decimal_units(remaining, KWH_PLACES, "remaining", limit=MAX_QUANTITY_KWH)
    left = Decimal(milli).scaleb(-KWH_PLACES)
    if left < 0 or left > posting.quantity:
        raise ClearingError(f"remaining {remaining} must be within [0, {posting.quantity}]")

    selling = posting.side == Side.SELL
    if selling:
        eligible = [b for b in bids if b.price >= posting.price]
        eligible.sort(key=lambda b: (-b.price, b.submitted_at, b.id))
    else:
        eligible = [b for b in bids if b.price <= posting.price]
        eligible.sort(key=lambda b: (b.price, b.submitted_at, b.id))

    matches: list[Match] = []
    for bid in eligible:
        if left <= ZERO:
            break
        quantity = min(bid.quantity, left)
        left -= quantity
        buyer, seller = (bid.id, posting.id) if selling else (posting.id, bid.id)
        matches.append(Match(buyer, seller, quantity, bid.price, bid.price))
    return tuple(matches)
