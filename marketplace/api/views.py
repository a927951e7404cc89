"""The API's views: parse with a serializer, call a service or selector, render.

Scopes: reads need `read`; orders and bids `trade`; meter points and readings `meter`; market
rules `manage` (and the community's manager role). Lists come from selectors filtered by the
caller's role; details look up in the same querysets, so what you cannot list is a 404.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import BasePagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Membership, MeterPoint, TokenScope, User
from accounts.permissions import (
    CanReadMarket,
    CanSendMeterReadings,
    HasTokenScope,
    IsCommunityManager,
    readable_communities,
    request_scopes,
)
from accounts.services import meter_point_register
from config.errors import ApplicationError, ErrorCode
from grid.selectors import grid_check_result_get
from marketplace.api import filters, schema
from marketplace.api import serializers as s
from marketplace.api.idempotency import idempotent
from marketplace.api.pagination import ApiPagination
from marketplace.api.selectors import (
    decidable_bids,
    history_memberships,
    market_statistics,
    own_bids,
    own_meter_points,
    own_postings,
    own_readings,
    own_settlements,
    own_trades,
    visible_intervals,
)
from marketplace.ledger.models import MeterReading, Settlement
from marketplace.ledger.selectors import (
    member_balance,
    member_statement,
    statement_membership,
    statement_months,
)
from marketplace.ledger.services.readings import meter_readings_submit
from marketplace.models import Bid, Community, Interval, MarketRules, Posting, Trade
from marketplace.selectors.board import (
    bids_on_my_posting,
    board_postings,
    order_book_depth,
)
from marketplace.services.bids import bid_accept, bid_create, bid_reject, bid_withdraw
from marketplace.services.postings import posting_cancel, posting_create
from marketplace.services.rules import current_rules, market_rules_update

IDEMPOTENT = [schema.IDEMPOTENCY_KEY]


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)  # every view needs authentication first
    return user


class ApiView(GenericAPIView):
    """JSON only (one request format for clients and for the schema), paginated, throttled.

    ``scopes`` maps an HTTP method to the token scope it needs; GET needs `read`.
    """

    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    pagination_class: type[BasePagination] | None = ApiPagination
    filter_backends = []
    scopes: ClassVar[dict[str, str]] = {}
    # What the view lists; the schema generator reads it without a request.
    model: ClassVar[type[Model] | None] = None

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False) and self.model is not None:
            return self.model._default_manager.none()
        return self.visible_queryset(_user(self.request))

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        raise NotImplementedError

    def get_permissions(self) -> list[BasePermission]:
        scope = self.scopes.get(self.request.method or "GET", TokenScope.READ.value)
        return [IsAuthenticated(), HasTokenScope(scope)]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # PostgreSQL text cannot hold NUL: refuse it here for every query parameter, so no
        # filter or lookup can turn it into a server error.
        for name, values in request.query_params.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                raise ApplicationError(
                    ErrorCode.INVALID, "Query parameters cannot contain NUL.", field=name[:50]
                )

    def validated_query(self, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        query = serializer_class(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return dict(query.validated_data)

    def paginated(
        self, rows: Any, serializer_class: type[serializers.Serializer], **ctx: Any
    ) -> Response:
        page = self.paginate_queryset(rows)
        context = {**self.get_serializer_context(), **ctx}
        data = serializer_class(page if page is not None else rows, many=True, context=context)
        if page is not None:
            return self.get_paginated_response(data.data)
        return Response(data.data)


class FilteredListView(ApiView):
    filter_backends = [DjangoFilterBackend]
    serializer_class: type[serializers.Serializer]

    def list(self, request: Request, **ctx: Any) -> Response:
        rows = self.filter_queryset(self.get_queryset())
        return self.paginated(rows, self.serializer_class, **ctx)


# --- Who am I ---------------------------------------------------------------------------------
class MeView(ApiView):
    """Any valid token may ask who it is and what it may do, whatever its scopes."""

    def get_permissions(self) -> list[BasePermission]:
        return [IsAuthenticated()]

    @extend_schema(
        operation_id="me", summary="The caller, their memberships and this request's scopes",
        responses=schema.responses(s.MeSerializer, 403), tags=["account"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        user = _user(request)
        memberships = Membership.objects.filter(user=user).select_related("community")
        data = {
            "email": user.email,
            "display_name": user.display_name,
            "is_regulator": user.is_regulator,
            "scopes": sorted(request_scopes(request)),
            "memberships": memberships.order_by("community__slug"),
        }
        return Response(s.MeSerializer(data).data)


# --- Communities and market rules -------------------------------------------------------------
class CommunityListView(ApiView):
    serializer_class = s.CommunitySerializer
    model = Community

    def visible_queryset(self, user: User) -> QuerySet[Community]:
        return readable_communities(user).order_by("slug")

    @extend_schema(
        operation_id="communities_list", summary="Communities whose market data you may read",
        responses=schema.responses(s.CommunitySerializer(many=True), 403), tags=["market"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.paginated(self.get_queryset(), s.CommunitySerializer)


class CommunityDetailView(ApiView):
    serializer_class = s.CommunitySerializer
    model = Community
    lookup_field = "slug"

    def visible_queryset(self, user: User) -> QuerySet[Community]:
        return readable_communities(user)

    @extend_schema(
        operation_id="communities_retrieve", summary="One community",
        responses=schema.responses(s.CommunitySerializer, *schema.DETAIL_ERRORS), tags=["market"],
    )  # fmt: skip
    def get(self, request: Request, slug: str) -> Response:
        return Response(s.CommunitySerializer(self.get_object()).data)


class MarketRulesView(ApiView):
    """The community's current market rules; managers change them (a new version)."""

    def get_community(self) -> Community | None:
        return Community.objects.filter(slug=self.kwargs["slug"]).first()

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "PATCH":
            return [IsAuthenticated(), IsCommunityManager()]
        return [IsAuthenticated(), CanReadMarket()]

    def _community(self) -> Community:
        community = self.get_community()
        if community is None:
            raise Http404
        return community

    @extend_schema(
        operation_id="market_rules_retrieve", summary="The current market rules",
        responses=schema.responses(s.MarketRulesSerializer, *schema.DETAIL_ERRORS),
        tags=["market"],
    )  # fmt: skip
    def get(self, request: Request, slug: str) -> Response:
        rules: MarketRules = current_rules(self._community())
        return Response(s.MarketRulesSerializer(rules).data)

    @extend_schema(
        operation_id="market_rules_update",
        summary="Change market rules (managers, `manage` scope)",
        description="Stores a new version of the rules; only intervals opened from now on use "
        "it. Send only the fields that change.",
        request=s.MarketRulesUpdateSerializer,
        responses=schema.responses(s.MarketRulesSerializer, *schema.WRITE_ERRORS),
        tags=["market"],
    )
    def patch(self, request: Request, slug: str) -> Response:
        community = self._community()
        body = s.MarketRulesUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rules = market_rules_update(
            community=community, changed_by=_user(request), **body.validated_data
        )
        return Response(s.MarketRulesSerializer(rules).data)


