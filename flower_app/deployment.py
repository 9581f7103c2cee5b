"""Flower's deployment engine with its quirks handled: a SuperLink and SuperNodes as process
groups we own, and ``flwr run`` against them.

Quirks (see ../shared/FACTS.md, "Flower 1.41"):

- ``flwr run`` with no reachable SuperLink starts a detached one that keeps running; and a
  SuperLink by default installs the app's dependencies at run time (``uv sync``), which pulls a
  CUDA torch. The SuperLink is always started here, explicitly, with
  ``--disable-runtime-dependency-installation``, and ``flwr run`` always names it.
- SuperLink connections live in ``$FLWR_HOME/config.toml``, not in ``pyproject.toml``:
  :func:`write_connection` writes one (to a private ``FLWR_HOME`` unless told otherwise).
- Every SuperNode on a host needs its own port (``--port``, the ClientAppIo API):
  :func:`supernode_command` always sets one.
- The apps run in processes started by ``flwr-serverapp`` / ``flwr-clientapp``, found on
  ``PATH``: the environment given to every process puts this venv's ``bin`` first.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

from loraledger.errors import ConfigError, LoRALedgerError

logger = logging.getLogger(__name__)

DEFAULT_SUPERLINK_PORT = 8000
CONNECTION = "loraledger"


class FlowerProcessError(LoRALedgerError):
    """A SuperLink, SuperNode or ``flwr run`` failed or did not come up."""


@dataclass(frozen=True)
class Tls:
    """TLS and SuperNode authentication settings; ``None`` everywhere means ``--insecure``."""

    ca_certfile: Path | None = None  # SuperLink: CA; SuperNode: root certificates
    certfile: Path | None = None  # SuperLink's server certificate
    keyfile: Path | None = None  # SuperLink's server key
    supernode_auth: bool = False  # SuperLink: only registered SuperNodes may connect
    supernode_private_key: Path | None = None  # SuperNode: its authentication key

    @property
    def insecure(self) -> bool:
        return self.ca_certfile is None


def _bin(name: str) -> str:
    """The Flower executable next to this interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def process_env(
    flwr_home: Path | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if flwr_home is not None:
        env["FLWR_HOME"] = str(flwr_home)
    env.update(extra or {})
    return env


def superlink_command(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_SUPERLINK_PORT,
    database: Path | None = None,
    tls: Tls = Tls(),
) -> list[str]:
    """``flower-superlink`` with runtime dependency installation off and TLS or ``--insecure``."""
    command = [
        _bin("flower-superlink"),
        "--host",
        host,
        "--port",
        str(port),
        "--disable-runtime-dependency-installation",
    ]
    if database is not None:
        command += ["--database", str(database)]
    if tls.insecure:
        if tls.supernode_auth:
            raise ConfigError(
                "SuperNode authentication needs TLS", hint="give the CA, certificate and key files"
            )
        return [*command, "--insecure"]
    if tls.certfile is None or tls.keyfile is None:
        raise ConfigError(
            "a TLS SuperLink needs --ssl-ca-certfile, --ssl-certfile and --ssl-keyfile"
        )
    command += [
        "--ssl-ca-certfile",
        str(tls.ca_certfile),
        "--ssl-certfile",
        str(tls.certfile),
        "--ssl-keyfile",
        str(tls.keyfile),
    ]
    if tls.supernode_auth:
        command.append("--enable-supernode-auth")
    return command


def node_config_text(values: Mapping[str, Any]) -> str:
    """``--node-config`` syntax: space-separated ``key=value`` with TOML values."""
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        elif '"' not in str(value):  # the only quoting Flower's key=value parser reads back
            text = '"' + str(value).replace("\\", "\\\\") + '"'
        elif "'" not in str(value):
            text = "'" + str(value) + "'"
        else:
            raise ConfigError(
                f"{key}: a value with both quote characters cannot be passed to Flower, got "
                f"{value!r}"
            )
        parts.append(f"{key}={text}")
    return " ".join(parts)


def supernode_command(
    superlink: str,
    port: int,
    node_config: Mapping[str, Any],
    *,
    tls: Tls = Tls(),
    host: str = "127.0.0.1",
) -> list[str]:
    """``flower-supernode`` connecting to ``superlink`` (host:port), with its own ``port``."""
    command = [
        _bin("flower-supernode"),
        "--superlink",
        superlink,
        "--host",
        host,
        "--port",
        str(port),
        "--node-config",
        node_config_text(node_config),
    ]
    if tls.insecure:
        return [*command, "--insecure"]
    command += ["--root-certificates", str(tls.ca_certfile)]
    if tls.supernode_private_key is not None:
        command += ["--auth-supernode-private-key", str(tls.supernode_private_key)]
    return command


def write_connection(
    flwr_home: Path,
    address: str,
    *,
    insecure: bool = True,
    root_certificates: Path | None = None,
    name: str = CONNECTION,
) -> Path:
    """Write ``$FLWR_HOME/config.toml`` with one SuperLink connection, the default."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    lines = [
        "[superlink]",
        f'default = "{name}"',
        "",
        f"[superlink.{name}]",
        f'address = "{address}"',
    ]
    if insecure:
        lines.append("insecure = true")
    elif root_certificates is not None:
        lines.append(f'root-certificates = "{root_certificates}"')
    path = flwr_home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_command(
    app_dir: Path,
    run_config: Mapping[str, Any],
    *,
    connection: str = CONNECTION,
    stream: bool = True,
) -> list[str]:
    """``flwr run APP CONNECTION --run-config ...`` (``--stream`` follows the logs to the end)."""
    command = [
        _bin("flwr"),
        "run",
        str(app_dir),
        connection,
        "--run-config",
        node_config_text(run_config),
    ]
    return command + (["--stream"] if stream else [])


def register_command(public_key: Path, *, connection: str = CONNECTION) -> list[str]:
    """``flwr supernode register KEY CONNECTION``: allow a SuperNode's key on an auth SuperLink."""
    return [_bin("flwr"), "supernode", "register", str(public_key), connection]


@dataclass
class Processes:
    """Process groups started here, stopped (SIGTERM, then SIGKILL) in reverse order."""

    log_dir: Path
    started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, command: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        logger.info("starting %s: %s", name, shlex.join(command))
        proc = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            start_new_session=True,
        )
        self.started.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        for name, proc, _ in self.started:
            if proc.poll() is not None:
                raise FlowerProcessError(
                    f"{name} exited with code {proc.returncode}: {self.tail(name)}"
                )

    def tail(self, name: str, chars: int = 1500) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:].strip() if path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        for _, proc, _ in reversed(self.started):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc, log in reversed(self.started):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
            _signal_group(proc, signal.SIGKILL)  # children left in the group (app processes)
            log.close()
        for name, proc, _ in self.started:
            if not _group_gone(proc.pid, timeout=10.0):
                raise FlowerProcessError(f"processes of {name}'s group {proc.pid} survived SIGKILL")
        self.started.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_gone(pgid: int, *, timeout: float) -> bool:
    """Whether every process of group ``pgid`` has exited (SIGKILL takes a moment to land)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def wait_for_port(host: str, port: int, processes: Processes, timeout: float = 60.0) -> None:
    """Until something accepts connections on ``host:port`` (a started process dying fails fast)."""
    deadline = time.monotonic() + timeout
    while True:
        processes.check_alive()
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise FlowerProcessError(
                    f"nothing listens on {host}:{port} after {timeout:.0f} s"
                ) from None
            time.sleep(0.3)
