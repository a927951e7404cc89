"""The anonymised board of one interval."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.selectors import membership_of_user_in
from config.errors import ApplicationError, ErrorCode, ObjectNotFoundError
from marketplace.api import schema
from marketplace.api import serializers as s
from marketplace.api.views.base import ApiView, request_user
from marketplace.models import Interval, Posting
from marketplace.selectors.board import board_postings
from marketplace.selectors.communities import community_by_slug


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
        viewer = membership_of_user_in(
            user=request_user(request), community_slug=query["community"]
        )
        if viewer is None:
            if community_by_slug(slug=query["community"]) is None:
                raise ObjectNotFoundError("No such community.", field="community")
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
