"""Settings, read from the environment.

Two modes share this one file:

* **Embedded** (no ``DATABASE_URL``): SQLite in WAL mode, the in-memory channel
  layer, a local-memory cache and Dramatiq's in-process broker. One process
  serves everything; ``manage.py serve`` starts a worker thread inside it.
* **Production** (``DATABASE_URL`` points at PostgreSQL, ``REDIS_URL`` at Redis):
  pooled PostgreSQL connections, Redis for channels, cache and Dramatiq. Secrets
  have no defaults here: the process refuses to start without them.
"""

import os
import re
import tempfile
import zoneinfo
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


class StrictEnv(environ.Env):
    """django-environ, refusing at start what it would quietly misread: a
    mistyped boolean (``DEBUG=flase`` reads as False), a number that is not
    one, a negative limit."""

    TRUE = frozenset(("true", "1", "yes", "on", "y", "t"))
    FALSE = frozenset(("false", "0", "no", "off", "n", "f", ""))

    def bool(self, var: str, default: object = environ.Env.NOTSET) -> bool:
        raw = os.environ.get(var)
        if raw is not None and raw.strip().lower() not in self.TRUE | self.FALSE:
            raise ImproperlyConfigured(
                f"{var}={raw!r} is not a boolean: use true or false "
                "(1/0, yes/no and on/off work too)"
            )
        return super().bool(var, default=default)

    def int(self, var: str, default: object = environ.Env.NOTSET) -> int:
        return self._number(var, default, int, "a whole number")

    def float(self, var: str, default: object = environ.Env.NOTSET) -> float:
        return self._number(var, default, float, "a number")

    def _number(self, var: str, default: object, kind: type, what: str) -> Any:
        raw = os.environ.get(var)
        if raw is None:
            return super().get_value(var, cast=kind, default=default)
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ImproperlyConfigured(f"{var}={raw!r} is not {what}") from None
        if value < 0 or value != value:  # negative, or NaN
            raise ImproperlyConfigured(f"{var}={raw!r} must be 0 or more")
        return value


env = StrictEnv()

PRODUCTION = bool(os.environ.get("DATABASE_URL"))
if PRODUCTION and not os.environ.get("REDIS_URL"):
    raise ImproperlyConfigured(
        "DATABASE_URL is set but REDIS_URL is not: production mode needs both "
        "(Redis carries live updates, jobs and rate limits between processes)."
    )


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(
            f"{name} must be set in production mode (DATABASE_URL is set). "
            f"Refusing to start with a guessable default."
        )
    return value


DEBUG = env.bool("DEBUG", default=not PRODUCTION)

if PRODUCTION:
    SECRET_KEY = _required("SECRET_KEY")
    # Comma-separated so a new secret can be added before the old one is retired.
    OPENCLAW_WEBHOOK_SECRETS = [
        s.strip() for s in _required("OPENCLAW_WEBHOOK_SECRET").split(",") if s.strip()
    ]
else:
    SECRET_KEY = env.str("SECRET_KEY", default="embedded-mode-not-for-production")
    OPENCLAW_WEBHOOK_SECRETS = env.list(
        "OPENCLAW_WEBHOOK_SECRET", default=["dev-webhook-secret"]
    )

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# When set, /metrics answers only requests with "Authorization: Bearer <token>".
# Without it, /metrics is closed in production mode (it names queues, sessions
# and error rates) unless METRICS_PUBLIC says it is open on purpose (a port
# only Prometheus reaches); the embedded default leaves it open.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=not PRODUCTION)

# The gateway's WebSocket RPC, e.g. ws://127.0.0.1:18789 (its default port).
# Empty: no gateway (replies fail with that reason; no connector runs).
OPENCLAW_GATEWAY_URL = env.str("OPENCLAW_GATEWAY_URL", default="")
OPENCLAW_GATEWAY_TOKEN = env.str("OPENCLAW_GATEWAY_TOKEN", default="")
# Sessions the connector stores at once (PostgreSQL; SQLite takes one writer).
OPENCLAW_CONNECTOR_SHARDS = env.int("OPENCLAW_CONNECTOR_SHARDS", default=4)

