"""The app's ASGI routes plus the live benchmark's raw forwarding consumer.

Served the same way as ``core.asgi`` (session auth, origin check), so the
baseline differs from the app only in what the consumer does per message.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from bench.seed.consumers import RawForwardConsumer  # noqa: E402
from core.asgi import http_application  # noqa: E402  (HTTP as the app serves it)
from inbox.consumers import InboxConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter(
                    [
                        path("ws/inbox/", InboxConsumer.as_asgi()),
                        path("ws/bench-raw/", RawForwardConsumer.as_asgi()),
                    ]
                )
            )
        ),
    }
)
