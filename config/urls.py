"""PeerGrid's URL map: the pages, the admin, the API and its documentation, and health."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("start/", views.landing, name="landing"),
    path("help/glossary/", views.glossary, name="glossary"),
    path("accounts/", include("accounts.urls")),
    path("ledger/", include("marketplace.ledger.urls")),
    path("regulator/", include("marketplace.oversight.urls")),
    path("notifications/", include("notifications.urls")),
    path("", include("marketplace.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

handler403 = "config.views.permission_denied"
