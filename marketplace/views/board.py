"""The board: anonymised postings with the depth chart, and every action a member takes on it.

Each action is a plain form POST that works without JavaScript (redirect after success, the
page again with the error next to its field on failure). With htmx loaded, the same forms post
in the background and the server answers with the board's main part only (``_board_main.html``),
which replaces the old one in place: no full reload, and nothing typed is lost on an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts import permissions
from accounts.access import access_meter_point
from accounts.models import MeterPoint
from config import formatting
from config.errors import ApplicationError, ObjectNotFoundError
from marketplace.access import access_bid, access_interval, access_posting
from marketplace.forms import (
    AcceptForm,
    BidForm,
    BidModifyForm,
    ModifyForm,
    PostingForm,
    add_service_error,
)
from marketplace.models import (
    BidStatus,
    Interval,
    IntervalState,
    PostingStatus,
    Side,
)
from marketplace.selectors.board import (
    board_postings,
    intervals_upcoming,
    my_bids,
    my_excluded_bids,
    my_excluded_postings,
    my_postings,
    order_book_depth,
)
from marketplace.selectors.network import expected_network_charges, pool_network_charge
from marketplace.selectors.prosumer import bids_on_my_open_postings
from marketplace.services.bids import (
    bid_accept,
    bid_create,
    bid_modify,
    bid_reject,
    bid_withdraw,
)
from marketplace.services.intervals import interval_is_open_for_orders
from marketplace.services.postings import posting_cancel, posting_create, posting_modify
from marketplace.views.charts import depth_chart
from marketplace.views.common import (
    REFRESH_SECONDS,
    MemberView,
    form_submission_claim,
    interval_label,
    is_htmx,
    local_zone,
    member_view,
)

# The session key of the member's last posting's interval, side and meter point.
LAST_POSTING_KEY = "board_last_posting"


@dataclass
class BoardInput:
    """What an action brings to the board's re-rendering: bound forms and row errors."""

    posting_form: PostingForm | None = None
    bid_form: tuple[int, BidForm] | None = None
    accept_form: tuple[int, AcceptForm] | None = None
    modify_form: tuple[int, ModifyForm] | None = None
    bid_modify_form: tuple[int, BidModifyForm] | None = None
    # "posting-<id>" or "bid-<id>" -> messages shown on that row.
    row_errors: dict[str, list[str]] = field(default_factory=dict)


def _filters(request: HttpRequest) -> tuple[str, str]:
    """The board's filters from the query string: an interval id (or "") and a side (or "")."""
    interval = request.GET.get("interval", "")
    side = request.GET.get("side", "")
    return (interval if interval.isdigit() else ""), (side if side in Side.values else "")


def _board_url(slug: str, interval: str, side: str) -> str:
    query = urlencode({k: v for k, v in (("interval", interval), ("side", side)) if v})
    url = reverse("marketplace:board", args=[slug])
    return f"{url}?{query}" if query else url


# The board lists the member's orders clearing left out this long after their interval began
# (My trades and History keep them longer).
EXCLUDED_SHOWN_FOR = timedelta(hours=24)


