"""What every API view shares: JSON only, paginated, throttled, scopes per HTTP method."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import BasePagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import TokenScope, User
from accounts.permissions import HasTokenScope
from config.errors import ApplicationError, ErrorCode
from marketplace.api import schema
from marketplace.api.pagination import ApiPagination
from marketplace.api.parsers import BoundedJSONParser

IDEMPOTENT = [schema.IDEMPOTENCY_KEY]


def request_user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)  # every view needs authentication first
    return user


class ApiView(GenericAPIView):
    """JSON only (one request format for clients and for the schema), paginated, throttled.

    ``scopes`` maps an HTTP method to the token scope it needs; GET needs `read`.
    """

    parser_classes = [BoundedJSONParser]
    renderer_classes = [JSONRenderer]
    pagination_class: type[BasePagination] | None = ApiPagination
    filter_backends = []
    scopes: ClassVar[dict[str, str]] = {}
    # What the view lists; the schema generator reads it without a request.
    model: ClassVar[type[Model] | None] = None

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False) and self.model is not None:
            return self.model._default_manager.none()
        return self.visible_queryset(request_user(self.request))

    def visible_queryset(self, user: User) -> QuerySet[Any]:
        """What ``user`` may see of this view's objects; every view that reads says it."""
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
                    ErrorCode.FORBIDDEN_CHARACTER,
                    "Query parameters cannot contain NUL.",
                    field=name[:50],
                )
            # ``?interval=`` is not "any interval": the schema gives every parameter a type or a
            # minimum length that an empty value breaks, so it is refused, not ignored.
            if any(value == "" for value in values):
                raise ApplicationError(
                    ErrorCode.BLANK, "Give a value or leave the parameter out.", field=name[:50]
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
