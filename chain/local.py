"""Local chain processes: Ganache and anvil from the project's npm packages.

``start`` launches a chain in its own session (so ``stop`` can end its whole process group),
waits until its JSON-RPC answers and leaves a pid record under ``<home>/chains/<kind>/``.
Ganache keeps its state in ``<home>/chains/ganache/db`` across restarts; anvil dumps and
reloads ``<home>/chains/anvil/state.json``. Both use fixed mnemonics, so the dev accounts
(``--account dev:N``) are the same on every machine.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import httpx

from chain.network import ANVIL_MNEMONIC, DEFAULT_PORTS, DEV_ACCOUNTS, GANACHE_MNEMONIC
from loraledger.errors import ChainError, ConfigError
from loraledger.paths import home, node_modules

logger = logging.getLogger(__name__)

LocalKind = Literal["ganache", "anvil"]
CHAIN_IDS = {"ganache": 1337, "anvil": 31337}


@dataclass(frozen=True)
class ChainProcess:
    """A running local chain, as recorded in its pid file."""

    kind: str
    pid: int
    port: int
    url: str
    state_dir: str
    log: str

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _answers(self.url)


def state_dir(kind: LocalKind, root: Path | None = None) -> Path:
    return (root or home() / "chains") / kind


def _pid_file(directory: Path) -> Path:
    return directory / "process.json"


def _command(kind: LocalKind, port: int, directory: Path) -> list[str]:
    if kind == "ganache":
        cli = node_modules() / "ganache" / "dist" / "node" / "cli.js"
        node = shutil.which("node")
        if node is None or not cli.exists():
            raise ChainError(
                "Ganache is not installed",
                hint="run `npm ci` at the repository root (make setup does it)",
            )
        return [
            node,
            str(cli),
            "--wallet.mnemonic",
            GANACHE_MNEMONIC,
            "--wallet.totalAccounts",
            str(DEV_ACCOUNTS),
            "--wallet.defaultBalance",
            "10000",
            "--chain.chainId",
            str(CHAIN_IDS["ganache"]),
            "--chain.hardfork",
            "shanghai",
            "--database.dbPath",
            str(directory / "db"),
            "--server.host",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--logging.quiet",
        ]
    if kind == "anvil":
        binary = node_modules() / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
        if not binary.exists():
            raise ChainError("anvil is not installed", hint="run `npm ci` at the repository root")
        return [
            str(binary),
            "--mnemonic",
            ANVIL_MNEMONIC,
            "--accounts",
            str(DEV_ACCOUNTS),
            "--chain-id",
            str(CHAIN_IDS["anvil"]),
            "--hardfork",
            "shanghai",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--state",
            str(directory / "state.json"),
            # keep the last 256 blocks' states in memory and none on disk: by default anvil
            # writes every older block's state under ~/.foundry/anvil/tmp (75 GB after a
            # 30,000-transaction gas benchmark); nothing here reads state at an old block
            "--prune-history",
            "256",
            "--silent",
        ]
    raise ConfigError(f"unknown local chain kind {kind!r}: use ganache or anvil")


def _answers(url: str) -> bool:
    try:
        response = httpx.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=2
        )
        return response.status_code == 200 and "result" in response.json()
    except (httpx.HTTPError, ValueError):
        return False


def status(kind: LocalKind, root: Path | None = None) -> ChainProcess | None:
    """The running chain of this kind, or None (a stale pid record is removed)."""
    path = _pid_file(state_dir(kind, root))
    try:
        process = ChainProcess(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None
    if process.alive():
        return process
    path.unlink(missing_ok=True)
    return None


def start(
    kind: LocalKind,
    *,
    port: int | None = None,
    root: Path | None = None,
    fresh: bool = False,
    timeout: float = 60.0,
) -> ChainProcess:
    """Start a local chain (idempotent: returns the running one) and wait for its RPC."""
    running = status(kind, root)
    if running is not None:
        if port is not None and port != running.port:
            raise ChainError(
                f"{kind} already runs on port {running.port}",
                hint=f"`loraledger chain down --kind {kind}` first",
            )
        return running
    port = port or DEFAULT_PORTS[kind]
    url = f"http://127.0.0.1:{port}"
    if _answers(url):
        raise ChainError(
            f"something else already answers JSON-RPC at {url}", hint="pick another --port"
        )
    directory = state_dir(kind, root)
    if fresh and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "chain.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            _command(kind, port, directory),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    process = ChainProcess(
        kind=kind, pid=proc.pid, port=port, url=url, state_dir=str(directory), log=str(log_path)
    )
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-800:]
            raise ChainError(
                f"{kind} exited with code {proc.returncode} while starting: {tail.strip()}"
            )
        if time.monotonic() > deadline:
            _terminate(proc.pid)
            raise ChainError(
                f"{kind} did not answer at {url} within {timeout:.0f} s (log: {log_path})"
            )
        time.sleep(0.2)
    _pid_file(directory).write_text(json.dumps(asdict(process), indent=2))
    logger.info("%s is up at %s (pid %s)", kind, url, proc.pid)
    return process


def stop(kind: LocalKind, root: Path | None = None, *, timeout: float = 15.0) -> bool:
    """Stop the chain of this kind; its state stays on disk. Returns whether one was running."""
    directory = state_dir(kind, root)
    path = _pid_file(directory)
    try:
        process = ChainProcess(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return False
    stopped = _terminate(process.pid, timeout=timeout)
    path.unlink(missing_ok=True)
    return stopped


def _terminate(pid: int, *, timeout: float = 15.0) -> bool:
    """SIGTERM the process group (anvil dumps its state on it), SIGKILL after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reaped, _ = os.waitpid(pid, os.WNOHANG)  # our own child (tests): reap it
            if reaped == pid:
                return True
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