def board_context(request: HttpRequest, member: MemberView, given: BoardInput) -> dict[str, Any]:
    """Everything the board shows, in a fixed number of queries."""
    now = timezone.now()
    community, membership = member.community, member.membership
    zone = local_zone(community)
    interval_param, side = _filters(request)
    upcoming = list(intervals_upcoming(community=community, now=now))
    open_intervals = [i for i in upcoming if interval_is_open_for_orders(i, now)]
    selected = next((i for i in upcoming if str(i.pk) == interval_param), None)
    depth_interval = selected or (open_intervals[0] if open_intervals else None)

    postings = []
    if member.may_trade:
        # The board itself is for members who trade; a suspended member keeps the depth chart
        # and their own history below it.
        postings = board_postings(
            community=community, viewer=membership, interval=selected, side=side or None
        )
    meter_points = list(
        permissions.visible_meter_points(member.user)
        .filter(membership=membership)
        .values_list("pk", "label", "bus")
    )
    mp_choices: list[tuple[int | str, str]] = [(pk, label) for pk, label, _ in meter_points]
    # Expected network charges are shown for the meter point the forms start with.
    own_bus = meter_points[0][2] if meter_points else None
    charges = expected_network_charges(
        community=community,
        own_bus=own_bus,
        posting_ids=[p.id for p in postings if p.pseudonym != membership.pseudonym],
    )
    interval_choices: list[tuple[int | str, str]] = [
        (i.pk, f"{interval_label(i, zone)} · gate {_clock(i.gate_closure_at, zone)}")
        for i in open_intervals
    ]

    rows: list[dict[str, Any]] = []
    for posting in postings:
        mine = posting.pseudonym == membership.pseudonym
        form = None
        if not mine:
            if given.bid_form and given.bid_form[0] == posting.id:
                form = given.bid_form[1]
            else:
                initial = {"meter_point": mp_choices[0][0]} if mp_choices else {}
                form = BidForm(auto_id=f"id_bid{posting.id}_%s", initial=initial)
            form.set_choices(meter_point=mp_choices)
        rows.append(
            {
                "posting": posting,
                "mine": mine,
                "bid_form": form,
                "network_charge": charges.get(posting.id),
            }
        )

    own_postings = list(
        my_postings(membership=membership).filter(
            status=PostingStatus.OPEN, interval__state=IntervalState.OPEN
        )
    )
    bids_by_posting = bids_on_my_open_postings(
        membership=membership, posting_ids=[p.pk for p in own_postings]
    )
    errors = given.row_errors
    own_rows: list[dict[str, Any]] = []
    for own in own_postings:
        bid_rows: list[dict[str, Any]] = []
        for bid in bids_by_posting.get(own.pk, []):
            if given.accept_form and given.accept_form[0] == bid.pk:
                accept = given.accept_form[1]
            else:
                accept = AcceptForm(auto_id=f"id_accept{bid.pk}_%s")
            bid_rows.append(
                {"bid": bid, "accept_form": accept, "errors": errors.get(f"bid-{bid.pk}", [])}
            )
        if given.modify_form and given.modify_form[0] == own.pk:
            modify = given.modify_form[1]
        else:
            modify = ModifyForm(
                auto_id=f"id_modify{own.pk}_%s",
                initial={
                    "quantity_kwh": own.quantity_kwh,
                    "limit_price_per_kwh": own.limit_price_per_kwh,
                },
            )
        own_rows.append(
            {
                "posting": own,
                "bids": bid_rows,
                "modify_form": modify,
                "errors": errors.get(f"posting-{own.pk}", []),
            }
        )
    own_bids: list[dict[str, Any]] = []
    for bid in my_bids(membership=membership).filter(
        status=BidStatus.PENDING, posting__interval__state=IntervalState.OPEN
    ):
        if given.bid_modify_form and given.bid_modify_form[0] == bid.pk:
            bid_modify = given.bid_modify_form[1]
        else:
            bid_modify = BidModifyForm(
                auto_id=f"id_bidmodify{bid.pk}_%s",
                initial={"quantity_kwh": bid.quantity_kwh, "price_per_kwh": bid.price_per_kwh},
            )
        own_bids.append(
            {"bid": bid, "modify_form": bid_modify, "errors": errors.get(f"bid-{bid.pk}", [])}
        )

    # After a posting, the next one starts from the same interval, side and meter point.
    last = request.session.get(LAST_POSTING_KEY) or {}
    open_ids = {i.pk for i in open_intervals}
    own_ids = {pk for pk, _ in mp_choices}
    default_interval = depth_interval.pk if depth_interval in open_intervals else None
    posting_form = given.posting_form or PostingForm(
        initial={
            "interval": last["interval"] if last.get("interval") in open_ids else default_interval,
            "meter_point": last["meter_point"]
            if last.get("meter_point") in own_ids
            else (mp_choices[0][0] if mp_choices else None),
            "side": last["side"] if last.get("side") in Side.values else Side.SELL.value,
            "auto_accept_best_bids": last.get("auto_accept_best_bids", True),
        }
    )
    posting_form.set_choices(interval=interval_choices, meter_point=mp_choices)

    shown = {f"posting-{r['posting'].pk}" for r in own_rows}
    shown |= {f"bid-{b['bid'].pk}" for r in own_rows for b in r["bids"]}
    shown |= {f"bid-{item['bid'].pk}" for item in own_bids}
    general_errors = [m for key, ms in given.row_errors.items() if key not in shown for m in ms]
    if given.bid_form and not any(r["bid_form"] is given.bid_form[1] for r in rows):
        # The posting left the board meanwhile (filled, cancelled, gate closed) or is the
        # member's own, so no bid form shows the error: say why above the board.
        general_errors += [str(e) for field_errors in given.bid_form[1].errors.values()
                           for e in field_errors]  # fmt: skip

    depth = None
    if depth_interval is not None:
        depth = depth_chart(
            order_book_depth(interval=depth_interval),
            price_floor=depth_interval.rules.price_floor,
            price_cap=depth_interval.rules.price_cap,
        )
    pool_charge = None
    if depth_interval is not None and depth_interval.rules.market_structure != "bilateral":
        pool_charge = pool_network_charge(
            community=community, rules=depth_interval.rules, own_bus=own_bus
        )
    return {
        "member": member,
        "community": community,
        "membership": membership,
        "now": now,
        "pool_network_charge": pool_charge,
        "intervals": upcoming,
        "open_intervals": open_intervals,
        "selected_interval": selected,
        "depth_interval": depth_interval,
        "depth_label": interval_label(depth_interval, zone) if depth_interval else "",
        "depth": depth,
        "side": side,
        "filter_query": urlencode(
            {k: v for k, v in (("interval", interval_param), ("side", side)) if v}
        ),
        "rows": rows,
        "own_rows": own_rows,
        "own_bids": own_bids,
        "excluded": my_excluded_postings(membership=membership, since=now - EXCLUDED_SHOWN_FOR),
        "excluded_bids": my_excluded_bids(membership=membership, since=now - EXCLUDED_SHOWN_FOR),
        "general_errors": general_errors,
        "posting_form": posting_form,
        "has_meter_point": bool(mp_choices),
        "htmx": is_htmx(request),
        "refresh_seconds": REFRESH_SECONDS,
        "currency": community.currency,
    }


