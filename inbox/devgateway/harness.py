"""``RealGateway``: the real OpenClaw gateway with a stub model and a fake Telegram.

One instance owns a throw-away home (``HOME``, state dir, config, logs), the
in-process ``StubModel`` and ``FakeTelegram``, and one gateway process in its
own process group, all on 127.0.0.1 with free ports. ``restart()`` replaces
only the gateway process: same home, config and ports, so sessions persist.

    with RealGateway() as gateway:  # installs Node + openclaw on first use
        gateway.telegram.customer(5551, "hi", name="Carol")
        # operator clients connect to gateway.ws_url with gateway.token

The config keys and env variables are the ones observed to matter on
openclaw 2026.9.6 (see ``gateway_config``).
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from inbox.devgateway.fake_telegram import FakeTelegram
from inbox.devgateway.install import Installation, ensure_installed
from inbox.devgateway.stub_model import MODEL_ID, PROVIDER_ID, StubModel

HOST = "127.0.0.1"
# Measured on a 2-vCPU VM: ready after ~13 s warm, ~24 s on a cold first run.
READY_TIMEOUT_SECONDS = 90.0
# An idle gateway exits within a second or two of SIGTERM; its own drain budget
# is minutes, which a test run will not wait for.
STOP_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.25
LOG_TAIL_LINES = 40
PLUGIN_MANIFEST = "openclaw.plugin.json"

Log = Callable[[str], None]


PORT_ATTEMPTS = 3


class GatewayNotReady(RuntimeError):
    """The gateway exited or did not become ready; the message ends with its log."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``: dicts merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def plugin_config(plugin_paths: Sequence[Path]) -> dict[str, Any]:
    """The ``plugins`` section that loads local plugin folders or files.

    ``plugins.load.paths`` is how openclaw finds a plugin in a local folder
    without installing it (``openclaw plugins install --link <dir>`` adds the
    same entry plus an install record). On 2026.9.6 that alone is not enough:
    the plugin is listed (origin "config", enabled) but its runtime is never
    loaded, even with ``activation.onStartup``. Only an explicit
    ``plugins.entries.<id>.enabled: true`` loads it at start-up, so the id is
    read from each folder's ``openclaw.plugin.json``. A standalone file has no
    manifest: enable its id through ``extra_config``.

    Each is also allowed the conversation hooks (``before_agent_reply``…):
    for a plugin that is not bundled the gateway drops them otherwise, with
    only a log line (the inbox plugin needs them to stop the bot).
    """
    paths = [str(Path(path).expanduser().resolve()) for path in plugin_paths]
    if not paths:
        return {}
    entries: dict[str, Any] = {}
    for path in paths:
        manifest = Path(path) / PLUGIN_MANIFEST
        if manifest.is_file():
            plugin_id = json.loads(manifest.read_text()).get("id")
            if isinstance(plugin_id, str) and plugin_id:
                entries[plugin_id] = {
                    "enabled": True,
                    "hooks": {"allowConversationAccess": True},
                }
    return {"plugins": {"load": {"paths": paths}, "entries": entries}}


