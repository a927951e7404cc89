"""Settings for the API load benchmark only: the project's settings plus a bare DRF baseline.

The baseline (DRF's own token authentication and a plain ModelSerializer create) lives in
``bench/api_urls.py`` and never in the production URL conf.
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS, LOGGING

INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework.authtoken"]
ROOT_URLCONF = "bench.api_urls"
DEBUG = False  # DEBUG keeps every query in memory and slows every request
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# A 4xx per request would otherwise be a log line per request.
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "ERROR"}}
