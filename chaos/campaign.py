"""A seeded fault campaign on real processes, and the checks of what must survive it.

Each run (the campaign, and the uninterrupted baseline it is compared with) gets a fresh home,
a fresh chain process and store, deploys, creates one task from the tiny model and starts
``loraledger aggregator run`` (the task's aggregator, its own validator) and one
``loraledger node run`` per node as separate processes, exactly as a user would. The campaign
then injects faults at seeded random moments until the task is complete:

``aggregator-kill`` / ``node-kill``
    ``kill -9`` of the process group of ``aggregator run`` or of one node's ``node run``,
    restarted with the same command after a short pause;
``ipfs-restart``
    ``kill -9`` of the js-ipfs daemon (its ``repo.lock`` stays behind), started again;
``chain-restart``
    the chain process stopped and started again from its saved state (Ganache: ``kill -9``,
    its database survives; anvil: ``SIGTERM``, on which it saves its state);
``reorg``
    (anvil) ``anvil_reorg`` of the last 1 to 3 blocks: their transactions are gone;
``claim-race``
    ``node claim`` run with the account of a node whose ``node run`` is running (two processes
    racing for one account's nonces): it must succeed, and the run must go on;
``claim-kill``
    once the task is complete each node claims; a claim is ``kill -9``-ed at a random moment
    and run again;

and, with ``rpc_fault_rate``, every process talks to the chain through
:class:`chaos.flaky_rpc.FlakyRpc`, which drops, resets, duplicates and delays that share of
requests.

The checks read the canonical chain once everything stopped: each round finalized exactly
once; every commitment revealed and listed in its round's report (an update lost is one that
was not); no account paid twice for a round and every node paid exactly its report's amount;
no process exited on its own and no traceback in any log; ``loraledger audit verify`` passes;
and each round's result (global adapter digest, accepted and rejected counts, reward root
and total) equals the baseline's.

Recovery time of a fault: from the fault until the party it hit next has a transaction mined
(for the chain, the daemon and reorganisations: until anyone has), which includes any wait for
other parties; ``restart_s`` is how long the restart itself took.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Self, get_args

from pydantic import model_validator
from web3 import Web3
from web3.types import RPCEndpoint

from loraledger.errors import LoRALedgerError
from loraledger.paths import REPO_ROOT
from loraledger.settings import Settings

FaultKind = Literal[
    "aggregator-kill",
    "node-kill",
    "claim-race",
    "ipfs-restart",
    "chain-restart",
    "reorg",
    "claim-kill",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
#: Dev accounts: 0 sponsors, 1 aggregates (and validates), nodes from 2.
SPONSOR, AGGREGATOR, FIRST_NODE = 0, 1, 2
#: Topics of the bundled chat data each node trains on (non-IID: one topic each).
TOPICS = ("ai", "computers", "psychology", "science", "literature", "emotion", "money", "sports")


class CampaignError(LoRALedgerError):
    """A campaign could not be set up or run (not a finding: findings are in the result)."""


class CampaignConfig(Settings):
    """What a campaign runs and which faults it injects."""

    chain: Literal["ganache", "anvil"] = "ganache"
    ipfs: Literal["embedded", "daemon"] = "embedded"
    nodes: int = 3
    rounds: int = 3
    steps: int = 2  # optimizer steps per node and round
    seed: int = 0
    faults: tuple[FaultKind, ...] = ()  # empty: every kind the chain and store allow
    gap_s: tuple[float, float] = (4.0, 12.0)  # pause between faults, drawn uniformly
    max_faults: int | None = None  # stop injecting after this many (claims excluded)
    duration_s: float | None = None  # stop injecting after this long
    rpc_fault_rate: float = 0.0  # share of JSON-RPC requests the proxy spoils
    confirmations: int = 0  # --confirmations of aggregator run and node run
    baseline: bool = True  # also run uninterrupted and compare
    timeout_s: float = 900.0  # the most one run may take
    workdir: Path

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not 1 <= self.nodes <= len(TOPICS):
            raise ValueError(f"nodes must be between 1 and {len(TOPICS)}, got {self.nodes}")
        if not 1 <= self.rounds <= 50:
            raise ValueError(f"rounds must be between 1 and 50, got {self.rounds}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        low, high = self.gap_s
        if not 0 < low <= high:
            raise ValueError(f"the gap between faults must be 0 < low <= high, got {self.gap_s}")
        if self.confirmations < 0:
            raise ValueError(f"confirmations must be at least 0, got {self.confirmations}")
        if not 0 <= self.rpc_fault_rate < 1:
            raise ValueError(f"rpc fault rate must be in [0, 1), got {self.rpc_fault_rate}")
        if "reorg" in self.faults and self.chain != "anvil":
            raise ValueError("reorg needs --chain anvil (Ganache cannot reorganise on request)")
        if "ipfs-restart" in self.faults and self.ipfs != "daemon":
            raise ValueError("ipfs-restart needs --ipfs daemon (the embedded store has no process)")
        return self

    @property
    def kinds(self) -> tuple[FaultKind, ...]:
        """The fault kinds this campaign draws from."""
        if self.faults:
            return self.faults
        return tuple(
            kind
            for kind in FAULT_KINDS
            if (kind != "reorg" or self.chain == "anvil")
            and (kind != "ipfs-restart" or self.ipfs == "daemon")
        )


@dataclass
class Fault:
    """One fault injected: when (seconds since the processes started), what, whom."""

    at_s: float
    kind: FaultKind
    target: str
    detail: str = ""
    restart_s: float | None = None
    recovery_s: float | None = None  # until the party hit (or anyone) had a transaction mined


@dataclass
class RoundOutcome:
    """What the canonical chain says about one round."""

    round: int
    finalizations: int
    global_digest: str | None
    accepted: int | None
    rejected: int | None
    reward_root: str | None
    reward_total: int | None
    committed: int
    revealed: int
    reported: int  # the round report's submissions that match a canonical reveal
    finalized_after_s: float | None  # seconds since the processes started

    def result(self) -> tuple[Any, ...]:
        """What an uninterrupted run with the same inputs must finalize too."""
        return (
            self.global_digest,
            self.accepted,
            self.rejected,
            self.reward_root,
            self.reward_total,
        )


@dataclass
class RunResult:
    """One run's findings (the campaign's or the baseline's)."""

    label: str
    chain: str
    ipfs: str
    faults: list[Fault]
    rpc_faults: dict[str, int]
    rounds: list[RoundOutcome]
    rewards: dict[str, int]  # node address -> tokens its reports grant (base units)
    paid: dict[str, int]  # node address -> tokens claimed (base units)
    double_payments: int
    updates_lost: int
    unexpected_exits: list[str]
    tracebacks: list[str]
    audit_ok: bool
    audit_tail: str
    wall_s: float
    complete: bool
    unfinished: dict[str, str] = field(default_factory=dict)  # party -> its last line, if late