# Webhook intake limits.
OPENCLAW_WEBHOOK_MAX_BYTES = env.int("OPENCLAW_WEBHOOK_MAX_BYTES", default=1_048_576)
OPENCLAW_WEBHOOK_TOLERANCE_SECONDS = env.int(
    "OPENCLAW_WEBHOOK_TOLERANCE_SECONDS", default=300
)


# Two budgets per source address, kept in the cache (Redis in production):
# correctly signed deliveries (RATE), and requests refused before they proved
# to be ours (JUNK_RATE; past it they get 429). Junk never spends the first.
def _rate(name: str, default: str) -> str:
    value = env.str(name, default=default)
    if not re.fullmatch(r"[1-9]\d*/\d*[smhd]", value):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: write requests per period, "
            "e.g. 6000/m (s, m, h or d; 100/5m for five minutes)"
        )
    return value


def _time_zone(name: str, default: str) -> str:
    value = env.str(name, default=default).strip()
    if value not in zoneinfo.available_timezones():
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a time zone: use an IANA name such as "
            "UTC, Europe/London or Asia/Seoul"
        )
    return value


OPENCLAW_WEBHOOK_RATE = _rate("OPENCLAW_WEBHOOK_RATE", "6000/m")
OPENCLAW_WEBHOOK_JUNK_RATE = _rate("OPENCLAW_WEBHOOK_JUNK_RATE", "120/m")
# Refused deliveries are counted (metrics) and the first few of each kind a
# minute are kept as rows, body capped: a flood of junk is not a flood of rows.
OPENCLAW_WEBHOOK_REJECTION_SAMPLES = env.int(
    "OPENCLAW_WEBHOOK_REJECTION_SAMPLES", default=20
)
OPENCLAW_MAX_TEXT_CHARS = env.int("OPENCLAW_MAX_TEXT_CHARS", default=16_000)

# Automations' "call webhook" action refuses loopback, private, link-local and
# other non-public addresses (SSRF); IPs or CIDR networks listed here pass anyway.
AUTOMATIONS_WEBHOOK_ALLOWLIST = [
    e.strip()
    for e in env.list("AUTOMATIONS_WEBHOOK_ALLOWLIST", default=[])
    if e.strip()
]


def _check_networks(name: str, entries: list[str]) -> None:
    import ipaddress  # here, not at the top: keeps this block self-contained

    for entry in entries:
        try:
            ipaddress.ip_network(entry)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not an IP address or CIDR network ({exc})."
            ) from exc


_check_networks("AUTOMATIONS_WEBHOOK_ALLOWLIST", AUTOMATIONS_WEBHOOK_ALLOWLIST)

# Takeover and replies.
# A customer writing to a resolved conversation goes back to its last agent
# (True) or to the bot (False).
INBOX_REOPEN_TO_AGENT = env.bool("INBOX_REOPEN_TO_AGENT", default=False)
# The escalation queue turns amber, then red, after this long without a human.
INBOX_SLA_AMBER_SECONDS = env.int("INBOX_SLA_AMBER_SECONDS", default=120)
INBOX_SLA_RED_SECONDS = env.int("INBOX_SLA_RED_SECONDS", default=300)
# A reply the gateway keeps refusing for a transient reason is retried with
# exponential backoff (capped) until it is this old, then shown as failed.
INBOX_REPLY_GIVE_UP_SECONDS = env.int("INBOX_REPLY_GIVE_UP_SECONDS", default=900)
INBOX_REPLY_BACKOFF_SECONDS = env.float("INBOX_REPLY_BACKOFF_SECONDS", default=1.0)
INBOX_REPLY_BACKOFF_MAX_SECONDS = env.float(
    "INBOX_REPLY_BACKOFF_MAX_SECONDS", default=30.0
)
INBOX_MAX_REPLY_CHARS = env.int("INBOX_MAX_REPLY_CHARS", default=4_000)
# Send a reply from the web process right after it is saved, with the
# Dramatiq job (delayed by INBOX_REPLY_FALLBACK_SECONDS) as the safety net.
INBOX_SEND_FROM_WEB = env.bool("INBOX_SEND_FROM_WEB", default=PRODUCTION)
INBOX_REPLY_FALLBACK_SECONDS = env.float("INBOX_REPLY_FALLBACK_SECONDS", default=5.0)
# Replies the web process sends at the same time; more (a burst) go to the
# worker at once, which runs on other cores.
INBOX_WEB_SEND_SLOTS = env.int("INBOX_WEB_SEND_SLOTS", default=2)
# Threads of the web process's reply sender (inbox.tasks); each may hold a
# database connection.
INBOX_WEB_SENDER_THREADS = 4
# A conversation waiting in the escalation queue has its bot paused at the
# gateway (as a human-owned one); off, the bot keeps answering until someone
# takes it over. The conversation header says which.
INBOX_PAUSE_BOT_WHILE_QUEUED = env.bool("INBOX_PAUSE_BOT_WHILE_QUEUED", default=True)
# Round-robin of escalated conversations among online agents, each holding at
# most INBOX_AUTO_ASSIGN_CAP conversations at once.
INBOX_AUTO_ASSIGN = env.bool("INBOX_AUTO_ASSIGN", default=False)
INBOX_AUTO_ASSIGN_CAP = env.int("INBOX_AUTO_ASSIGN_CAP", default=5)

