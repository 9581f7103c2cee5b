"""Start, stop and inspect a local IPFS daemon that serves the Kubo RPC API.

The daemon is js-ipfs 0.66.1 run by Node 22, both installed by npm into ``ipfs/daemon``
(``npm ci`` there; see ``docs/storage.md``). Its repository is configured offline: no
bootstrap peers, no MDNS or WebRTC discovery, no delegates, no swarm or gateway listener, and
the RPC API on 127.0.0.1 only. State lives in ``DaemonConfig.state_dir``: ``repo/`` (the
IPFS repository), ``daemon.json`` (pid and API URL of the running daemon) and ``daemon.log``.
The daemon runs in its own process group so that ``stop`` ends it and all its children.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

import httpx
from pydantic import ValidationInfo, field_validator

from ipfs.errors import DaemonError
from loraledger.errors import LoRALedgerError
from loraledger.paths import REPO_ROOT
from loraledger.settings import Settings

log = logging.getLogger(__name__)

NPM_DIR: Final = REPO_ROOT / "ipfs" / "daemon"
_INSTALL_HINT: Final = "run `loraledger ipfs install` (npm ci in ipfs/daemon) first"


class DaemonConfig(Settings):
    """Where the daemon keeps its state, which port its API uses, where its npm packages are.

    A bad value raises :class:`~ipfs.errors.DaemonError`."""

    error_type: ClassVar[type[LoRALedgerError]] = DaemonError

    state_dir: Path
    api_port: int = 5001
    npm_dir: Path = NPM_DIR
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0

    @field_validator("api_port")
    @classmethod
    def _a_port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"API port must be between 1 and 65535, got {value}")
        return value

    @field_validator("start_timeout_s", "stop_timeout_s")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if not value > 0:
            raise ValueError(f"{info.field_name} must be positive, got {value!r}")
        return value

    @property
    def repo_dir(self) -> Path:
        return self.state_dir / "repo"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "daemon.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "daemon.log"

    @property
    def node_binary(self) -> Path:
        return self.npm_dir / "node_modules" / "node" / "bin" / "node"

    @property
    def cli_script(self) -> Path:
        return self.npm_dir / "node_modules" / "ipfs" / "src" / "cli.js"


@dataclass(frozen=True)
class DaemonStatus:
    """What ``status`` found: a running daemon answers on ``api_url``."""

    running: bool
    pid: int | None
    api_url: str | None
    version: str | None
    repo_dir: Path
    log_file: Path


def offline_config(api_port: int) -> dict[str, object]:
    """The repository settings that keep the node offline and on loopback."""
    return {
        "Bootstrap": [],
        "Addresses": {
            "API": f"/ip4/127.0.0.1/tcp/{api_port}",
            "Gateway": "",
            "RPC": "",
            "Swarm": [],
            "Announce": [],
            "NoAnnounce": [],
            "Delegates": [],
        },
        "Discovery": {"MDNS": {"Enabled": False}, "webRTCStar": {"Enabled": False}},
    }


def _check_installed(config: DaemonConfig) -> None:
    for path in (config.node_binary, config.cli_script):
        if not path.is_file():
            raise DaemonError(
                f"the IPFS daemon is not installed ({path} is missing)", hint=_INSTALL_HINT
            )


def _env(config: DaemonConfig) -> dict[str, str]:
    env = dict(os.environ)
    env["IPFS_PATH"] = str(config.repo_dir)
    env.pop("IPFS_API", None)
    return env


def install(npm_dir: Path = NPM_DIR, *, timeout_s: float = 900.0) -> None:
    """Install js-ipfs and Node 22 in ``npm_dir`` at the locked versions (~3.5 min first time).

    ``npm install --no-save`` rather than ``npm ci``: npm 11 leaves some optional packages of
    js-ipfs out of the lock, and ``npm ci`` refuses such a lock.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise DaemonError(
            "npm is not on PATH", hint="install Node.js and npm (apt-get install npm)"
        )
    if not (npm_dir / "package-lock.json").is_file():
        raise DaemonError(f"{npm_dir} has no package-lock.json to install from")
    try:
        result = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund"],
            cwd=npm_dir,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DaemonError(f"npm ci in {npm_dir} took longer than {timeout_s:g}s") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise DaemonError(f"npm ci in {npm_dir} failed: {' / '.join(tail)}")


def _init_repo(config: DaemonConfig) -> None:
    """Create the repository (offline settings) or bring an existing one's ports up to date."""
    repo_config = config.repo_dir / "config"
    if not repo_config.is_file():
        config.state_dir.mkdir(parents=True, exist_ok=True)
        seed = config.state_dir / "init-config.json"
        seed.write_text(json.dumps(offline_config(config.api_port)))
        try:
            result = subprocess.run(
                [
                    str(config.node_binary),
                    str(config.cli_script),
                    "init",
                    "--emptyRepo",
                    "--defaultConfig",
                    str(seed),
                ],
                env=_env(config),
                capture_output=True,
                text=True,
                timeout=config.start_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DaemonError(f"initialising {config.repo_dir} timed out") from exc
        finally:
            seed.unlink(missing_ok=True)
        if result.returncode != 0:
            raise DaemonError(
                f"cannot initialise the IPFS repository {config.repo_dir}: "
                f"{(result.stderr or result.stdout).strip()[-300:]}"
            )
    try:
        current = json.loads(repo_config.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DaemonError(
            f"the IPFS repository config {repo_config} is unreadable ({exc})",
            hint=f"remove {config.repo_dir} to start from an empty repository",
        ) from exc
    wanted = offline_config(config.api_port)
    current["Bootstrap"] = wanted["Bootstrap"]
    current.setdefault("Addresses", {}).update(wanted["Addresses"])
    current["Discovery"] = wanted["Discovery"]
    tmp = repo_config.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, indent=2))
    os.replace(tmp, repo_config)