@dataclass
class CampaignResult:
    """The campaign's run, the baseline's, and the verdict."""

    config: dict[str, Any]
    command: str
    chaos: RunResult
    baseline: RunResult | None
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """Every invariant that failed, as a sentence (empty: the campaign passed)."""
        out: list[str] = []
        for run in (self.chaos, self.baseline):
            if run is None:
                continue
            tag = f"{run.label}: "
            if not run.complete:
                where = "; ".join(f"{name} at: {line}" for name, line in run.unfinished.items())
                out.append(
                    tag + "the task did not complete in time" + (f" ({where})" if where else "")
                )
            for outcome in run.rounds:
                if outcome.finalizations != 1:
                    out.append(
                        tag + f"round {outcome.round} finalized {outcome.finalizations} times"
                    )
            if run.updates_lost:
                out.append(tag + f"{run.updates_lost} updates lost")
            if run.double_payments:
                out.append(tag + f"{run.double_payments} double payments")
            for node, amount in run.rewards.items():
                if run.paid.get(node, 0) != amount:
                    out.append(
                        tag + f"{node} was granted {amount} and paid {run.paid.get(node, 0)}"
                    )
            out += [tag + f"{name} exited on its own" for name in run.unexpected_exits]
            out += [tag + f"a traceback in {name}'s log" for name in run.tracebacks]
            if not run.audit_ok:
                out.append(tag + "audit verify failed")
        return out + self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "command": self.command,
            "ok": self.ok,
            "problems": self.problems(),
            "chaos": asdict(self.chaos),
            "baseline": asdict(self.baseline) if self.baseline else None,
        }


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Party:
    """A ``loraledger`` command run as its own process group, restartable, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts} at {time.time():.3f} ===\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scripts.cli", *self.argv],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> str:
        """``kill -9`` the whole process group; returns the last log line (where it was)."""
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        return self.last_line()

    def last_line(self) -> str:
        """The last line this start printed (or how long ago it started, if none)."""
        text = self.log.read_text(errors="replace")
        marker = f"=== start {self.starts} at "
        tail = text[text.rfind(marker) :].splitlines()
        lines = [line.strip() for line in tail[1:] if line.strip()]
        if lines:
            return lines[-1][:160]
        started = float(tail[0][len(marker) :].split()[0]) if tail else time.time()
        return f"nothing printed yet, {time.time() - started:.1f} s after starting"

    def stop(self) -> None:
        """SIGTERM the process group (SIGKILL after 10 s); nothing if it is gone already."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