def gateway_config(
    *,
    port: int,
    token: str,
    hook_token: str,
    model_base_url: str,
    telegram_api_root: str,
    telegram_bot_token: str,
    log_file: Path,
) -> dict[str, Any]:
    """A complete config for a gateway that talks only to 127.0.0.1."""
    model = {
        "id": MODEL_ID,
        "name": "Stub",
        "reasoning": False,
        "input": ["text"],
        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
        "contextWindow": 128000,
        "maxTokens": 4096,
    }
    return {
        # "local" mode: no --allow-unconfigured needed.
        "gateway": {
            "mode": "local",
            "port": port,
            "bind": "loopback",
            "auth": {"mode": "token", "token": token},
        },
        "models": {
            "mode": "merge",
            # Otherwise the gateway fetches a remote model catalog at start.
            "catalogRefresh": {"enabled": False},
            "providers": {
                PROVIDER_ID: {
                    "baseUrl": model_base_url,
                    "apiKey": "stub-key",
                    "api": "openai-completions",
                    "models": [model],
                }
            },
        },
        "agents": {
            "defaults": {
                "model": {"primary": f"{PROVIDER_ID}/{MODEL_ID}"},
                # No scheduled polls, and event-driven ones (after a hook run)
                # are internal: never sent to a customer.
                "heartbeat": {"every": "0m", "target": "none"},
            }
        },
        # Without it every DM shares agent:main:main; with it a Telegram DM is
        # agent:main:telegram:direct:<chatId>.
        "session": {"dmScope": "per-channel-peer"},
        "channels": {
            "telegram": {
                "enabled": True,
                "botToken": telegram_bot_token,
                "apiRoot": telegram_api_root,
                "dmPolicy": "open",
                "allowFrom": ["*"],
            }
        },
        "bindings": [
            {
                "agentId": "main",
                "match": {"channel": "telegram", "accountId": "default"},
            }
        ],
        # Persistent hook sessions need the prefix list.
        "hooks": {
            "enabled": True,
            "token": hook_token,
            "path": "/hooks",
            "allowRequestSessionKey": True,
            "allowedSessionKeyPrefixes": ["hook:"],
        },
        "update": {"checkOnStart": False},
        # The default is a folder under the system temp dir, shared by all runs.
        "logging": {"file": str(log_file)},
    }


