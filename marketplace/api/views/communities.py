"""Communities and their market rules."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from accounts.permissions import CanReadMarket, IsCommunityManager, readable_communities
from marketplace.api import schema
from marketplace.api import serializers as s
from marketplace.api.views.base import ApiView, request_user
from marketplace.models import Community, MarketRules
from marketplace.selectors.communities import community_by_slug
from marketplace.services.rules import current_rules, market_rules_update


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
        return community_by_slug(slug=self.kwargs["slug"])

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
            community=community, changed_by=request_user(request), **body.validated_data
        )
        return Response(s.MarketRulesSerializer(rules).data)