# Automations: customer text is matched up to this many characters; a trigger
# never acts on a message an action produced (depth 1 and more); a
# conversation gets at most this many trigger actions a minute.
AUTOMATIONS_MATCH_CHARS = env.int("AUTOMATIONS_MATCH_CHARS", default=4_000)
AUTOMATIONS_MAX_DEPTH = env.int("AUTOMATIONS_MAX_DEPTH", default=1)
AUTOMATIONS_MAX_ACTIONS_PER_MINUTE = env.int(
    "AUTOMATIONS_MAX_ACTIONS_PER_MINUTE", default=20
)
# Workers look for changed triggers at most this often.
AUTOMATIONS_RULESET_TTL_SECONDS = env.float(
    "AUTOMATIONS_RULESET_TTL_SECONDS", default=1.0
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "template_partials",
    "django_dramatiq",
    "dramatiq_crontab",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "core",
    "inbox",
    "automations",
    "reports",
    "monitors",
    "operations",
]

# WhiteNoise is sync-only. Placed innermost, it makes Django run the whole
# chain in sync mode: one hop to a worker thread per request. Placed near the
# top (its usual spot), every middleware below it ran in async mode and hopped
# to a thread for each hook: measured as most of the CPU of a webhook.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's Accept-Language (en or ko), until an agent picks one:
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # ... which this one applies, with their time zone (core.models.Profile).
    "core.middleware.AgentPreferencesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last but WhiteNoise, as django-axes asks: it turns a lockout into its page.
    "axes.middleware.AxesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "core.urls"
ASGI_APPLICATION = "core.asgi.application"

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
                "inbox.context_processors.bell",
                "core.context_processors.navigation",
            ],
        },
    }
]

# HTTP requests one web process serves at once, each on its own thread
# (core.asgi: a2wsgi's pool). A request waiting on a row lock holds one; the
# rest keep answering. Each holds a pooled database connection while it runs.
WEB_THREADS = env.int("WEB_THREADS", default=12)
if WEB_THREADS < 1:
    raise ImproperlyConfigured(f"WEB_THREADS must be at least 1, not {WEB_THREADS}.")
# No request body above this is read at all (core.asgi.RequestGuard answers
# 413 first): Django's own limits apply only once a body is being parsed, and
# not to file fields, which it spools to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, OPENCLAW_WEBHOOK_MAX_BYTES + 1)
WEB_MAX_BODY_BYTES = env.int(
    "WEB_MAX_BODY_BYTES",
    default=DATA_UPLOAD_MAX_MEMORY_SIZE,
)

