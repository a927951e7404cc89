"""Meter points and their readings."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.access import access_own_membership
from accounts.models import MeterPoint, TokenScope, User
from accounts.permissions import CanSendMeterReadings, token_community_id, visible_meter_points
from accounts.services import meter_point_approve, meter_point_register, meter_point_reject
from marketplace.api import filters, schema
from marketplace.api import serializers as s
from marketplace.api.idempotency import idempotent
from marketplace.api.selectors import (
    managed_meter_points,
    managed_readings,
    own_meter_points,
    own_readings,
)
from marketplace.api.views.base import IDEMPOTENT, ApiView, FilteredListView, request_user
from marketplace.ledger.models import MeterReading
from marketplace.ledger.services.readings import meter_reading_accept, meter_readings_submit


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
        user = request_user(request)
        membership = access_own_membership(user, community_slug=data.pop("community"))
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


class ManagedMeterPointListView(FilteredListView):
    """Every meter point of the communities the caller manages: the approval queue."""

    serializer_class = s.MeterPointSerializer
    filterset_class = filters.MeterPointFilter
    model = MeterPoint
    scopes: ClassVar[dict[str, str]] = {"GET": TokenScope.MANAGE.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return managed_meter_points(user=user)

    @extend_schema(
        operation_id="meter_points_managed_list",
        summary="Meter points of the communities you manage (`manage` scope); "
        "`?status=pending` is the approval queue",
        responses=schema.responses(s.MeterPointSerializer(many=True), *schema.READ_ERRORS),
        tags=["metering"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        return self.list(request)


class MeterPointApproveView(ApiView):
    serializer_class = s.MeterPointSerializer
    model = MeterPoint
    scopes: ClassVar[dict[str, str]] = {"POST": TokenScope.MANAGE.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return visible_meter_points(user).select_related("membership__community")

    @extend_schema(
        operation_id="meter_points_approve",
        summary="Approve a meter point with its capacities and bus (managers, `manage` scope)",
        description="Capacities above the community's `max_connection_kw` rule are refused "
        "(`above_max_connection`); in a community with a network the bus is required. The "
        "member is notified.",
        parameters=IDEMPOTENT, request=s.MeterPointApproveSerializer,
        responses=schema.responses(s.MeterPointSerializer, *schema.WRITE_ERRORS),
        tags=["metering"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        body = s.MeterPointApproveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        meter_point = meter_point_approve(
            meter_point=self.get_object(), approved_by=request_user(request), **body.validated_data
        )
        return Response(s.MeterPointSerializer(meter_point).data)


class MeterPointRejectView(ApiView):
    serializer_class = s.MeterPointSerializer
    model = MeterPoint
    scopes: ClassVar[dict[str, str]] = {"POST": TokenScope.MANAGE.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return visible_meter_points(user).select_related("membership__community")

    @extend_schema(
        operation_id="meter_points_reject",
        summary="Reject a meter point (managers, `manage` scope); it cannot trade",
        parameters=IDEMPOTENT, request=s.MeterPointRejectSerializer,
        responses=schema.responses(s.MeterPointSerializer, *schema.WRITE_ERRORS),
        tags=["metering"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        body = s.MeterPointRejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        meter_point = meter_point_reject(
            meter_point=self.get_object(),
            rejected_by=request_user(request),
            reason=body.validated_data.get("reason", ""),
        )
        return Response(s.MeterPointSerializer(meter_point).data)


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
        summary="Upload a community's readings in bulk (`meter_data` scope: its metering "
        "source); each row is reported",
        description="Only a metering source sends readings: a manager of the community, or a "
        "`meter_data` token a manager issued for it; a member's own token is refused with 403 "
        "`not_metering_source`. A malformed body is a 400 and stores nothing. Otherwise every "
        "row is checked on its own: refused rows (`negative_reading`, `over_capacity` beyond "
        "the approved capacity x interval hours, `meter_point_not_approved`, ...) say why; a "
        "row far above the meter's history is stored but `flagged` (`reading_jump`) and settles "
        "nothing until a manager accepts it; an identical re-upload stores nothing "
        "(`unchanged`), and a changed reading becomes a new version.",
        parameters=IDEMPOTENT, request=s.ReadingsUploadSerializer,
        responses=schema.responses(s.ReadingReportSerializer, *schema.WRITE_ERRORS),
        tags=["metering"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request) -> Response:
        body = s.ReadingsUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report = meter_readings_submit(
            submitted_by=request_user(request),
            readings=body.validated_data["readings"],
            token_community_id=token_community_id(request),
        )
        data = {
            "accepted": len(report.accepted),
            "refused": len(report.refused),
            "flagged": len(report.flagged),
            "rows": [row.__dict__ for row in report.rows],
            "adjustment_ids": list(report.adjustment_ids),
        }
        return Response(s.ReadingReportSerializer(data).data)


class MeterReadingAcceptView(ApiView):
    serializer_class = s.ReadingReportSerializer
    model = MeterReading
    scopes: ClassVar[dict[str, str]] = {"POST": TokenScope.MANAGE.value}

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        return managed_readings(user=user)

    @extend_schema(
        operation_id="meter_readings_accept",
        summary="Accept a flagged reading (managers, `manage` scope): it settles from now on",
        description="Books an adjustment when its interval was settled already.",
        parameters=IDEMPOTENT, request=None,
        responses=schema.responses(s.ReadingReportSerializer, *schema.WRITE_ERRORS),
        tags=["metering"],
    )  # fmt: skip
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        report = meter_reading_accept(reading=self.get_object(), accepted_by=request_user(request))
        data = {
            "accepted": len(report.accepted),
            "refused": 0,
            "flagged": 0,
            "rows": [row.__dict__ for row in report.rows],
            "adjustment_ids": list(report.adjustment_ids),
        }
        return Response(s.ReadingReportSerializer(data).data)