class Monitor:
    """Watches the chain on its own connection (straight to the chain, never through the
    flaky proxy): when each party had a transaction mined, and when each round was first seen
    finalized."""

    def __init__(self, network: str, home: Path, addresses: dict[str, str]) -> None:
        self.network, self.home, self.addresses = network, home, addresses
        self.mined: dict[str, list[float]] = {name: [] for name in addresses}
        self.finalized: dict[int, float] = {}
        self._last: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from chain.deployments import load_deployment
        from chain.events import History
        from chain.network import connect

        chain = connect(self.network)
        history = History(load_deployment(chain, self.home).ledger_contract(chain))
        polls = 0
        while not self._stop.wait(0.25):
            polls += 1
            try:
                for name, address in self.addresses.items():
                    checksummed = Web3.to_checksum_address(address)
                    count = int(chain.w3.eth.get_transaction_count(checksummed))
                    if count > self._last.get(name, count):
                        self.mined[name].append(time.monotonic())
                    self._last[name] = count
                if polls % 4 == 0:
                    for record in history.finalized(1):
                        self.finalized.setdefault(record.round, time.monotonic())
            except Exception:  # the chain is down, restarting or reorganising: poll again
                continue

    def first_after(self, name: str | None, moment: float) -> float | None:
        """When the party (None: anyone) first had a transaction mined after ``moment``."""
        names = [name] if name is not None else list(self.mined)
        times = [t for n in names for t in self.mined[n] if t > moment]
        return min(times) if times else None

    @contextmanager
    def running(self) -> Iterator[Monitor]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=10)


# --------------------------------------------------------------------------- one run


@dataclass
class _Inputs:
    model: Path
    data: list[Path]
    validation: Path


def _prepare_inputs(config: CampaignConfig) -> _Inputs:
    """The tiny model and each node's data (one topic each), shared by both runs."""
    from fl_node.data import sample_examples, write_jsonl
    from fl_node.model import create_tiny_model

    folder = config.workdir / "inputs"
    examples = [e for e in sample_examples() if e.label in TOPICS[: config.nodes]]
    model = create_tiny_model(
        folder / "tiny", [m.content for e in examples for m in e.messages], seed=config.seed
    )
    data = []
    for i, topic in enumerate(TOPICS[: config.nodes]):
        path = folder / f"node-{i}.jsonl"
        write_jsonl([e for e in examples if e.label == topic][:40], path)
        data.append(path)
    validation = folder / "validation.jsonl"
    write_jsonl(examples[::7][:24], validation)
    return _Inputs(model, data, validation)