def _read_pid_file(config: DaemonConfig) -> dict[str, object] | None:
    try:
        data = json.loads(config.pid_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        log.warning("ignoring unreadable %s", config.pid_file)
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def _is_our_daemon(pid: int, config: DaemonConfig) -> bool:
    """Whether ``pid`` is alive (not a zombie) and runs with our repository."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return f"IPFS_PATH={config.repo_dir}".encode() in environ.split(b"\0")


def _api_version(api_url: str, timeout_s: float = 2.0) -> str | None:
    try:
        response = httpx.post(f"{api_url}/api/v0/version", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        return str(response.json().get("Version", "?"))
    except ValueError:
        return None


def status(config: DaemonConfig) -> DaemonStatus:
    """Whether the daemon recorded in ``state_dir`` is running and answering."""
    recorded = _read_pid_file(config)
    pid = recorded["pid"] if recorded else None
    api_url = str(recorded.get("api_url")) if recorded else None
    if not isinstance(pid, int) or not _is_our_daemon(pid, config):
        return DaemonStatus(False, None, None, None, config.repo_dir, config.log_file)
    version = _api_version(api_url) if api_url else None
    return DaemonStatus(
        version is not None, pid, api_url, version, config.repo_dir, config.log_file
    )


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(config: DaemonConfig) -> DaemonStatus:
    """Start the daemon unless it already runs; return once its API answers.

    Idempotent: a running daemon for this state directory is left as it is. A stale pid file
    or repository lock from a crashed daemon is cleared first.
    """
    current = status(config)
    if current.running:
        log.info("IPFS daemon already running (pid %s)", current.pid)
        return current
    recorded = _read_pid_file(config)
    if current.pid is not None:  # alive but not answering: restart it
        stop(config)
    elif recorded is not None:  # the recorded process is gone: clear what it left
        config.pid_file.unlink(missing_ok=True)
    _check_installed(config)
    if recorded is not None:  # a daemon that just died may hold its port a moment longer
        deadline = time.monotonic() + 5.0
        while _port_in_use(config.api_port) and time.monotonic() < deadline:
            time.sleep(0.2)
    if _port_in_use(config.api_port):
        raise DaemonError(
            f"port {config.api_port} on 127.0.0.1 is already in use",
            hint="stop what uses it, or choose another with --port",
        )
    _init_repo(config)
    for leftover in ("repo.lock", "api"):  # left by a daemon that was killed
        path = config.repo_dir / leftover
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    api_url = f"http://127.0.0.1:{config.api_port}"
    with config.log_file.open("ab") as log_handle:
        process = subprocess.Popen(
            [str(config.node_binary), str(config.cli_script), "daemon", "--offline"],
            env=_env(config),
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tmp = config.pid_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": process.pid, "api_url": api_url, "started": time.time()}))
    os.replace(tmp, config.pid_file)
    deadline = time.monotonic() + config.start_timeout_s
    while time.monotonic() < deadline:
        version = _api_version(api_url, timeout_s=1.0)
        if version is not None:
            log.info("IPFS daemon %s answering on %s (pid %d)", version, api_url, process.pid)
            return DaemonStatus(
                True, process.pid, api_url, version, config.repo_dir, config.log_file
            )
        if process.poll() is not None:
            config.pid_file.unlink(missing_ok=True)
            raise DaemonError(
                f"the IPFS daemon exited with code {process.returncode} while starting: "
                f"{_log_tail(config)}",
                hint=f"see {config.log_file}",
            )
        time.sleep(0.2)
    stop(config)
    raise DaemonError(
        f"the IPFS daemon did not answer on {api_url} within {config.start_timeout_s:g}s",
        hint=f"see {config.log_file}",
    )


def _log_tail(config: DaemonConfig) -> str:
    try:
        lines = config.log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " / ".join(lines[-2:]) if lines else "(empty log)"


def _wait_gone(pid: int, config: DaemonConfig, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:  # reap it if it is our child (a test, or `up` and `down` in one process)
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:  # not our child: its parent (or init) reaps it
            if not _is_our_daemon(pid, config):
                return True
        time.sleep(0.05)
    return False


def stop(config: DaemonConfig) -> bool:
    """Stop the daemon and its whole process group; return whether one was running."""
    recorded = _read_pid_file(config)
    pid = recorded.get("pid") if recorded else None
    if not isinstance(pid, int) or not _is_our_daemon(pid, config):
        config.pid_file.unlink(missing_ok=True)
        return False
    for sig, wait_s in ((signal.SIGTERM, config.stop_timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, config, wait_s):
            break
        log.warning("IPFS daemon (pid %d) ignored %s", pid, sig.name)
    else:
        raise DaemonError(f"the IPFS daemon (pid {pid}) did not stop")
    try:  # anything else left in its group
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    config.pid_file.unlink(missing_ok=True)
    log.info("IPFS daemon (pid %d) stopped", pid)
    return True
