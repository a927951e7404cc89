"""URL conf of the API load benchmark: the real URLs plus a bare DRF create for comparison."""

from __future__ import annotations

from django.urls import path
from rest_framework import serializers
from rest_framework.authentication import TokenAuthentication
from rest_framework.generics import CreateAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer

from config.urls import urlpatterns as project_urlpatterns
from marketplace.models import Posting


class BarePostingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Posting
        fields = ("id", "interval", "membership", "meter_point", "side", "quantity_kwh",
                  "limit_price_per_kwh")  # fmt: skip


class BarePostingCreate(CreateAPIView):
    """What DRF costs with nothing of ours: token auth, three foreign keys, one insert."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = []
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    serializer_class = BarePostingSerializer


urlpatterns = [
    path("bench/bare-postings/", BarePostingCreate.as_view()),
    *project_urlpatterns,
]
