"""Bids: list, create, detail, withdraw, accept, reject."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.access import access_meter_point
from accounts.models import Membership, TokenScope, User
from config.errors import ApplicationError, ErrorCode
from marketplace.api import filters, schema
from marketplace.api import serializers as s
from marketplace.api.idempotency import idempotent
from marketplace.api.selectors import (
    decidable_bids,
    own_bids,
    own_trades,
    posting_with_interval,
)
from marketplace.api.views.base import (
    IDEMPOTENT,
    ApiView,
    FilteredListView,
    request_user,
)
from marketplace.models import Bid
from marketplace.selectors.board import bids_on_my_posting
from marketplace.services.bids import (
    bid_accept,
    bid_create,
    bid_modify,
    bid_reject,
    bid_withdraw,
)


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
        posting = posting_with_interval(pk=data["posting"])
        if posting is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such posting.", field="posting")
        meter_point = access_meter_point(request_user(request), data["meter_point"])
        bid = bid_create(
            membership=meter_point.membership,
            meter_point=meter_point,
            posting=posting,
            quantity_kwh=data["quantity_kwh"],
            price_per_kwh=data["price_per_kwh"],
        )
        bid = own_bids(user=request_user(request)).get(pk=bid.pk)
        return Response(s.BidSerializer(bid).data, status=status.HTTP_201_CREATED)


class BidDetailView(ApiView):
    serializer_class = s.BidSerializer
    model = Bid
    scopes: ClassVar[dict[str, str]] = {"PATCH": TokenScope.TRADE.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_bids(user=user)

    @extend_schema(
        operation_id="bids_retrieve", summary="One of your bids",
        responses=schema.responses(s.BidSerializer, *schema.DETAIL_ERRORS), tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.BidSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="bids_modify",
        summary="Modify your pending bid before gate closure (`trade` scope)",
        description="Send the quantity, the price or both. Lowering only the quantity keeps "
        "the bid's time priority (its `submitted_at`); any other change takes a new one. The "
        "checks of a new bid apply: what the posting still has, the meter point's capacity, "
        "the price band and the posting's limit.",
        parameters=IDEMPOTENT, request=s.BidModifySerializer,
        responses=schema.responses(s.BidSerializer, *schema.WRITE_ERRORS), tags=["trading"],
    )  # fmt: skip
    @idempotent
    def patch(self, request: Request, pk: int) -> Response:
        bid = self.get_object()
        body = s.BidModifySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        bid_modify(bid=bid, by_membership=bid.membership, **body.validated_data)
        return Response(s.BidSerializer(self.get_queryset().get(pk=bid.pk)).data)


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
        user = request_user(self.request)
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
        return Response(
            s.BidSerializer(own_bids(user=request_user(request)).get(pk=withdrawn.pk)).data
        )


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
        trade = own_trades(user=request_user(request)).get(pk=trade.pk)
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