def _render_board(
    request: HttpRequest, member: MemberView, given: BoardInput, status: int = 200
) -> HttpResponse:
    template = "marketplace/_board_main.html" if is_htmx(request) else "marketplace/board.html"
    return render(request, template, board_context(request, member, given), status=status)


@login_required
@require_GET
def board(request: HttpRequest, slug: str) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    return _render_board(request, member, BoardInput())


def _done(request: HttpRequest, member: MemberView, message: str) -> HttpResponse:
    """After a successful action: the fresh board for htmx, a redirect (PRG) without it."""
    messages.success(request, message)
    if is_htmx(request):
        return _render_board(request, member, BoardInput())
    interval, side = _filters(request)
    return redirect(_board_url(member.community.slug, interval, side))


def _already_sent(request: HttpRequest, member: MemberView) -> HttpResponse:
    """A double submit (a second click, a resent form): the first one counts, nothing new."""
    messages.info(request, "This form was already sent; it was not sent again.")
    if is_htmx(request):
        return _render_board(request, member, BoardInput())
    interval, side = _filters(request)
    return redirect(_board_url(member.community.slug, interval, side))


def _clock(moment: datetime, zone: tzinfo) -> str:
    return formatting.when(moment, zone, style="%H:%M")


def _price(value: Decimal, member: MemberView) -> str:
    community = member.community
    return f"{formatting.cents(value, community)} ({formatting.price(value, community)})"


def _refuse_trading(form: forms.Form | None, member: MemberView) -> BoardInput:
    if form is not None:
        form.add_error(None, member.trade_refusal)
    return BoardInput()


def _own_meter_point(member: MemberView, pk: int) -> MeterPoint | None:
    """The member's meter point in this community, or None for the form to say so."""
    try:
        return access_meter_point(member.user, pk, membership=member.membership)
    except ObjectNotFoundError:
        return None


