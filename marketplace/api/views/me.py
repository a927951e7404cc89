"""The caller: who am I, which memberships and scopes."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import AnyScope, request_scopes
from accounts.selectors import memberships_of_user
from marketplace.api import schema
from marketplace.api import serializers as s
from marketplace.api.views.base import ApiView, request_user


class MeView(ApiView):
    """Any valid token may ask who it is and what it may do, whatever its scopes."""

    def get_permissions(self) -> list[BasePermission]:
        return [IsAuthenticated(), AnyScope()]

    @extend_schema(
        operation_id="me", summary="The caller, their memberships and this request's scopes",
        responses=schema.responses(s.MeSerializer, 403), tags=["account"],
    )  # fmt: skip
    def get(self, request: Request) -> Response:
        user = request_user(request)
        memberships = memberships_of_user(user=user)
        data = {
            "email": user.email,
            "display_name": user.display_name,
            "is_regulator": user.is_regulator,
            "scopes": sorted(request_scopes(request)),
            "memberships": memberships.order_by("community__slug"),
        }
        return Response(s.MeSerializer(data).data)
