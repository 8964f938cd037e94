"""Bench-only settings: the app's own settings plus the baselines' app and URLs.

Everything the app does is unchanged (same database pool, middleware, channel
layer, cache); the baselines are served through the same stack so a ratio
compares view code, not configuration. ``STATIC_ROOT`` points inside
``bench/results`` so the inbox page can run with the manifest storage of
production mode without writing outside bench/.
"""

from core.settings import *  # noqa: F403
from core.settings import BASE_DIR, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.seed"]
ROOT_URLCONF = "bench.urls"
ASGI_APPLICATION = "bench.asgi.application"
STATIC_ROOT = BASE_DIR / "bench" / "results" / "staticfiles"