if PRODUCTION:
    DATABASES = {"default": env.db("DATABASE_URL")}
    # Django's own psycopg pool: persistent connections per ASGI thread exhaust
    # PostgreSQL under load, a bounded pool does not.
    DB_POOL_MAX = env.int("DB_POOL_MAX", default=20)
    # Besides the HTTP threads: the reply senders and the websockets' thread.
    needed = WEB_THREADS + INBOX_WEB_SENDER_THREADS + 1
    if needed > DB_POOL_MAX:
        raise ImproperlyConfigured(
            f"WEB_THREADS ({WEB_THREADS}) needs DB_POOL_MAX of at least "
            f"{needed} (it is {DB_POOL_MAX}): every HTTP thread, reply "
            "sender and the websockets' thread may hold a connection at once."
        )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=2),
        "max_size": DB_POOL_MAX,
        "timeout": env.int("DB_POOL_TIMEOUT", default=10),
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": Path(os.environ.get("SQLITE_PATH") or BASE_DIR / "db.sqlite3"),
            "OPTIONS": {
                # WAL lets readers run beside the writer; IMMEDIATE takes the
                # write lock up front instead of failing on upgrade.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # Tests get a file too, not Django's shared-cache in-memory default:
            # shared cache fails a second connection at once ("table is locked")
            # instead of waiting, and the browser tests' server is a second one.
            "TEST": {
                "NAME": Path(tempfile.gettempdir())
                / f"openclaw-inbox-test-{os.getpid()}.sqlite3"
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis shares one connection pool per process; Django's own
            # Redis backend builds one per thread, and daphne runs every request
            # in a new thread (measured: a new connection per webhook).
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_PREFIX", default="openclaw"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: a group message reaches each process once and is fanned
            # out to its tabs in memory. The list-based layer stores one copy
            # per tab in Redis and pops them one at a time (measured: 200 tabs
            # at 20 messages a second, p50 1 s behind against 97 ms). Both
            # deliver at most once; the tabs' catch-up fills what is lost.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # The subscriber waits in 0.1 s polls that never notice a
                # connection dropped without a close (a failover): a PING
                # every 30 s finds it, and redis-py reconnects and subscribes
                # again. Until then the tabs' 20 s sweep keeps them current.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 15,
                        "socket_keepalive": True,
                        "health_check_interval": 30,
                    }
                ],
                # Pub/sub channels ignore the Redis database number: the
                # default prefix carries it, so two deployments (or CI and a
                # dev server) on one Redis with different databases stay apart.
                "prefix": env.str(
                    "CHANNELS_PREFIX",
                    default=f"openclaw:asgi:{urlparse(REDIS_URL).path.strip('/') or 0}",
                ),
            },
        }
    }
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.redis.RedisBroker",
        "OPTIONS": {
            "url": REDIS_URL,
            "namespace": env.str("DRAMATIQ_NAMESPACE", default="openclaw-dramatiq"),
        },
        "MIDDLEWARE": [
            "dramatiq.middleware.AgeLimit",
            "dramatiq.middleware.TimeLimit",
            "dramatiq.middleware.Callbacks",
            "dramatiq.middleware.Retries",
            "django_dramatiq.middleware.DbConnectionsMiddleware",
            # After-hooks run last to first: this one confirms, then the
            # connection it used is closed.
            "core.jobs.ConfirmOutbox",
            # The scheduler's last runs, for the system page (operations).
            "operations.jobs.RecordJobRuns",
        ],
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.stub.StubBroker",
        "OPTIONS": {},
        "MIDDLEWARE": [
            "dramatiq.middleware.AgeLimit",
            "dramatiq.middleware.TimeLimit",
            "dramatiq.middleware.Callbacks",
            "dramatiq.middleware.Retries",
            "django_dramatiq.middleware.DbConnectionsMiddleware",
            # After-hooks run last to first: this one confirms, then the
            # connection it used is closed.
            "core.jobs.ConfirmOutbox",
            # The scheduler's last runs, for the system page (operations).
            "operations.jobs.RecordJobRuns",
        ],
    }

DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]
# Outbox jobs (core/outbox.py) not confirmed after this long are sent again,
# at most this many times in all.
OUTBOX_RESEND_SECONDS = env.int("OUTBOX_RESEND_SECONDS", default=60)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=10)
# The scheduler (Procfile "scheduler") holds a Redis lock, so starting it on
# several machines still enqueues each periodic job once. The others wait for
# the lock as standbys (the library's default gives up after 15 s and exits,
# which stops every process under honcho, and nothing takes over later).
DRAMATIQ_CRONTAB = (
    {"REDIS_URL": REDIS_URL, "LOCK_BLOCKING_TIMEOUT": None} if REDIS_URL else {}
)
OPENCLAW_DELIVERY_RETENTION_DAYS = env.int(
    "OPENCLAW_DELIVERY_RETENTION_DAYS", default=30
)
# Ops commands from a chat (operations app): senders allowed to send them as
# platform:sender_id (more are added in the admin), and the admin's own
# commands as JSON: {"name": {"argv": [...], "timeout": 30, "dangerous": false}}.
# Checked at start (operations.config).
OPS_COMMAND_SENDERS = [
    e.strip() for e in env.list("OPS_COMMAND_SENDERS", default=[]) if e.strip()
]
OPS_COMMANDS = env.json("OPS_COMMANDS", default={})


