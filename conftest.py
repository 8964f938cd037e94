"""Shared fixtures. Tests run on whatever DATABASE_URL/REDIS_URL select:

PostgreSQL + Redis in CI (production mode), SQLite + in-memory layers otherwise.
A configured service that is down fails the run; nothing is skipped for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings

# Test servers speak plain HTTP on 127.0.0.1, in production mode too: the
# servers these tests start inherit this. core/tests/test_security.py turns
# HTTPS on where it tests it.
os.environ.setdefault("HTTPS", "false")
# Tests scrape /metrics without a token; test_health_metrics.py checks that
# production mode closes it by default.
os.environ.setdefault("METRICS_PUBLIC", "true")

# Playwright fixtures and the in-process daphne server, shared by every app's
# browser tests (the Twisted reactor runs once per process).
pytest_plugins = ["core.tests.browser"]


def pytest_report_header(config: pytest.Config) -> str:
    from django.conf import settings as s

    db = s.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    redis = "yes" if s.REDIS_URL else "no (embedded)"
    return f"openclaw-inbox: database={db} redis={redis}"


def pytest_configure(config: pytest.Config) -> None:
    # As above, for this process (its settings may be read already).
    if os.environ["HTTPS"] == "false":
        settings.HTTPS = settings.SECURE_SSL_REDIRECT = False
        settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
        settings.SECURE_HSTS_SECONDS = 0
    if os.environ["METRICS_PUBLIC"] == "true":
        settings.METRICS_PUBLIC = True
    # Serve static files from the app folders, as embedded mode does, so tests
    # in production mode need no collectstatic step.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }
    settings.WHITENOISE_USE_FINDERS = True
    # Replies go through the worker in tests, whatever the mode; the web
    # process's immediate send has its own test.
    settings.INBOX_SEND_FROM_WEB = False
    # A trigger saved in a test is matched by the next message at once.
    settings.AUTOMATIONS_RULESET_TTL_SECONDS = 0
    settings.STATIC_ROOT = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
    """A failed test that used the real gateway reports what the gateway said.

    Its process output and its own log live in a temporary home that is gone
    once the session ends, and a flaky failure in CI is only worth something
    with them."""
    report = yield
    gateway = getattr(item, "funcargs", {}).get("real_gateway")
    if report.failed and gateway is not None:
        report.sections.append(("real gateway output", gateway.log_tail(120)))
        report.sections.append(("real gateway log", gateway.own_log_tail(200)))
    return report


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if settings.PRODUCTION:
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL: run with DATABASE_URL set (CI does)"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


# Set once the test database exists: what the data migrations installed.
MIGRATED_BUILTIN_TRIGGERS: list[str] = []


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # noqa: ANN001, ANN201
    """Tests start without the built-in triggers the data migration installs.

    Otherwise the first transactional test would see them and the rest (the
    tables are emptied after each) would not. Tests that want them use the
    ``builtin_triggers`` fixture; what the migration made is kept for a test.
    """
    from django.db import connection

    from automations.models import Trigger

    with django_db_blocker.unblock():
        if Trigger._meta.db_table not in connection.introspection.table_names():
            return  # no test in this run asked for the database
        MIGRATED_BUILTIN_TRIGGERS[:] = Trigger.objects.filter(
            is_builtin=True
        ).values_list("name", flat=True)
        Trigger.objects.all().delete()


@pytest.fixture
def builtin_triggers(db):  # noqa: ANN001, ANN201
    from automations.builtins import install
    from automations.models import Trigger, TriggerVersion

    install(Trigger, TriggerVersion)
    return list(Trigger.objects.in_order())


@pytest.fixture(autouse=True)
def _clean_shared_state() -> Iterator[None]:
    """Each test starts with an empty cache (rate limits) and job queue, in
    the default language and zone."""
    import dramatiq
    from channels.layers import channel_layers
    from django.core.cache import cache
    from django.utils import timezone, translation

    from automations import engine
    from core import masking
    from inbox import consumers, live

    cache.clear()
    engine.forget()
    masking.forget()  # admin patterns compiled by this process
    # A fresh channel layer per test: a consumer left from an earlier test (the
    # browser tests' server runs in another thread and event loop) may still
    # be receiving on the old one, and a Redis layer serves one loop at a time.
    channel_layers.backends = {}
    # Process memories keyed by ids that a fresh test database hands out again.
    live.forget()
    consumers.read_marks.clear()
    broker = dramatiq.get_broker()
    broker.flush_all()
    # A request answered in an agent's language leaves it active in its
    # thread (each request activates its own); the next test starts afresh.
    translation.deactivate()
    timezone.deactivate()
    yield
    broker.flush_all()


_booted: list[bool] = []


@pytest.fixture
def worker():  # noqa: ANN201
    """A real Dramatiq worker on the configured broker (Redis in CI)."""
    import dramatiq
    from dramatiq import Worker

    broker = dramatiq.get_broker()
    if not _booted:
        # Middleware start-up (e.g. the scheduler's) runs once per process.
        broker.emit_after("process_boot")
        _booted.append(True)
    worker = Worker(broker, worker_timeout=100, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def staff(db):  # noqa: ANN001, ANN201
    from core.testing import create_user

    return create_user(is_staff=True)


@pytest.fixture
def staff_client(staff):  # noqa: ANN001, ANN201
    from django.test import Client

    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture(scope="session", autouse=True)
def _close_database_pools(django_db_setup, django_db_blocker):  # noqa: ANN001, ANN202
    """Close pooled PostgreSQL connections before the test database is dropped.

    Threads such as the browser tests' server leave connections in the pool;
    without this, dropping the database fails with "being accessed by others".
    """
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if hasattr(connection, "close_pool"):
                connection.close_pool()
            connection.close()


# -- OpenClaw gateway -------------------------------------------------------------
# The simulated gateway (inbox.simulated_gateway) on 127.0.0.1, speaking the real
# one's WebSocket RPC: the client's pool, timeouts and error classes meet real
# sockets, never a mock.


@pytest.fixture
def gateway(settings):
    from inbox import gateway as gateway_module
    from inbox.simulated_gateway import GatewayServer

    with GatewayServer(token="test-gateway-token") as server:
        settings.OPENCLAW_GATEWAY_URL = server.url
        settings.OPENCLAW_GATEWAY_TOKEN = server.token
        gateway_module.reset_client()  # no socket left from another test's gateway
        yield server
    gateway_module.reset_client()


@pytest.fixture
def connector(gateway, transactional_db):
    """The connector reading ``gateway`` into the test database, on its own thread."""
    from core.testing import start_connector

    thread = start_connector(gateway.url, gateway.token)
    yield thread.connector
    thread.stop()


@pytest.fixture(scope="session")
def real_gateway():
    """The real OpenClaw gateway (npm openclaw, Node 24) with a stub model, a fake
    Telegram and the inbox plugin, once per test session: it takes ~10 s to start.

    Installed into .cache/openclaw on first use. Without npm it skips, except
    under CI, where it fails.
    """
    import os
    from pathlib import Path

    from django.conf import settings as django_settings

    from inbox.devgateway import InstallError, RealGateway, ensure_installed

    try:
        ensure_installed()
    except InstallError as exc:
        if exc.unreachable and not os.environ.get("CI"):
            pytest.skip(f"npm unreachable, no real gateway ({exc.summary})")
        pytest.fail(f"cannot install Node 24 + openclaw: {exc}")
    plugin = Path(django_settings.BASE_DIR) / "openclaw-plugin"
    gateway = RealGateway(plugin_paths=[plugin]).start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def real_inbox(real_gateway, settings, transactional_db):
    """The product wired to ``real_gateway``: its settings, a fresh client pool
    and the connector on a thread of its own (yielded, once live)."""
    from core.testing import start_connector
    from inbox import gateway as gateway_module

    settings.OPENCLAW_GATEWAY_URL = real_gateway.ws_url
    settings.OPENCLAW_GATEWAY_TOKEN = real_gateway.token
    gateway_module.reset_client()
    thread = start_connector()
    yield thread.connector
    thread.stop()
    gateway_module.reset_client()
