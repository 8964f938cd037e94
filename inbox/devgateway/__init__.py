"""The real OpenClaw gateway on this machine, for tests and local development.

Nothing here runs in production. ``install`` puts Node 24 and the pinned
``openclaw`` npm package into a cache folder; ``stub_model`` and
``fake_telegram`` stand in for the LLM provider and the Telegram Bot API the
gateway talks to; ``harness.RealGateway`` wires the three together in a
throw-away home on 127.0.0.1. ``manage.py openclaw_dev_gateway`` and the
``gateway``-marked tests are its users.
"""

from __future__ import annotations

from inbox.devgateway.fake_telegram import FakeTelegram, SentMessage
from inbox.devgateway.harness import GatewayNotReady, RealGateway
from inbox.devgateway.install import (
    Installation,
    InstallError,
    default_cache_dir,
    ensure_installed,
)
from inbox.devgateway.stub_model import ModelCall, StubModel

__all__ = [
    "FakeTelegram",
    "GatewayNotReady",
    "InstallError",
    "Installation",
    "ModelCall",
    "RealGateway",
    "SentMessage",
    "StubModel",
    "default_cache_dir",
    "ensure_installed",
]