# The daily digest (reports app): sent once a day at INBOX_DIGEST_TIME (HH:MM
# in TIME_ZONE) about the day before, to a gateway target and by email.
def _clock_time(name: str, default: str) -> str:
    value = env.str(name, default=default).strip()
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a time of day: write HH:MM, e.g. 09:00"
        )
    return value


INBOX_DIGEST_TIME = _clock_time("INBOX_DIGEST_TIME", "09:00")
INBOX_DIGEST_CHANNEL = env.str("INBOX_DIGEST_CHANNEL", default="").strip()
INBOX_DIGEST_TO = env.str("INBOX_DIGEST_TO", default="").strip()
INBOX_DIGEST_ACCOUNT_ID = env.str("INBOX_DIGEST_ACCOUNT_ID", default="").strip()
if bool(INBOX_DIGEST_CHANNEL) != bool(INBOX_DIGEST_TO):
    raise ImproperlyConfigured(
        "INBOX_DIGEST_CHANNEL and INBOX_DIGEST_TO go together (e.g. telegram and "
        "the admin group's id): set both or neither"
    )
INBOX_DIGEST_EMAILS = [
    e.strip() for e in env.list("INBOX_DIGEST_EMAILS", default=[]) if e.strip()
]
for _address in INBOX_DIGEST_EMAILS:
    if not re.fullmatch(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+", _address):
        raise ImproperlyConfigured(
            f"INBOX_DIGEST_EMAILS: {_address!r} is not an email address"
        )
# Outgoing mail: EMAIL_URL (smtp://user:pass@host:587, smtp+tls://…, or
# consolemail:// to print it); the embedded default prints to the console.
_email = env.email_url(
    "EMAIL_URL", default="smtp://localhost:25" if PRODUCTION else "consolemail://"
)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = int(_email.get("EMAIL_PORT") or 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="inbox@localhost")
# Mask personal data in the raw body each webhook delivery keeps (the message
# itself is stored as written). A masked body can no longer be replayed.
OPENCLAW_MASK_STORED_BODIES = env.bool("OPENCLAW_MASK_STORED_BODIES", default=False)

# Website monitors (monitors/): the shortest interval a lead may set, the
# longest wait after failures, history kept per monitor, text kept per check,
# and how long a monitor fails before it alerts (once).
MONITORS_MIN_INTERVAL_MINUTES = env.int("MONITORS_MIN_INTERVAL_MINUTES", default=5)
MONITORS_MAX_BACKOFF_MINUTES = env.int("MONITORS_MAX_BACKOFF_MINUTES", default=360)
MONITORS_KEEP_SNAPSHOTS = env.int("MONITORS_KEEP_SNAPSHOTS", default=200)
MONITORS_MAX_TEXT_CHARS = env.int("MONITORS_MAX_TEXT_CHARS", default=20_000)
MONITORS_FAILING_ALERT_HOURS = env.int("MONITORS_FAILING_ALERT_HOURS", default=24)
for _name in (
    "MONITORS_MIN_INTERVAL_MINUTES",
    "MONITORS_MAX_BACKOFF_MINUTES",
    "MONITORS_KEEP_SNAPSHOTS",
    "MONITORS_MAX_TEXT_CHARS",
    "MONITORS_FAILING_ALERT_HOURS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be 1 or more")
if MONITORS_KEEP_SNAPSHOTS < 2:  # the last change needs the check before it
    raise ImproperlyConfigured("MONITORS_KEEP_SNAPSHOTS must be 2 or more")

# Metrics from several processes add up: each process writes its own files here
# and /metrics merges them (prometheus-client's multiprocess mode).
if PRODUCTION:
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR",
        env.str("PROMETHEUS_MULTIPROC_DIR", default="/tmp/openclaw-inbox-metrics"),
    )
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "inbox:conversation-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
# Each named in its own language: that is how someone looking for theirs finds it.
LANGUAGES = [("en", "English"), ("ko", "한국어")]
# Compiled catalogues are committed: running needs no gettext tools.
LOCALE_PATHS = [BASE_DIR / "locale"]
# The team's zone, for agents who have not picked one (core.models.Profile).
TIME_ZONE = _time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Production serves collected files; embedded mode serves from the finders.
STATIC_ROOT = BASE_DIR / "staticfiles" if PRODUCTION else None
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Files agents attach to replies (inbox.attachments), served back at
# MEDIA_URL for the chat platforms to fetch. INBOX_PUBLIC_URL is the origin
# the gateway reaches this inbox at, when it is not the one agents use.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
MEDIA_URL = "/media/"
INBOX_PUBLIC_URL = env.str("INBOX_PUBLIC_URL", default="")
INBOX_MAX_ATTACHMENTS = env.int("INBOX_MAX_ATTACHMENTS", default=5)
INBOX_MAX_ATTACHMENT_BYTES = env.int(
    "INBOX_MAX_ATTACHMENT_BYTES", default=10 * 1024 * 1024
)
# A reply with its files may be this large (RequestGuard, core/asgi.py);
# every other request keeps WEB_MAX_BODY_BYTES.
WEB_MAX_UPLOAD_BYTES = INBOX_MAX_ATTACHMENTS * INBOX_MAX_ATTACHMENT_BYTES + 1_048_576
# Embedded mode serves straight from the app folders, no collectstatic step.
WHITENOISE_USE_FINDERS = not PRODUCTION

