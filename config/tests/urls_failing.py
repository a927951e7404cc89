"""The project's URLs plus a page and an API path that fail, for the error-response tests."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a failure the tests asked for")


urlpatterns = [
    path("failing/", fail),
    path("api/v1/failing/", fail),
    *project_urlpatterns,
]