class RealGateway:
    """A real gateway process plus its stub model and fake Telegram.

    Not thread-safe: one owner starts, restarts and stops it. ``start()``
    raises ``InstallError`` when Node/openclaw cannot be installed and
    ``GatewayNotReady`` when the gateway does not get ready in time.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        token: str | None = None,
        home: Path | None = None,
        extra_config: Mapping[str, Any] | None = None,
        plugin_paths: Sequence[Path] = (),
        installation: Installation | None = None,
        model: StubModel | None = None,
        telegram: FakeTelegram | None = None,
        ready_timeout: float = READY_TIMEOUT_SECONDS,
        log: Log | None = print,
    ) -> None:
        self.port = port  # 0 until started: then the free port picked
        self._requested_port = port
        self.token = token or secrets.token_urlsafe(24)
        self.hook_token = secrets.token_urlsafe(24)
        self.extra_config = dict(extra_config or {})
        self.plugin_paths = [Path(path) for path in plugin_paths]
        self.installation = installation
        self.model = model or StubModel()
        self.telegram = telegram or FakeTelegram()
        self.ready_timeout = ready_timeout
        self.log = log
        self.config: dict[str, Any] = {}
        # Seconds from spawning the process to /healthz and /readyz (last start).
        self.live_after: float | None = None
        self.ready_after: float | None = None
        self._given_home = home
        self._home: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- where things are ----------------------------------------------------------

    @property
    def home(self) -> Path:
        if self._home is None:
            raise RuntimeError("RealGateway has no home until started")
        return self._home

    @property
    def state_dir(self) -> Path:
        return self.home / ".openclaw"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "openclaw.json"

    @property
    def output_path(self) -> Path:
        """The gateway process's stdout and stderr (appended across restarts)."""
        return self.home / "gateway.out"

    @property
    def log_file(self) -> Path:
        """The gateway's own log (``logging.file``)."""
        return self.state_dir / "logs" / "gateway.log"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    @property
    def hooks_url(self) -> str:
        """``POST {hooks_url}/agent`` with ``Authorization: Bearer <hook_token>``."""
        return f"{self.http_url}/hooks"

    @property
    def pid(self) -> int | None:
        """The gateway's pid, which is also its process group id."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def process_ids(self) -> list[int]:
        """The gateway's pid and those of every process it started, while running."""
        if self._process is None:
            return []
        return [self._process.pid, *(pid for pid, _ in _descendants(self._process.pid))]

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.output_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return "(no gateway output)"
        return "\n".join(text.splitlines()[-lines:])

    def own_log_tail(self, lines: int = 200) -> str:
        """The last lines of the gateway's JSON log, one short line per entry."""
        try:
            raw = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no gateway log file)"
        out = []
        for line in raw:
            try:
                entry = json.loads(line)
                meta = entry.get("_meta", {})
                when, level = entry.get("time", ""), meta.get("logLevelName", "")
                text = entry.get("message") or entry.get("1") or ""
                line = f"{when} {level} {meta.get('name', '')} {text}"
            except (ValueError, AttributeError):
                pass
            out.append(line[:400])
        return "\n".join(out)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> RealGateway:
        """Install if needed, write a fresh config, start everything, wait for ready."""
        if self._process is not None:
            return self
        if self.installation is None:
            self.installation = ensure_installed(log=self.log)
        if self._requested_port:
            _require_free(self._requested_port)
        atexit.register(self.stop)  # a crashed test run must not leave a gateway
        try:
            # The helpers first: they bind port 0 too, and the kernel may hand
            # them a port picked for the gateway a moment earlier.
            self.model.start()
            self.telegram.start()
            self._make_home()
            for attempt in range(1, PORT_ATTEMPTS + 1):
                self.port = self._requested_port or free_port()
                self.config = deep_merge(
                    deep_merge(self._base_config(), plugin_config(self.plugin_paths)),
                    self.extra_config,
                )
                self._write_config()
                self._spawn()
                try:
                    self._wait_ready()
                    break
                except GatewayNotReady as exc:
                    # A free port is free only when picked: in the seconds
                    # before Node listens, another socket may take it.
                    retry = not self._requested_port and attempt < PORT_ATTEMPTS
                    if not retry or "EADDRINUSE" not in str(exc):
                        raise
                    if self.log:
                        self.log(f"port {self.port} was taken before Node listened")
                    self._stop_process()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> None:
        """Replace the gateway process only; home, config, ports and sessions stay."""
        if self._home is None:
            raise RuntimeError("RealGateway.restart() before start()")
        self._stop_process()
        self._spawn()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the gateway's process group, the stub model and the fake Telegram."""
        atexit.unregister(self.stop)
        self._stop_process()
        self.telegram.stop()
        self.model.stop()
        if self._home is not None and self._given_home is None:
            shutil.rmtree(self._home, ignore_errors=True)
        self._home = None

    def __enter__(self) -> RealGateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def update_config(self, patch: Mapping[str, Any]) -> None:
        """Deep-merge ``patch`` into the config file; the gateway hot-reloads it."""
        self.config = deep_merge(self.config, patch)
        self._write_config()

    # -- internals -----------------------------------------------------------------

    def _base_config(self) -> dict[str, Any]:
        return gateway_config(
            port=self.port,
            token=self.token,
            hook_token=self.hook_token,
            model_base_url=self.model.base_url,
            telegram_api_root=self.telegram.api_root,
            telegram_bot_token=self.telegram.bot_token,
            log_file=self.log_file,
        )

    def _make_home(self) -> None:
        if self._given_home is not None:
            self._home = self._given_home.resolve()
        else:
            # mkdtemp's 0700 matters: openclaw refuses plugins under
            # world-writable folders.
            self._home = Path(tempfile.mkdtemp(prefix="openclaw-gw-"))
        self.log_file.parent.mkdir(parents=True, exist_ok=True)

    def _write_config(self) -> None:
        # Write then rename: the gateway watches the file and must never read
        # half of it.
        partial = self.config_path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.config, indent=2) + "\n")
        os.replace(partial, self.config_path)

    def _environment(self) -> dict[str, str]:
        assert self.installation is not None
        # Inherited OPENCLAW_* variables (the inbox's own, or a developer's
        # gateway settings such as OPENCLAW_GATEWAY_PORT, which beats the
        # config) and XDG dirs would point this gateway at the wrong place.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("OPENCLAW_")
            and key
            not in (
                "XDG_CONFIG_HOME",
                "XDG_CACHE_HOME",
                "XDG_DATA_HOME",
                "XDG_STATE_HOME",
            )
        }
        loopback = "127.0.0.1,localhost"
        env.update(
            HOME=str(self.home),
            OPENCLAW_STATE_DIR=str(self.state_dir),
            OPENCLAW_CONFIG_PATH=str(self.config_path),
            OPENCLAW_DISABLE_BONJOUR="1",
            OPENCLAW_NO_AUTO_UPDATE="1",
            NO_COLOR="1",
            # Calls to the stub model and fake Telegram must not go to a proxy.
            NO_PROXY=loopback,
            no_proxy=loopback,
            PATH=f"{self.installation.node_bin_dir}{os.pathsep}{env.get('PATH', '')}",
        )
        return env

    def _spawn(self) -> None:
        assert self.installation is not None
        command = self.installation.command(
            "gateway",
            "--port",
            str(self.port),
            "--bind",
            "loopback",
            "--auth",
            "token",
            "--token",
            self.token,
        )
        with open(self.output_path, "ab") as output:
            # Its own session and process group: stop() signals the gateway and
            # every helper process it starts, and nothing else.
            self._process = subprocess.Popen(
                command,
                cwd=self.home,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self) -> None:
        assert self._process is not None
        started = time.monotonic()
        deadline = started + self.ready_timeout
        self.live_after = self.ready_after = None
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise GatewayNotReady(
                    f"the gateway exited with {code} before it was ready; "
                    f"output ({self.output_path}):\n{self.log_tail()}"
                )
            if self.live_after is None and _http_ok(f"{self.http_url}/healthz"):
                self.live_after = time.monotonic() - started
            if self.live_after is not None and _http_ok(f"{self.http_url}/readyz"):
                self.ready_after = time.monotonic() - started
                return
            time.sleep(POLL_SECONDS)
        raise GatewayNotReady(
            f"the gateway on port {self.port} was not ready after "
            f"{self.ready_timeout:g} s (live: {self.live_after is not None}); "
            f"output ({self.output_path}):\n{self.log_tail()}"
        )

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        group = process.pid  # start_new_session: the group id is the leader's pid
        # The gateway's spawn broker runs in a session of its own, out of the
        # group's reach; it is found (and later killed, if need be) by parentage.
        descendants = _descendants(group)
        _signal_group(group, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(group, signal.SIGKILL)
            process.wait()
        # Helpers that outlived the leader get a moment, then SIGKILL.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and (
            _group_alive(group) or any(_alive(p) for p in descendants)
        ):
            time.sleep(0.1)
        _signal_group(group, signal.SIGKILL)
        for pid_and_start in descendants:
            if _alive(pid_and_start):
                try:
                    os.kill(pid_and_start[0], signal.SIGKILL)
                except ProcessLookupError:
                    pass  # exited just now


def _require_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As Node's own listen does: a port left in TIME-WAIT by the last run
        # is free to use.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise GatewayNotReady(f"port {port} on {HOST} is in use: {exc}") from exc


# Straight to 127.0.0.1, whatever http_proxy says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_ok(url: str) -> bool:
    try:
        with _opener.open(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _signal_group(group: int, signum: signal.Signals) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass  # already gone


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _descendants(root: int) -> list[tuple[int, str]]:
    """(pid, start time) of every process below ``root``, read from Linux /proc.

    The start time tells a process from a later one that reused its pid.
    """
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: list[tuple[int, str]] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child[0])
    return found


def _alive(pid_and_start: tuple[int, str]) -> bool:
    stat = _stat(pid_and_start[0])
    return stat is not None and stat[1] == pid_and_start[1]


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, None if gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name: state, ppid, …, starttime.
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), fields[19]
