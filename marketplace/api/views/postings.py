"""Postings: list, create, detail, modify, cancel, the bids on one."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import TokenScope, User
from config.errors import ApplicationError, ErrorCode
from marketplace.api import filters, schema
from marketplace.api import serializers as s
from marketplace.api.idempotency import idempotent
from marketplace.api.selectors import own_postings
from marketplace.api.views.base import (
    IDEMPOTENT,
    ApiView,
    FilteredListView,
    request_user,
)
from marketplace.models import Interval, Posting
from marketplace.selectors.board import bids_on_my_posting
from marketplace.services.postings import (
    posting_cancel,
    posting_create_by_owner,
    posting_modify,
)


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
        try:
            # The service locks the interval and the caller's meter point by their ids first
            # thing (checking the meter point is the caller's in that statement); reading
            # either here as well would cost the hot path a query each.
            posting = posting_create_by_owner(
                owner=request_user(request),
                meter_point_id=data["meter_point"],
                interval_id=data["interval"],
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
        return Response(s.posting_data(posting), status=status.HTTP_201_CREATED)


class PostingDetailView(ApiView):
    serializer_class = s.PostingSerializer
    model = Posting
    scopes: ClassVar[dict[str, str]] = {"PATCH": TokenScope.TRADE.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return own_postings(user=user)

    @extend_schema(
        operation_id="postings_retrieve", summary="One of your postings",
        responses=schema.responses(s.PostingSerializer, *schema.DETAIL_ERRORS), tags=["trading"],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.posting_data(self.get_object()))

    @extend_schema(
        operation_id="postings_modify",
        summary="Modify your open posting before gate closure (`trade` scope)",
        description="Send the quantity, the limit price or both. Lowering only the quantity "
        "keeps the posting's time priority (its `submitted_at`); any other change takes a new "
        "one. Pending bids that a new price no longer admits expire.",
        parameters=IDEMPOTENT, request=s.PostingModifySerializer,
        responses=schema.responses(s.PostingSerializer, *schema.WRITE_ERRORS), tags=["trading"],
    )  # fmt: skip
    @idempotent
    def patch(self, request: Request, pk: int) -> Response:
        posting = self.get_object()
        body = s.PostingModifySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        posting_modify(posting=posting, by_membership=posting.membership, **body.validated_data)
        return Response(s.posting_data(self.get_queryset().get(pk=posting.pk)))


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
        return Response(s.posting_data(self.get_queryset().get(pk=posting.pk)))


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
        posting = get_object_or_404(own_postings(user=request_user(request)), pk=pk)
        rows = bids_on_my_posting(membership=posting.membership, posting=posting)
        return self.paginated(rows, s.PostingBidSerializer)
