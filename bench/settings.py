"""Bench-only settings: the app's own settings plus the baselines' app and URLs.

Everything the app does is unchanged (same database pool, middleware, channel
layer, cache); the baselines are served through the same stack so a ratio
compares view code, not configuration. ``STATIC_ROOT`` points inside
``bench/results`` so the inbox page can run with the manifest storage of
production mode without writing outside bench/.
"""

import os

from core.settings import *  # noqa: F403
from core.settings import BASE_DIR, CHANNEL_LAYERS, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.seed"]
ROOT_URLCONF = "bench.urls"
ASGI_APPLICATION = "bench.asgi.application"
STATIC_ROOT = BASE_DIR / "bench" / "results" / "staticfiles"

# What-if for the live benchmark only (BENCH_CHANNEL_LAYER=core): the
# list-based Redis layer, which stores a group message once per consumer,
# instead of the app's pub/sub layer. Unset, the app's own layer is used.
if os.environ.get("BENCH_CHANNEL_LAYER") == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": CHANNEL_LAYERS["default"]["CONFIG"]["hosts"],
                "prefix": CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
