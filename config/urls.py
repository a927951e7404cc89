"""PeerGrid's URL map: the pages, the admin, the API and its documentation, and health."""

from csp.constants import NONCE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from config import views

# Swagger UI and Redoc draw their icons as data: images, beyond the site's policy
# (config/settings.py); Redoc also writes its styles as <style> elements at run time, which
# carry the request's nonce (templates/drf_spectacular/redoc.html). Scripts stay as strict as on
# every page, and no page allows inline styles without that nonce.
# Before it reads its nonce, Redoc's bundle writes two <style> elements of its own: empty ones
# (styled-components fills them through the CSSOM, which the policy does not govern) and one
# fixed stylesheet. Their hashes allow exactly those; the browser test of the page fails if a
# new Redoc writes anything else.
REDOC_STYLE_HASHES = [
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty string
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
]
docs_policy = csp_update({"img-src": ["data:"]})
redoc_policy = csp_update(
    {
        "img-src": ["data:"],
        "style-src": [NONCE, *REDOC_STYLE_HASHES],
        # Its search index is built in a worker the bundle makes from a blob: URL.
        "worker-src": ["blob:"],
    }
)

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
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
    # The split view serves its start-up script from a URL (?script), not inline.
    path(
        "api/docs/",
        docs_policy(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        redoc_policy(SpectacularRedocView.as_view(url_name="api-schema")),
        name="api-redoc",
    ),
]

handler403 = "config.views.permission_denied"