# --- Intervals --------------------------------------------------------------------------------
class IntervalListView(FilteredListView):
    serializer_class = s.IntervalSerializer
    filterset_class = filters.IntervalFilter
    model = Interval

    def visible_queryset(self, user: User) -> QuerySet[Interval]:
        return visible_intervals(user=user)

    @extend_schema(
        operation_id="intervals_list", summary="Intervals with their state and results",
        responses=schema.responses(s.IntervalSerializer(many=True), *schema.READ_ERRORS),
        tags=["market"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)


class IntervalDetailView(ApiView):
    serializer_class = s.IntervalSerializer
    model = Interval

    def visible_queryset(self, user: User) -> QuerySet[Interval]:
        return visible_intervals(user=user)

    @extend_schema(
        operation_id="intervals_retrieve", summary="One interval with its state and results",
        responses=schema.responses(s.IntervalSerializer, *schema.DETAIL_ERRORS), tags=["market"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.IntervalSerializer(self.get_object()).data)


class IntervalDepthView(IntervalDetailView):
    @extend_schema(
        operation_id="intervals_depth",
        summary="The order book depth: cumulative open kWh by limit price",
        responses=schema.responses(s.DepthSerializer, *schema.DETAIL_ERRORS), tags=["market"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        interval = self.get_object()
        curves = order_book_depth(interval=interval)
        data = {"interval": interval.pk}
        for name in ("supply", "demand"):
            data[name] = [{"price_per_kwh": p, "cumulative_kwh": q} for p, q in curves[name]]
        return Response(s.DepthSerializer(data).data)


class IntervalGridCheckView(IntervalDetailView):
    @extend_schema(
        operation_id="intervals_grid_check",
        summary="The interval's grid check result (anonymised); 404 until it has run",
        responses=schema.responses(s.GridCheckSerializer, *schema.DETAIL_ERRORS), tags=["market"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        result = grid_check_result_get(interval=self.get_object())
        if result is None:
            raise ApplicationError(
                ErrorCode.NOT_FOUND, "The grid check of this interval has not run yet."
            )
        return Response(s.GridCheckSerializer(result).data)


# --- The board --------------------------------------------------------------------------------
class BoardView(ApiView):
    model = Posting

    @extend_schema(
        operation_id="board_list",
        summary="The anonymised board: open postings of open intervals, best price first",
        parameters=[s.BoardQuerySerializer],
        responses=schema.responses(s.BoardPostingSerializer(many=True), 400, 403, 404),
        tags=["trading"],
    )
    def get(self, request: Request) -> Response:
        query = self.validated_query(s.BoardQuerySerializer)
        # One query on the hot path: the viewer's membership with its community.
        viewer = (
            Membership.objects.filter(user=_user(request), community__slug=query["community"])
            .select_related("community")
            .first()
        )
        if viewer is None:
            get_object_or_404(Community, slug=query["community"])
            raise ApplicationError(
                ErrorCode.PERMISSION_DENIED,
                "Only approved members of this community can see its board.",
                field="community",
            )
        interval = Interval(pk=query["interval"]) if "interval" in query else None
        rows = board_postings(
            community=viewer.community, viewer=viewer, interval=interval, side=query.get("side")
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([s.board_posting_data(row) for row in page or []])


# --- Postings ---------------------------------------------------------------------------------
class PostingListView(FilteredListView):
    serializer_class = s.PostingSerializer
    filterset_class = filters.PostingFilter
    model = Posting
    scopes: ClassVar[dict[str, str]] = {"POST": TokenScope.TRADE.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_postings(user=user)

    @extend_schema(
        operation_id="postings_list", summary="Your postings (offers and requests)",
        responses=schema.responses(s.PostingSerializer(many=True), *schema.READ_ERRORS),
        tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="postings_create",
        summary="Post an offer to sell or a request to buy (`trade` scope)",
        parameters=IDEMPOTENT, request=s.PostingCreateSerializer,
        responses=schema.responses(s.PostingSerializer, *schema.WRITE_ERRORS, status=201),
        tags=["trading"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request) -> Response:
        body = s.PostingCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        meter_point = _own_meter_point(_user(request), data["meter_point"])
        try:
            # The service locks the interval by its id first thing; reading it here as well
            # would cost the hot path a query, so a missing one is reported from the lock.
            posting = posting_create(
                membership=meter_point.membership,
                meter_point=meter_point,
                interval=Interval(pk=data["interval"]),
                side=data["side"],
                quantity_kwh=data["quantity_kwh"],
                limit_price_per_kwh=data["limit_price_per_kwh"],
                auto_accept_best_bids=data["auto_accept_best_bids"],
                flexible=data["flexible"],
            )
        except Interval.DoesNotExist:
            raise ApplicationError(
                ErrorCode.NOT_FOUND, "No such interval.", field="interval"
            ) from None
        return Response(s.PostingSerializer(posting).data, status=status.HTTP_201_CREATED)


def _own_meter_point(user: User, pk: int) -> Any:
    """The caller's meter point; someone else's is reported exactly like a missing one."""
    # order_by(): a pk lookup needs no ordering, and the model's default one joins through
    # membership and community on every order post.
    meter_point = (
        MeterPoint.objects.filter(pk=pk, membership__user=user)
        .select_related("membership")
        .order_by()
        .first()
    )
    if meter_point is None:
        raise ApplicationError(
            ErrorCode.NOT_FOUND, "You have no meter point with this id.", field="meter_point"
        )
    return meter_point


class PostingDetailView(ApiView):
    serializer_class = s.PostingSerializer
    model = Posting

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_postings(user=user)

    @extend_schema(
        operation_id="postings_retrieve", summary="One of your postings",
        responses=schema.responses(s.PostingSerializer, *schema.DETAIL_ERRORS), tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.PostingSerializer(self.get_object()).data)


class PostingCancelView(ApiView):
    serializer_class = s.PostingSerializer
    model = Posting
    scopes: ClassVar[dict[str, str]] = {"POST": TokenScope.TRADE.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_postings(user=user)

    @extend_schema(
        operation_id="postings_cancel",
        summary="Cancel your open posting before gate closure; its pending bids expire",
        parameters=IDEMPOTENT, request=None,
        responses=schema.responses(s.PostingSerializer, *schema.WRITE_ERRORS), tags=["trading"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        posting = self.get_object()
        posting_cancel(posting=posting, by_membership=posting.membership)
        # Read again: the status changed and the pending bids expired with it.
        return Response(s.PostingSerializer(self.get_queryset().get(pk=posting.pk)).data)


class PostingBidsView(ApiView):
    serializer_class = s.PostingBidSerializer
    model = Posting

    @extend_schema(
        operation_id="postings_bids",
        summary="The bids on one of your postings, best first (bidders as pseudonyms)",
        responses=schema.responses(s.PostingBidSerializer(many=True), *schema.DETAIL_ERRORS),
        tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        posting = get_object_or_404(own_postings(user=_user(request)), pk=pk)
        rows = bids_on_my_posting(membership=posting.membership, posting=posting)
        return self.paginated(rows, s.PostingBidSerializer)


# --- Bids -------------------------------------------------------------------------------------
class BidListView(FilteredListView):
    serializer_class = s.BidSerializer
    filterset_class = filters.BidFilter
    model = Bid
    scopes: ClassVar[dict[str, str]] = {"POST": TokenScope.TRADE.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_bids(user=user)

    @extend_schema(
        operation_id="bids_list", summary="Your bids",
        responses=schema.responses(s.BidSerializer(many=True), *schema.READ_ERRORS),
        tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="bids_create", summary="Bid on another member's posting (`trade` scope)",
        parameters=IDEMPOTENT, request=s.BidCreateSerializer,
        responses=schema.responses(s.BidSerializer, *schema.WRITE_ERRORS, status=201),
        tags=["trading"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request) -> Response:
        body = s.BidCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        posting = Posting.objects.filter(pk=data["posting"]).select_related("interval").first()
        if posting is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such posting.", field="posting")
        meter_point = _own_meter_point(_user(request), data["meter_point"])
        bid = bid_create(
            membership=meter_point.membership,
            meter_point=meter_point,
            posting=posting,
            quantity_kwh=data["quantity_kwh"],
            price_per_kwh=data["price_per_kwh"],
        )
        bid = own_bids(user=_user(request)).get(pk=bid.pk)
        return Response(s.BidSerializer(bid).data, status=status.HTTP_201_CREATED)


class BidDetailView(ApiView):
    serializer_class = s.BidSerializer
    model = Bid

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_bids(user=user)

    @extend_schema(
        operation_id="bids_retrieve", summary="One of your bids",
        responses=schema.responses(s.BidSerializer, *schema.DETAIL_ERRORS), tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.BidSerializer(self.get_object()).data)


class _BidDecisionView(ApiView):
    """A decision on a bid you made (withdraw) or on one of your postings (accept, reject)."""

    scopes: ClassVar[dict[str, str]] = {"POST": TokenScope.TRADE.value}
    serializer_class = s.BidSerializer
    model = Bid

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return decidable_bids(user=user)

    def caller_membership(self, bid: Any) -> Membership:
        """The caller's own membership in the bid's community: as its bidder or its poster.

        One can never bid on one's own posting, and ``decidable_bids`` holds only bids where
        the caller is one of the two, so exactly one matches. The services then decide whether
        that membership may take the action (only the bidder withdraws, only the poster
        accepts or rejects).
        """
        user = _user(self.request)
        if bid.membership.user_id == user.pk:
            return bid.membership
        poster: Membership = bid.posting.membership
        if poster.user_id != user.pk:  # cannot happen through decidable_bids; never act as another
            raise Http404
        return poster


class BidWithdrawView(_BidDecisionView):
    @extend_schema(
        operation_id="bids_withdraw", summary="Withdraw your pending bid before gate closure",
        parameters=IDEMPOTENT, request=None,
        responses=schema.responses(s.BidSerializer, *schema.WRITE_ERRORS), tags=["trading"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        bid = self.get_object()
        withdrawn = bid_withdraw(bid=bid, by_membership=self.caller_membership(bid))
        return Response(s.BidSerializer(own_bids(user=_user(request)).get(pk=withdrawn.pk)).data)


class BidAcceptView(_BidDecisionView):
    @extend_schema(
        operation_id="bids_accept",
        summary="Accept a bid on your posting, fully or in part: a bilateral trade",
        parameters=IDEMPOTENT, request=s.BidAcceptSerializer,
        responses=schema.responses(s.TradeSerializer, *schema.WRITE_ERRORS, status=201),
        tags=["trading"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        body = s.BidAcceptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        bid = self.get_object()
        membership = self.caller_membership(bid)
        trade = bid_accept(
            bid=bid, by_membership=membership, quantity_kwh=body.validated_data.get("quantity_kwh")
        )
        trade = own_trades(user=_user(request)).get(pk=trade.pk)
        context = {"membership_ids": {membership.pk}}
        return Response(
            s.TradeSerializer(trade, context=context).data, status=status.HTTP_201_CREATED
        )


class BidRejectView(_BidDecisionView):
    @extend_schema(
        operation_id="bids_reject", summary="Reject a pending bid on your posting",
        parameters=IDEMPOTENT, request=None,
        responses=schema.responses(s.PostingBidSerializer, *schema.WRITE_ERRORS),
        tags=["trading"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        bid = self.get_object()
        membership = self.caller_membership(bid)
        rejected = bid_reject(bid=bid, by_membership=membership)
        rows = bids_on_my_posting(membership=membership, posting=bid.posting)
        return Response(s.PostingBidSerializer(rows.get(pk=rejected.pk)).data)


# --- Trades -----------------------------------------------------------------------------------
class TradeListView(FilteredListView):
    serializer_class = s.TradeSerializer
    filterset_class = filters.TradeFilter
    model = Trade

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_trades(user=user)

    def membership_ids(self) -> set[int]:
        return {m.pk for m in history_memberships(user=_user(self.request))}

    @extend_schema(
        operation_id="trades_list", summary="Your trades, with counterparts as pseudonyms",
        responses=schema.responses(s.TradeSerializer(many=True), *schema.READ_ERRORS),
        tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request, membership_ids=self.membership_ids())


class TradeDetailView(TradeListView):
    filter_backends = []

    @extend_schema(
        operation_id="trades_retrieve", summary="One of your trades",
        responses=schema.responses(s.TradeSerializer, *schema.DETAIL_ERRORS), tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:  # type: ignore[override]
        context = {"membership_ids": self.membership_ids()}
        return Response(s.TradeSerializer(self.get_object(), context=context).data)


# --- Meter points and readings ----------------------------------------------------------------
class MeterPointListView(FilteredListView):
    serializer_class = s.MeterPointSerializer
    filterset_class = filters.MeterPointFilter
    model = MeterPoint
    scopes: ClassVar[dict[str, str]] = {"POST": TokenScope.METER.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_meter_points(user=user)

    @extend_schema(
        operation_id="meter_points_list", summary="Your meter points",
        responses=schema.responses(s.MeterPointSerializer(many=True), *schema.READ_ERRORS),
        tags=["metering"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="meter_points_create",
        summary="Register a meter point in one of your communities (`meter` scope)",
        parameters=IDEMPOTENT, request=s.MeterPointCreateSerializer,
        responses=schema.responses(s.MeterPointSerializer, *schema.WRITE_ERRORS, status=201),
        tags=["metering"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request) -> Response:
        body = s.MeterPointCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        user = _user(request)
        membership = (
            Membership.objects.filter(user=user, community__slug=data.pop("community"))
            .select_related("community")
            .first()
        )
        if membership is None:
            raise ApplicationError(
                ErrorCode.NOT_FOUND, "You are not a member of this community.", field="community"
            )
        meter_point = meter_point_register(membership=membership, registered_by=user, **data)
        meter_point.membership = membership
        return Response(s.MeterPointSerializer(meter_point).data, status=status.HTTP_201_CREATED)


class MeterPointDetailView(ApiView):
    serializer_class = s.MeterPointSerializer
    model = MeterPoint

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_meter_points(user=user)

    @extend_schema(
        operation_id="meter_points_retrieve", summary="One of your meter points",
        responses=schema.responses(s.MeterPointSerializer, *schema.DETAIL_ERRORS),
        tags=["metering"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.MeterPointSerializer(self.get_object()).data)


class MeterReadingListView(FilteredListView):
    serializer_class = s.MeterReadingSerializer
    filterset_class = filters.MeterReadingFilter
    model = MeterReading

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "POST":
            return [IsAuthenticated(), CanSendMeterReadings()]
        return super().get_permissions()

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_readings(user=user)

    @extend_schema(
        operation_id="meter_readings_list", summary="Readings of your meter points",
        responses=schema.responses(s.MeterReadingSerializer(many=True), *schema.READ_ERRORS),
        tags=["metering"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="meter_readings_upload",
        summary="Upload readings in bulk (`meter` scope); each row is reported",
        description="A malformed body is a 400 and stores nothing. Otherwise every row is "
        "checked on its own: good rows are stored even when others are refused, an identical "
        "re-upload stores nothing (`unchanged`), and a changed reading becomes a new version.",
        parameters=IDEMPOTENT, request=s.ReadingsUploadSerializer,
        responses=schema.responses(s.ReadingReportSerializer, *schema.WRITE_ERRORS),
        tags=["metering"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request) -> Response:
        body = s.ReadingsUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report = meter_readings_submit(
            submitted_by=_user(request), readings=body.validated_data["readings"]
        )
        data = {
            "accepted": len(report.accepted),
            "refused": len(report.refused),
            "rows": [row.__dict__ for row in report.rows],
            "adjustment_ids": list(report.adjustment_ids),
        }
        return Response(s.ReadingReportSerializer(data).data)


# --- Settlements and statements ---------------------------------------------------------------
class SettlementListView(FilteredListView):
    serializer_class = s.SettlementSerializer
    filterset_class = filters.SettlementFilter
    model = Settlement

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_settlements(user=user)

    @extend_schema(
        operation_id="settlements_list", summary="How your intervals were settled",
        responses=schema.responses(s.SettlementSerializer(many=True), *schema.READ_ERRORS),
        tags=["settlement"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)


class _StatementView(ApiView):
    def membership(self, slug: str) -> Membership:
        community = get_object_or_404(Community, slug=slug)
        query = self.validated_query(s.StatementQuerySerializer)
        return statement_membership(
            viewer=_user(self.request), community=community, pseudonym=query.get("member") or None
        )


class StatementIndexView(_StatementView):
    @extend_schema(
        operation_id="statements_index",
        summary="Your balance in a community and the months with statements",
        parameters=[s.StatementQuerySerializer],
        responses=schema.responses(s.StatementIndexSerializer, *schema.DETAIL_ERRORS),
        tags=["settlement"],
    )  # fmt: skip
    def get(self, request: Request, slug: str) -> Response:
        membership = self.membership(slug)
        data = {
            "community": slug,
            "pseudonym": membership.pseudonym,
            "balance": member_balance(membership=membership),
            "months": [{"year": y, "month": m} for y, m in statement_months(membership=membership)],
        }
        return Response(s.StatementIndexSerializer(data).data)


class StatementMonthView(_StatementView):
    @extend_schema(
        operation_id="statements_month",
        summary="Your monthly statement: each settled interval, totals and savings",
        parameters=[s.StatementQuerySerializer],
        responses=schema.responses(s.StatementSerializer, 400, 403, 404),
        tags=["settlement"],
    )  # fmt: skip
    def get(self, request: Request, slug: str, year: int, month: int) -> Response:
        if not 2000 <= year <= 9000:
            # Months near year 9999 have no end the calendar can express.
            raise ApplicationError(ErrorCode.INVALID, "No such month.", field="year")
        membership = self.membership(slug)
        statement = member_statement(membership=membership, year=year, month=month)
        return Response(s.StatementSerializer(statement).data)


# --- Statistics -------------------------------------------------------------------------------
class StatisticsView(ApiView):
    pagination_class = None  # one row per community: short, and totals are not pages

    @extend_schema(
        operation_id="statistics",
        summary="Market figures per community: all for regulators, your own for members",
        parameters=[s.StatisticsQuerySerializer],
        responses=schema.responses(s.CommunityStatisticsSerializer(many=True), 400, 403, 404),
        tags=["market"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        query = self.validated_query(s.StatisticsQuerySerializer)
        community = None
        if "community" in query:
            community = get_object_or_404(
                readable_communities(_user(request)), slug=query["community"]
            )
        rows = market_statistics(
            user=_user(request),
            community=community,
            first_day=query.get("first_day"),
            last_day=query.get("last_day"),
        )
        return Response(s.CommunityStatisticsSerializer(rows, many=True).data)