class _Run:
    """One run: its chain, store, processes, faults and findings."""

    def __init__(
        self,
        config: CampaignConfig,
        inputs: _Inputs,
        label: str,
        inject: bool,
        say: Callable[[str], None],
    ) -> None:
        self.config, self.inputs, self.label, self.inject, self.say = (
            config,
            inputs,
            label,
            inject,
            say,
        )
        self.dir = config.workdir / label
        self.random = random.Random(f"{config.seed}:{label}")
        self.faults: list[Fault] = []
        self.moments: list[float] = []  # when each fault's restart began (monotonic)
        self.exits: list[str] = []
        self.unfinished: dict[str, str] = {}
        self.start = time.monotonic()
        self.chain_port = _free_port()
        self.network_url = f"http://127.0.0.1:{self.chain_port}"
        self.proxy: Any = None
        self.daemon: Any = None
        self.base_block = 0  # the chain's head when its process last started
        self.ipfs = ""

    # ----------------------------------------------------------------- infrastructure

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LORALEDGER_HOME": str(self.dir / "home"),
            "COLUMNS": "160",
            "PYTHONUNBUFFERED": "1",
        }

    @property
    def network(self) -> str:
        """What the processes are given: the chain, or the flaky proxy in front of it."""
        port = self.chain_port if self.proxy is None else int(self.proxy.url.rsplit(":", 1)[1])
        return f"{self.config.chain}:{port}"

    def _start_chain(self, *, fresh: bool) -> None:
        from chain import local

        local.start(self.config.chain, port=self.chain_port, root=self.dir / "chain", fresh=fresh)

    def _restart_chain(self) -> str:
        from chain import local

        record = local.status(self.config.chain, self.dir / "chain")
        if record is None:
            raise CampaignError(f"the {self.config.chain} process of {self.label} is gone")
        if self.config.chain == "ganache":  # its database survives kill -9
            os.killpg(record.pid, signal.SIGKILL)
            how = "kill -9"
        else:  # anvil writes its state on SIGTERM only
            local.stop("anvil", self.dir / "chain")
            how = "SIGTERM (anvil saves its state on exit)"
        time.sleep(self.random.uniform(0.5, 2.0))
        self._start_chain(fresh=False)
        self.base_block = self._head()
        return how

    def _daemon_config(self) -> Any:
        from ipfs.daemon import DaemonConfig

        return DaemonConfig(state_dir=self.dir / "ipfs", api_port=self._ipfs_port)

    def _start_store(self) -> None:
        if self.config.ipfs == "embedded":
            self.ipfs = f"embedded:{self.dir / 'store'}"
            return
        from ipfs import daemon

        self._ipfs_port = _free_port()
        status = daemon.start(self._daemon_config())
        self.daemon = status
        self.ipfs = str(status.api_url)

    def _restart_daemon(self) -> str:
        from ipfs import daemon

        status = daemon.status(self._daemon_config())
        if status.pid is None:
            raise CampaignError("the IPFS daemon is gone")
        os.kill(status.pid, signal.SIGKILL)
        time.sleep(self.random.uniform(0.5, 2.0))
        lock = self._daemon_config().repo_dir / "repo.lock"
        stale = lock.exists()
        daemon.start(self._daemon_config())
        return "kill -9" + (", stale repo.lock left behind" if stale else "")

    def _cli(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "scripts.cli", *args],
            cwd=REPO_ROOT,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise CampaignError(
                f"`loraledger {shlex.join(args)}` failed ({result.returncode}): "
                f"{(result.stdout + result.stderr)[-1500:]}"
            )
        return result.stdout

    # ----------------------------------------------------------------- the run

    def _task_options(self) -> list[str]:
        c = self.config
        return [
            "--model",
            str(self.inputs.model),
            "--rank",
            "4",
            "--window",
            "3600",
            "--reveal-window",
            "3600",
            "--reward-per-round",
            "100",
            "--fund",
            str(100 * c.rounds),
            "--max-rounds",
            str(c.rounds),
            "--challenge-window",
            "2",
        ]

    def _node_args(self, i: int) -> list[str]:
        return [
            "--task",
            "1",
            "--network",
            self.network,
            "--ipfs",
            self.ipfs,
            "--account",
            f"dev:{FIRST_NODE + i}",
        ]

    def _parties(self) -> dict[str, Party]:
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = self._env()
        parties = {
            "aggregator": Party(
                "aggregator",
                [
                    "aggregator",
                    "run",
                    "--task",
                    "1",
                    "--network",
                    self.network,
                    "--ipfs",
                    self.ipfs,
                    "--poll",
                    "0.5",
                    "--validation-data",
                    str(self.inputs.validation),
                    "--model",
                    str(self.inputs.model),
                    "--max-length",
                    "64",
                    "--confirmations",
                    str(self.config.confirmations),
                ],
                env,
                logs / "aggregator.log",
            )
        }
        for i in range(self.config.nodes):
            parties[f"node-{i}"] = Party(
                f"node-{i}",
                [
                    "node",
                    "run",
                    *self._node_args(i),
                    "--poll",
                    "0.5",
                    "--data",
                    str(self.inputs.data[i]),
                    "--model",
                    str(self.inputs.model),
                    "--rank",
                    "4",
                    "--steps",
                    str(self.config.steps),
                    "--max-length",
                    "64",
                    "--seed",
                    str(i),
                    "--confirmations",
                    str(self.config.confirmations),
                ],
                env,
                logs / f"node-{i}.log",
            )
        return parties

    def execute(self) -> RunResult:
        with ExitStack() as stack:
            stack.callback(self._teardown)
            self._start_chain(fresh=True)
            self._start_store()
            if self.inject and self.config.rpc_fault_rate > 0:
                from chaos.flaky_rpc import FlakyRpc

                self.proxy = stack.enter_context(
                    FlakyRpc(
                        self.network_url,
                        seed=self.config.seed,
                        rate=self.config.rpc_fault_rate,
                        late_s=1.0,
                    ).running()
                )
            self.say(f"{self.label}: {self.config.chain} at {self.network_url}, store {self.ipfs}")
            self._cli("deploy", "--network", self.network)
            self._cli(
                "task",
                "create",
                "--network",
                self.network,
                "--ipfs",
                self.ipfs,
                *self._task_options(),
            )
            # dev:1 is the task's aggregator and, the local default, its one validator
            self._cli("aggregator", "bond", "--task", "1", "--network", self.network)
            for i in range(self.config.nodes):
                self._cli("node", "join", *self._node_args(i))
            self.parties = self._parties()
            monitor = stack.enter_context(
                Monitor(
                    f"{self.config.chain}:{self.chain_port}", self.dir / "home", self._addresses()
                ).running()
            )
            # reorganisations reach back to here at most: the deployment, the task and the
            # joins stay (a node whose join is reorganised away must join again: by hand)
            self.base_block = self._head()
            self.start = time.monotonic()
            for party in self.parties.values():
                party.start()
            complete = self._supervise(monitor)
            self.unfinished = {
                name: party.last_line() for name, party in self.parties.items() if party.running
            }
            self._claims()
            for fault, moment in zip(self.faults, self.moments, strict=True):
                fault.recovery_s = self._recovery(fault, moment, monitor)
            return self._findings(complete, monitor)
        raise AssertionError("unreachable")  # pragma: no cover

    def _addresses(self) -> dict[str, str]:
        from chain.network import dev_account, parse_network

        spec = parse_network(f"{self.config.chain}:{self.chain_port}")
        out: dict[str, str] = {"aggregator": dev_account(spec, AGGREGATOR).address}
        for i in range(self.config.nodes):
            out[f"node-{i}"] = dev_account(spec, FIRST_NODE + i).address
        return out

    def _elapsed(self) -> float:
        return time.monotonic() - self.start

    def _supervise(self, monitor: Monitor) -> bool:
        """Wait for every process to finish the task, injecting faults on the way; a process
        that exits with an error is recorded and started again (it should never happen)."""
        c = self.config
        deadline = self.start + c.timeout_s
        next_fault = self._elapsed() + self.random.uniform(*c.gap_s)
        kinds = [k for k in c.kinds if k != "claim-kill"]
        bag: list[FaultKind] = []
        while time.monotonic() < deadline:
            if all(not p.running for p in self.parties.values()) and all(
                p.process is not None and p.process.returncode == 0 for p in self.parties.values()
            ):
                return True
            for party in self.parties.values():
                code = None if party.process is None else party.process.poll()
                if code == 0 and "complete" not in party.last_line():
                    code = -1  # it ended while the task goes on: as much a failure
                if party.process is not None and code not in (None, 0):
                    self.exits.append(f"{party.name} (exit {party.process.returncode})")
                    self.say(f"{self.label}: {party.name} exited: {party.last_line()}")
                    party.start()
            budget = c.max_faults is None or len(self.faults) < c.max_faults
            timely = c.duration_s is None or self._elapsed() < c.duration_s
            if self.inject and kinds and budget and timely and self._elapsed() >= next_fault:
                if not bag:  # every kind once, in a seeded order, before any repeats
                    bag = self.random.sample(kinds, len(kinds))
                kind = bag.pop()
                if not self._inject(kind):  # not possible now (reorg): later
                    bag.insert(0, kind)
                next_fault = self._elapsed() + self.random.uniform(*c.gap_s)
            time.sleep(0.2)
        return False

    def _inject(self, kind: FaultKind) -> bool:
        """Inject one fault of ``kind`` and restart what it hit; False if it cannot be now."""
        fault = Fault(round(self._elapsed(), 2), kind, "")
        began = time.monotonic()
        if kind in ("aggregator-kill", "node-kill"):
            names = (
                ["aggregator"]
                if kind == "aggregator-kill"
                else [n for n in self.parties if n.startswith("node-")]
            )
            alive = [n for n in names if self.parties[n].running]
            if not alive:
                return False
            party = self.parties[self.random.choice(alive)]
            fault.target = party.name
            fault.detail = "killed at: " + party.kill()
            time.sleep(self.random.uniform(0.2, 1.5))
            began = time.monotonic()
            party.start()
        elif kind == "claim-race":  # a second process on a running node's account
            name = self.random.choice([n for n in self.parties if n.startswith("node-")])
            fault.target = name
            fault.detail = self._claim_race(int(name.removeprefix("node-")))
        elif kind == "chain-restart":
            fault.target = self.config.chain
            fault.detail = self._restart_chain()
        elif kind == "ipfs-restart":
            fault.target = "ipfs daemon"
            fault.detail = self._restart_daemon()
        elif kind == "reorg":
            depth = min(self.random.randint(1, 3), self._reorganisable())
            if depth < 1:  # nothing mined since anvil restarted: it keeps no older states
                return False
            fault.target = "anvil"
            fault.detail = self._reorg(depth)
        fault.restart_s = round(time.monotonic() - began, 2)
        self.moments.append(began)
        self.faults.append(fault)
        self.say(f"{self.label}: t={fault.at_s:.1f}s {kind} {fault.target}: {fault.detail}")
        return True

    def _reorganisable(self) -> int:
        """Blocks the campaign may reorganise: those mined since the processes started and
        since anvil last started (a restarted anvil loads the state of its head only and
        refuses to reorganise past it)."""
        return self._head() - self.base_block

    def _web3(self) -> Web3:
        """A plain connection to the campaign's chain, for what it reads and injects itself."""
        return Web3(Web3.HTTPProvider(self.network_url))

    def _head(self) -> int:
        return int(self._web3().eth.block_number)

    def _reorg(self, depth: int) -> str:
        w3 = self._web3()
        before = w3.eth.block_number
        removed = sum(len(w3.eth.get_block(before - k)["transactions"]) for k in range(depth))
        reply = w3.provider.make_request(RPCEndpoint("anvil_reorg"), [depth, []])
        if "error" in reply:
            raise CampaignError(f"anvil_reorg failed: {reply['error']}")
        return f"last {depth} blocks reorganised away ({removed} transactions dropped)"

    def _claim_race(self, i: int) -> str:
        """``node claim`` with the account that node i's ``node run`` is using: both must go
        on (the claim exits 0, the run never exits); what the claim said."""
        result = subprocess.run(
            [sys.executable, "-m", "scripts.cli", "node", "claim", *self._node_args(i)],
            cwd=REPO_ROOT,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        said = " ".join((result.stdout + result.stderr).split())[-160:]
        if result.returncode != 0:
            self.exits.append(
                f"node claim of node-{i} racing its node run (exit {result.returncode})"
            )
        return f"node claim during node run exited {result.returncode}: {said}"

    def _claims(self) -> None:
        """Every node claims; with ``claim-kill``, one claim per node is killed at a random
        moment first (then claimed again: the rerun must not pay twice)."""
        kill = self.inject and "claim-kill" in self.config.kinds
        for i in range(self.config.nodes):
            args = ["node", "claim", *self._node_args(i)]
            if kill:
                party = Party(f"claim-{i}", args, self._env(), self.dir / "logs" / f"claim-{i}.log")
                party.start()
                time.sleep(self.random.uniform(0.3, 4.0))
                fault = Fault(round(self._elapsed(), 2), "claim-kill", f"node-{i}")
                if party.running:
                    fault.detail = "killed at: " + party.kill()
                else:
                    fault.detail = "the claim had finished: " + party.last_line()
                began = time.monotonic()
                self._cli(*args)
                fault.restart_s = round(time.monotonic() - began, 2)
                self.moments.append(began)
                self.faults.append(fault)
                self.say(f"{self.label}: claim-kill node-{i}: {fault.detail}")
            else:
                self._cli(*args)
            # a second claim finds nothing to claim and sends nothing
            self._cli(*args)

    @staticmethod
    def _recovery(fault: Fault, moment: float, monitor: Monitor) -> float | None:
        """Seconds from the restart until the party hit (for the chain, the daemon and
        reorganisations: anyone) had a transaction mined; None if it never had one after."""
        party = fault.target if fault.target in monitor.mined else None
        mined = monitor.first_after(party, moment)
        return None if mined is None else round(mined - moment, 2)

    # ----------------------------------------------------------------- findings

    def _findings(self, complete: bool, monitor: Monitor) -> RunResult:
        from chain.deployments import load_deployment
        from chain.events import History
        from chain.network import connect
        from ipfs.factory import open_store
        from loraledger.report import fetch_report

        chain = connect(f"{self.config.chain}:{self.chain_port}")
        ledger = load_deployment(chain, self.dir / "home").ledger_contract(chain)
        history = History(ledger)
        store = open_store(self.ipfs)
        finalized = history.finalized(1, include_voided=True)
        claims = history.claims(1)
        rounds: list[RoundOutcome] = []
        rewards: Counter[str] = Counter()
        lost = 0
        times = {r: round(t - self.start, 1) for r, t in monitor.finalized.items()}
        for r in range(1, self.config.rounds + 1):
            mine = [f for f in finalized if f.round == r]
            commits = {c.node for c in history.commits(1, r)}
            reveals = {(v.node, v.cid) for v in history.reveals(1, r)}
            reported = 0
            final = mine[-1] if mine else None
            if final is not None:
                report = fetch_report(store, final.report_cid)
                listed = {(Web3.to_checksum_address(s.node), s.cid) for s in report.submissions}
                reported = len(listed & reveals)
                for line in report.rewards.lines:
                    rewards[Web3.to_checksum_address(line.node)] += int(line.amount)
            lost += len(commits) - len({node for node, _ in reveals} & commits)
            lost += len(reveals) - reported
            rounds.append(
                RoundOutcome(
                    round=r,
                    finalizations=len(mine),
                    global_digest=final.global_digest.hex() if final else None,
                    accepted=final.accepted if final else None,
                    rejected=final.rejected if final else None,
                    reward_root=final.reward_root.hex() if final else None,
                    reward_total=final.reward_total if final else None,
                    committed=len(commits),
                    revealed=len(reveals),
                    reported=reported,
                    finalized_after_s=times.get(r),
                )
            )
        paid: Counter[str] = Counter()
        per_round: Counter[tuple[int, str]] = Counter()
        for claim in claims:
            paid[claim.node] += claim.amount
            per_round[(claim.round, claim.node)] += 1
        doubles = sum(n - 1 for n in per_round.values() if n > 1)
        audit = subprocess.run(
            [
                sys.executable,
                "-m",
                "scripts.cli",
                "audit",
                "verify",
                "1",
                "--network",
                f"{self.config.chain}:{self.chain_port}",
                "--ipfs",
                self.ipfs,
            ],
            cwd=REPO_ROOT,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        logs = sorted((self.dir / "logs").glob("*.log"))
        return RunResult(
            label=self.label,
            chain=self.config.chain,
            ipfs=self.config.ipfs,
            faults=self.faults,
            rpc_faults=dict(self.proxy.faults) if self.proxy is not None else {},
            rounds=rounds,
            rewards=dict(rewards),
            paid=dict(paid),
            double_payments=doubles,
            updates_lost=lost,
            unexpected_exits=self.exits,
            tracebacks=[p.stem for p in logs if "Traceback" in p.read_text(errors="replace")],
            audit_ok=audit.returncode == 0,
            audit_tail=(audit.stdout + audit.stderr)[-600:],
            wall_s=round(self._elapsed(), 1),
            complete=complete,
            unfinished=self.unfinished,
        )

    def _teardown(self) -> None:
        """Stop every process this run started, each step whatever the others did."""
        from chain import local
        from ipfs import daemon

        steps: list[Callable[[], object]] = [p.stop for p in getattr(self, "parties", {}).values()]
        if self.daemon is not None:
            steps.append(lambda: daemon.stop(self._daemon_config()))
        steps.append(lambda: local.stop(self.config.chain, self.dir / "chain"))
        for step in steps:
            try:
                step()
            except Exception as exc:  # the next step must run all the same
                self.say(f"{self.label}: stopping left something behind: {exc}")


def run_campaign(
    config: CampaignConfig, *, command: str = "", say: Callable[[str], None] = print
) -> CampaignResult:
    """Run the campaign (and, unless ``config.baseline`` is off, the uninterrupted baseline
    first) and check what must hold."""
    config.workdir.mkdir(parents=True, exist_ok=True)
    inputs = _prepare_inputs(config)
    baseline = None
    if config.baseline:
        baseline = _Run(config, inputs, "baseline", False, say).execute()
    chaos = _Run(config, inputs, "chaos", True, say).execute()
    mismatches = []
    if baseline is not None:
        for ours, theirs in zip(chaos.rounds, baseline.rounds, strict=True):
            a, b = ours.result(), theirs.result()
            if a != b:
                mismatches.append(
                    f"round {ours.round} differs from the uninterrupted run: {a} != {b}"
                )
        if chaos.rewards != baseline.rewards:
            mismatches.append(
                f"rewards differ from the uninterrupted run: {chaos.rewards} != {baseline.rewards}"
            )
    return CampaignResult(
        config=json.loads(config.model_dump_json()),
        command=command,
        chaos=chaos,
        baseline=baseline,
        mismatches=mismatches,
    )
