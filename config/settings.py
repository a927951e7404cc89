"""Settings for every environment, read from the process environment.

With no variables set, PeerGrid runs embedded on one machine: SQLite for data and kombu's
filesystem transport as the Celery broker, so a real worker and beat run with nothing to install
beyond Python packages. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and Redis, and
`DJANGO_ENV=production` turns on the deployment hardening that `manage.py check --deploy` wants.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PEERGRID_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DJANGO_ENV = os.environ.get("DJANGO_ENV", "development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("DJANGO_ENV must be development or production")
PRODUCTION = DJANGO_ENV == "production"

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        # A guessable key would let anyone forge sessions and password-reset links.
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production")
    SECRET_KEY = "peergrid-development-only-key-not-for-production"  # noqa: S105

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "csp",
    "accounts",
    "marketplace",
    "marketplace.ledger",
    "grid",
    "notifications",
    "simulation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside the API's error middleware, so the JSON errors it writes carry the policy too.
    "csp.middleware.CSPMiddleware",
    # Outermost but security and the policy: the API's errors from any layer below become its
    # JSON body.
    "config.middleware.ApiErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "config.middleware.AdminCommunityTimezoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "peergrid.sqlite3"
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    # Connections stay open between requests: reconnecting per request costs several times
    # the throughput of an order post; health checks drop a connection the server closed.
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            "OPTIONS": {
                # WAL lets the web server read while the worker writes; IMMEDIATE transactions
                # and a busy timeout make writers queue instead of failing "database is locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
    # A file, not memory, so a real worker process started by a test sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-peergrid.sqlite3")}
if os.environ.get("PEERGRID_DATABASE_NAME"):
    # Lets a worker process started by the test suite use the test database.
    DATABASES["default"]["NAME"] = os.environ["PEERGRID_DATABASE_NAME"]
USING_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts -------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "landing"
LOGOUT_REDIRECT_URL = "home"
# With EMAIL_HOST set, password-reset and notification mails go out by SMTP; without it they
# are printed (into the worker's log for notifications).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = 20
# The site's address, for the links in e-mails.
PEERGRID_BASE_URL = os.environ.get("PEERGRID_BASE_URL", "http://127.0.0.1:8000")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "PeerGrid <noreply@peergrid.local>")

# --- Internationalisation and time ----------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"  # stored and computed in UTC; a community's zone is for display only
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# --- Caches (sign-in throttling, API throttling, idempotency) -------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Every key this deployment writes to Redis (cache, broker queues, results) starts with it, so
# several deployments (or a benchmark) can share one Redis server without touching each other.
REDIS_PREFIX = os.environ.get("PEERGRID_REDIS_PREFIX", "")
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        # Django's RedisCache, minus a new redis-py client per call (see config/cache.py).
        {
            "BACKEND": "config.cache.ReusingRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
        }
        if REDIS_URL
        else {
            # Shared by the web server and the worker processes, unlike a per-process cache.
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    )
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {"visibility_timeout": 3600}
    if REDIS_PREFIX:
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = REDIS_PREFIX
        CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_PREFIX}
else:
    for folder in ("queue", "processed", "results", "control"):
        (CELERY_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    # One folder for in and out, so every process on this machine sees the same queue.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        # Broadcast (pidbox) exchange tables; kombu's default is ./control in the working dir.
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{CELERY_BROKER_DIR / 'results'}"
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("PEERGRID_QUEUE", "peergrid")
# With N > 1, each community's pipeline steps go to `<PEERGRID_QUEUE>.<community id mod N>`, so
# workers on several machines share the communities (README, "Scaling out").
PEERGRID_QUEUE_SHARDS = int(os.environ.get("PEERGRID_QUEUE_SHARDS", "1"))
if PEERGRID_QUEUE_SHARDS < 1:
    raise ImproperlyConfigured("PEERGRID_QUEUE_SHARDS must be 1 or more")
CELERY_TIMEZONE = "UTC"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Every periodic schedule lives here and nowhere else; beat copies it into its tables.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "heartbeat": {"task": "config.celery.heartbeat", "schedule": 30.0},
    # The interval pipeline: open horizons and queue every due step. Ticks expire before the
    # next one, so a backlog after an outage runs one tick, not hundreds.
    "pipeline-tick": {
        "task": "marketplace.pipeline_tick",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    # Members' autopilots post for the intervals whose gate closes within ten minutes; a tick
    # a minute reaches each of them several times, and each posts once.
    "autopilot-tick": {
        "task": "marketplace.autopilot_tick",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # The demo community's robots post ahead of gate closure and are metered after delivery
    # (a no-op without the demo community).
    "demo-tick": {"task": "simulation.demo_tick", "schedule": 60.0, "options": {"expires": 55}},
    # Re-walk the ledger's hash chain hourly, so the last verification the regulator and the
    # API show is never old; an edit of history is found within the hour.
    "ledger-verify": {"task": "ledger.verify", "schedule": 3600.0, "options": {"expires": 3000}},
    # Bill sharing's month-end true-up, hourly so it follows the last settlement of a month
    # within the hour; a month already trued up costs one query.
    "bill-sharing-true-up": {
        "task": "ledger.bill_sharing_true_up",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # Idempotency records keep an answer for a day; the table keeps only those still replayable.
    "idempotency-expire": {
        "task": "marketplace.idempotency_expire",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # Sign-in and password-reset counters live for at most half an hour; drop the spent ones.
    "rate-counters-expire": {
        "task": "accounts.rate_counters_expire",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # Last month's statements: checked every six hours, told once per member and month.
    "statements-due": {
        "task": "notifications.statements_due",
        "schedule": 6 * 3600.0,
        "options": {"expires": 3600},
    },
}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Personal access tokens first: a call with a Bearer header never falls back to a session.
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    # The API's one error format ({"code", "message", "fields"}) for every 4xx.
    "EXCEPTION_HANDLER": "marketplace.api.exceptions.api_exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # Fair use, the same for everyone of a role (see marketplace/api/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": ["marketplace.api.throttling.ApiRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "api_member": os.environ.get("API_RATE_MEMBER", "1200/min"),
        "api_regulator": os.environ.get("API_RATE_REGULATOR", "600/min"),
        "api_operator": os.environ.get("API_RATE_OPERATOR", "1200/min"),
        "api_ip": os.environ.get("API_RATE_IP", "6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PeerGrid API",
    "DESCRIPTION": "Peer-to-peer electricity trading for energy communities.",
    "VERSION": "1.0.0",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "marketplace.api.schema.postprocess_constraints",
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from the app's own static files: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two choice sets share the field name "status"; name their enums after the models.
    "ENUM_NAME_OVERRIDES": {
        "PostingStatusEnum": "marketplace.models.PostingStatus",
        "BidStatusEnum": "marketplace.models.BidStatus",
        "ErrorCodeEnum": "marketplace.api.schema.ERROR_CODE_CHOICES",
        "ClearingMechanismEnum": "marketplace.models.ClearingMechanism",
        "RegionMechanismEnum": "marketplace.models.RegionMechanism",
    },
}

# --- Content-Security-Policy -------------------------------------------------------------
# Every response carries it (django-csp's middleware; README, "Security"). Scripts, styles,
# images, fonts and connections come from this site only: no inline script, no event-handler
# attribute, no eval (htmx's is switched off in base.html), no inline style (the templates use
# classes, and our htmx config turns off the indicator style htmx would inject). Django's admin
# needs nothing more: its one inline <style> (admin/change_list.html) is written only when a
# ModelAdmin turns off both action bars, which config/tests/test_csp.py keeps every one from
# doing. The API's documentation pages add only what Swagger UI and Redoc need (config/urls.py).
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- Ledger integrity -----------------------------------------------------------------------
# The chain's HMAC key lives outside the database: someone who can write the ledger tables
# cannot forge an entry's hash without it. PEERGRID_LEDGER_KEY (any text, at least 32
# characters) wins; otherwise the key file, created on first start (see marketplace/ledger/keys.py).
LEDGER_KEY = os.environ.get("PEERGRID_LEDGER_KEY", "")
LEDGER_KEY_FILE = Path(os.environ.get("PEERGRID_LEDGER_KEY_FILE", VAR_DIR / "ledger.key"))
# Append-only checkpoint files (one per database), outside the database as well.
LEDGER_CHECKPOINT_DIR = Path(
    os.environ.get("PEERGRID_LEDGER_CHECKPOINT_DIR", VAR_DIR / "ledger-checkpoints")
)

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # pandapower announces at import that plotly (optional, unused here) is missing.
    "loggers": {"pandapower.plotting.plotly": {"level": "WARNING"}},
}

# --- Production hardening -------------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
    SESSION_COOKIE_HTTPONLY = True