# Served over TLS (production mode's default): plain HTTP is redirected, the
# session and CSRF cookies are Secure, and browsers are told (HSTS) to use
# HTTPS only. The TLS terminator in front sends X-Forwarded-Proto; the web
# server believes it only from FORWARDED_ALLOW_IPS (core/gunicorn.py), so no
# SECURE_PROXY_SSL_HEADER is needed (and a client cannot forge it).
HTTPS = env.bool("HTTPS", default=PRODUCTION)
SECURE_SSL_REDIRECT = HTTPS
# The load balancer's health check and Prometheus come over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
# The inbox's own host and its subdomains (not its siblings): safe to include.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True
)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    # Preloading is a promise about the whole registered domain, made by
    # submitting it to the browsers' list: the operator's call, not ours.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): our own static files and nothing
# else. The pages load no CDN and carry no inline script or style (htmx's
# own indicator style is off in base.html; inbox.css has it), so customer
# text that slipped past escaping still could not run.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # Customers' images are shown from wherever the chat platform keeps
        # them (loaded by the browser, no referrer); nothing else is remote.
        "img-src": ["*", "data:"],
        "connect-src": ["'self'"],  # the live websocket, same origin
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Password guessing (django-axes): after AXES_FAILURE_LIMIT wrong passwords
# for one account, or from one address, that account or address is locked
# out for AXES_COOLOFF_MINUTES (429 with a page saying so); each attempt and
# lockout is logged and listed in the admin. The address is REMOTE_ADDR: the
# web server has already resolved X-Forwarded-For from trusted proxies only.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # The same role rule as the pages (a user with no role reads nothing).
    "DEFAULT_PERMISSION_CLASSES": ["core.roles.HasAgentRole"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OpenClaw Inbox API",
    "DESCRIPTION": "Conversations and their messages, and the conversation "
    "buttons (reply, take over, hand back, assign, resolve, snooze, tag) with "
    "the pages' rules.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's Swagger UI from our own static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # The schema needs what the API needs, unless it is made public on purpose.
    "SERVE_PERMISSIONS": [
        "rest_framework.permissions.AllowAny"
        if env.bool("API_SCHEMA_PUBLIC", default=False)
        else "core.roles.HasAgentRole"
    ],
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "filters": {"mask_personal_data": {"()": "core.masking.MaskingFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # The last ERROR lines, for /logs and the system page (operations.logs).
        "recent_errors": {"class": "operations.logs.RecentErrorsHandler"},
    },
    "root": {
        "handlers": ["console", "recent_errors"],
        "level": env.str("LOG_LEVEL", default="INFO"),
    },
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}
# Log lines never carry personal data (core.masking), whichever handler writes them.
for _handler in LOGGING["handlers"].values():
    _handler.setdefault("filters", []).append("mask_personal_data")
