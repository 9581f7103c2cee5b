"""Local chain processes: Ganache and anvil from the project's npm packages.

``start`` launches a chain in its own session (so ``stop`` can end its whole process group),
waits until its JSON-RPC answers and leaves a pid record under ``<home>/chains/<kind>/``.
Ganache keeps its state in ``<home>/chains/ganache/db`` across restarts; anvil dumps and
reloads ``<home>/chains/anvil/state.json``. Both use fixed mnemonics, so the dev accounts
(``--account dev:N``) are the same on every machine.

``running`` finds every Ganache or anvil process listening on this machine, whichever home
started it (from the process table, by its command line), and ``stop_port`` stops the one on a
port; a process that is not one of those two is never touched.
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
import psutil

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


@dataclass(frozen=True)
class ListeningChain:
    """A Ganache or anvil process listening on a local port, found in the process table."""

    kind: LocalKind
    pid: int
    port: int
    url: str
    state_dir: str | None  # the home's chain folder its command line names, when it names one

    def record(self) -> Path | None:
        """Where the home that started it keeps its pid record (``process.json``)."""
        return _pid_file(Path(self.state_dir)) if self.state_dir else None


def _kind_of(cmdline: list[str]) -> LocalKind | None:
    for part in cmdline[:2]:
        name = Path(part).name
        if name == "anvil":
            return "anvil"
        if name == "cli.js" and "ganache" in Path(part).parts:
            return "ganache"
    return None


def _state_of(kind: LocalKind, cmdline: list[str]) -> str | None:
    flag = "--database.dbPath" if kind == "ganache" else "--state"
    if flag in cmdline[:-1]:
        return str(Path(cmdline[cmdline.index(flag) + 1]).parent)
    return None


def _listeners() -> dict[int, int]:
    """``{port: pid}`` of every TCP socket listening on this machine (pid when visible)."""
    ports: dict[int, int] = {}
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return ports
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.pid is not None:
            ports.setdefault(conn.laddr.port, conn.pid)
    return ports


def _describe(port: int, pid: int) -> ListeningChain | str:
    """The chain listening on ``port``, or what else the process is (a sentence)."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
        return f"a process (pid {pid}) this user cannot inspect: {type(exc).__name__}"
    kind = _kind_of(cmdline)
    if kind is None:
        return f"{Path(cmdline[0]).name if cmdline else 'a process'} (pid {pid})"
    return ListeningChain(
        kind=kind,
        pid=pid,
        port=port,
        url=f"http://127.0.0.1:{port}",
        state_dir=_state_of(kind, cmdline),
    )


def running() -> list[ListeningChain]:
    """Every Ganache and anvil process listening on this machine, in port order."""
    found = (_describe(port, pid) for port, pid in sorted(_listeners().items()))
    return [chain for chain in found if isinstance(chain, ListeningChain)]


def stop_port(port: int, *, timeout: float = 15.0) -> ListeningChain | None:
    """Stop the Ganache or anvil process listening on ``port``, whichever home started it
    (its state stays on disk; its home's pid record is removed). Returns what was stopped, or
    ``None`` when nothing listens there. Raises :class:`ChainError`, touching nothing, when the
    listener is another program."""
    pid = _listeners().get(port)
    if pid is None:
        return None
    chain = _describe(port, pid)
    if not isinstance(chain, ListeningChain):
        raise ChainError(
            f"port {port} is held by {chain}, not by Ganache or anvil: not stopping it",
            hint="stop it yourself if it is yours",
        )
    try:
        leads_group = os.getpgid(chain.pid) == chain.pid  # started by `chain up`: own session
    except ProcessLookupError:
        return chain
    if leads_group:
        _terminate(chain.pid, timeout=timeout)
    else:
        _terminate_one(chain.pid, timeout=timeout)
    record = chain.record()
    if record is not None:
        try:
            recorded = json.loads(record.read_text()).get("pid")
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            recorded = None
        if recorded == chain.pid:
            record.unlink(missing_ok=True)
    return chain


def _terminate_one(pid: int, *, timeout: float) -> None:
    """SIGTERM one process that leads no process group of its own, SIGKILL after ``timeout``."""
    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        process.kill()