@login_required
@require_POST
def posting_new(request: HttpRequest, slug: str) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    form = PostingForm(request.POST)
    given = BoardInput(posting_form=form)
    if not member.may_trade:
        form.add_error(None, member.trade_refusal)
        return _render_board(request, member, given, status=403)
    if form.is_valid():
        data = form.cleaned_data
        try:
            interval: Interval | None = access_interval(
                community=member.community, pk=data["interval"]
            )
        except ObjectNotFoundError:
            interval = None
        meter_point = _own_meter_point(member, data["meter_point"])
        if interval is None:
            form.add_error("interval", "Choose one of the community's upcoming intervals.")
        elif meter_point is None:
            form.add_error("meter_point", "Choose one of your meter points.")
        elif (submission := form_submission_claim(request, data["form_token"])) is None:
            return _already_sent(request, member)
        else:
            try:
                posting = posting_create(
                    membership=member.membership,
                    meter_point=meter_point,
                    interval=interval,
                    side=data["side"],
                    quantity_kwh=data["quantity_kwh"].strip(),
                    limit_price_per_kwh=data["limit_price_per_kwh"].strip(),
                    auto_accept_best_bids=data["auto_accept_best_bids"],
                    flexible=data["flexible"],
                )
            except ApplicationError as error:
                submission.failed()
                add_service_error(form, error)
            else:
                submission.done(201, {"posting": posting.pk})
                request.session[LAST_POSTING_KEY] = {
                    "interval": posting.interval_id,
                    "side": posting.side,
                    "meter_point": meter_point.pk,
                    "auto_accept_best_bids": posting.auto_accept_best_bids,
                }
                what = "offer" if posting.side == Side.SELL else "request"
                return _done(
                    request,
                    member,
                    f"Your {what} of {formatting.kwh(posting.quantity_kwh)} at "
                    f"{_price(posting.limit_price_per_kwh, member)} is on the board.",
                )
    return _render_board(request, member, given, status=400)


@login_required
@require_POST
def bid_new(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    posting = access_posting(community=member.community, pk=pk)
    form = BidForm(request.POST, auto_id=f"id_bid{pk}_%s")
    given = BoardInput(bid_form=(pk, form))
    if not member.may_trade:
        # The bid forms are hidden for this member; the refusal is shown above the board.
        given.row_errors["trading"] = [member.trade_refusal]
        return _render_board(request, member, given, status=403)
    if form.is_valid():
        data = form.cleaned_data
        meter_point = _own_meter_point(member, data["meter_point"])
        if meter_point is None:
            form.add_error("meter_point", "Choose one of your meter points.")
        elif (submission := form_submission_claim(request, data["form_token"])) is None:
            return _already_sent(request, member)
        else:
            try:
                bid = bid_create(
                    membership=member.membership,
                    meter_point=meter_point,
                    posting=posting,
                    quantity_kwh=data["quantity_kwh"].strip(),
                    price_per_kwh=data["price_per_kwh"].strip(),
                )
            except ApplicationError as error:
                submission.failed()
                add_service_error(form, error)
            else:
                submission.done(201, {"bid": bid.pk})
                return _done(
                    request,
                    member,
                    f"Your bid of {formatting.kwh(bid.quantity_kwh)} at "
                    f"{_price(bid.price_per_kwh, member)} is with the poster.",
                )
    return _render_board(request, member, given, status=400)


def _row_action(
    request: HttpRequest,
    member: MemberView,
    key: str,
    action: Callable[[], str],
    given: BoardInput | None = None,
) -> HttpResponse:
    """Run a one-click action (cancel, reject, withdraw, accept); its error goes on its row."""
    given = given or BoardInput()
    if not member.may_trade:
        given.row_errors[key] = [member.trade_refusal]
        return _render_board(request, member, given, status=403)
    try:
        message = action()
    except ApplicationError as error:
        given.row_errors[key] = [error.message]
        if given.accept_form and error.field == "quantity_kwh":
            add_service_error(given.accept_form[1], error)
            given.row_errors.pop(key)
        return _render_board(request, member, given, status=400)
    return _done(request, member, message)


@login_required
@require_POST
def posting_cancel_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    posting = access_posting(community=member.community, pk=pk)

    def cancel() -> str:
        posting_cancel(posting=posting, by_membership=member.membership)
        return "Your posting is cancelled; its pending bids expired."

    return _row_action(request, member, f"posting-{pk}", cancel)


def _priority_note(before: tuple[Decimal, Decimal], after: tuple[Decimal, Decimal]) -> str:
    """What a modification did to an order's time priority: (quantity, price) before and after.

    Lowering only the quantity keeps the place in the queue; any other change takes a new one.
    """
    if after == before:
        return "nothing changed"
    if after[0] < before[0] and after[1] == before[1]:
        return "it keeps its place in the queue"
    return "it queues again from now"


@login_required
@require_POST
def posting_modify_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    posting = access_posting(community=member.community, pk=pk)
    form = ModifyForm(request.POST, auto_id=f"id_modify{pk}_%s")
    given = BoardInput(modify_form=(pk, form))
    if not member.may_trade:
        given.row_errors[f"posting-{pk}"] = [member.trade_refusal]
        return _render_board(request, member, given, status=403)
    if not form.is_valid():
        return _render_board(request, member, given, status=400)
    before = (posting.quantity_kwh, posting.limit_price_per_kwh)
    try:
        changed = posting_modify(
            posting=posting,
            by_membership=member.membership,
            quantity_kwh=form.cleaned_data["quantity_kwh"],
            limit_price_per_kwh=form.cleaned_data["limit_price_per_kwh"],
        )
    except ApplicationError as error:
        add_service_error(form, error)
        return _render_board(request, member, given, status=400)
    after = (changed.quantity_kwh, changed.limit_price_per_kwh)
    priority = _priority_note(before, after)
    return _done(
        request,
        member,
        f"Your posting is now {formatting.kwh(changed.quantity_kwh)} at "
        f"{_price(changed.limit_price_per_kwh, member)}; {priority}.",
    )


@login_required
@require_POST
def bid_modify_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    bid = access_bid(community=member.community, pk=pk)
    form = BidModifyForm(request.POST, auto_id=f"id_bidmodify{pk}_%s")
    given = BoardInput(bid_modify_form=(pk, form))
    if not member.may_trade:
        given.row_errors[f"bid-{pk}"] = [member.trade_refusal]
        return _render_board(request, member, given, status=403)
    if not form.is_valid():
        return _render_board(request, member, given, status=400)
    before = (bid.quantity_kwh, bid.price_per_kwh)
    try:
        changed = bid_modify(
            bid=bid,
            by_membership=member.membership,
            quantity_kwh=form.cleaned_data["quantity_kwh"],
            price_per_kwh=form.cleaned_data["price_per_kwh"],
        )
    except ApplicationError as error:
        add_service_error(form, error)
        return _render_board(request, member, given, status=400)
    after = (changed.quantity_kwh, changed.price_per_kwh)
    priority = _priority_note(before, after)
    return _done(
        request,
        member,
        f"Your bid is now {formatting.kwh(changed.quantity_kwh)} at "
        f"{_price(changed.price_per_kwh, member)}; {priority}.",
    )


@login_required
@require_POST
def bid_accept_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    bid = access_bid(community=member.community, pk=pk)
    form = AcceptForm(request.POST, auto_id=f"id_accept{pk}_%s")
    form.is_valid()  # one optional text field: always valid; the service parses it

    def accept() -> str:
        quantity = (form.cleaned_data.get("quantity_kwh") or "").strip() or None
        trade = bid_accept(bid=bid, by_membership=member.membership, quantity_kwh=quantity)
        return (
            f"Bid accepted: a trade of {formatting.kwh(trade.quantity_kwh)} at "
            f"{_price(trade.price_per_kwh, member)}. See it under My trades."
        )

    return _row_action(request, member, f"bid-{pk}", accept, BoardInput(accept_form=(pk, form)))


@login_required
@require_POST
def bid_reject_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    bid = access_bid(community=member.community, pk=pk)

    def reject() -> str:
        bid_reject(bid=bid, by_membership=member.membership)
        return "Bid rejected."

    return _row_action(request, member, f"bid-{pk}", reject)


@login_required
@require_POST
def bid_withdraw_view(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    member = member_view(request, slug)
    if isinstance(member, HttpResponse):
        return member
    bid = access_bid(community=member.community, pk=pk)

    def withdraw() -> str:
        bid_withdraw(bid=bid, by_membership=member.membership)
        return "Your bid is withdrawn."

    return _row_action(request, member, f"bid-{pk}", withdraw)
