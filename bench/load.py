"""One round with many nodes on a real local chain (``loraledger bench load``).

A fresh Ganache or anvil process (:mod:`chain.local`) gets the contracts
(:func:`chain.deployments.deploy`) and one task whose start adapter is shaped like a LoRA of
SmolLM2-135M (r=8 on q/k/v/o of 30 layers, 3.7 MB; smaller shapes for quick runs). Every node
is its own account (``dev:1`` .. ``dev:N`` of the chain's mnemonic,
:func:`flower_app.accounts.resolve_account`), gets gas money and its stake from the sponsor in
batches (:class:`chain.batch.BatchSender`) and joins with the node's own code
(:func:`fl_node.node.join`). The task's aggregator (``dev:0``) is its own validator, quorum 1.
Then one round runs through its phases, ``workers`` nodes acting at once (threads, each node
on its own connection):

==============  ================================================================================
phase           what runs
==============  ================================================================================
``open``        the aggregator opens the round (:meth:`aggregator.round.RoundRunner.open`)
``prepare``     each node builds its update (no chain): the start adapter plus Gaussian noise,
                its examples varying by node, packed by :func:`loraledger.update.build_update`
``commit``      each node commits to it (``Ledger.commit_update``); the last one ends the phase
``reveal``      each node pins it to the content store (:class:`ipfs.EmbeddedStore`) and
                reveals it (``Ledger.reveal_update``)
``aggregate``   in a fresh child process (:func:`aggregator_child`): the in-process validator
                verifies every update and posts its score sheet, the aggregator collects,
                verifies, aggregates, publishes, proposes; the validator reviews (the audit's own
                checks) and signs, which finalizes the round
``settle``      the chain's clock passes the challenge window; the aggregator settles the round
``claim``       every node claims its reward (:func:`fl_node.node.claim`)
==============  ================================================================================

Updates are synthetic (no model is trained: training N models is not what a load test
measures); everything else is the real code path on real processes.

Recorded per phase: wall time; JSON-RPC requests, counted by a middleware on each party's own
connection (per node: total, mean and the most any node made); gas used (the receipts of each
party's transactions) and transactions. For the aggregator's child process: its RSS after its
imports and connections (baseline) and its peak RSS during the round (``VmHWM``), the time of
each step. Afterwards every node must have claimed exactly once, exactly its reward line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loraledger.errors import ChainError, ConfigError

if TYPE_CHECKING:
    import torch
    from eth_account.signers.local import LocalAccount
    from web3.middleware import Web3Middleware
    from web3.types import TxReceipt

    from chain.bindings import Ledger
    from chain.network import Chain, NetworkSpec
    from chain.session import Session
    from loraledger.update import PeftSpec

logger = logging.getLogger(__name__)

ChainKind = Literal["ganache", "anvil"]
PHASES = ("setup", "join", "open", "prepare", "commit", "reveal", "aggregate", "settle", "claim")
"""Every phase, in order; ``setup`` (deploy, task, funding) is the sponsor's."""
ROUND_PHASES = PHASES[2:]
TOKEN = 10**18
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
RESULT_FORMAT = 1
GAS_MONEY = 10**17  # wei per node: a round costs a node ~0.5 M gas at a few gwei
STAKE = 10 * TOKEN
REWARD = 1000 * TOKEN  # the round's pool
WINDOW = 24 * 3600  # commit and reveal windows: the phases end when every node acted
CHALLENGE_WINDOW = 600
_CHILD = "import sys; from bench.load import aggregator_child; aggregator_child(sys.argv[1])"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class AdapterShape:
    """The task's LoRA adapter: ``rank`` on each ``(projection, out, in)`` of ``layers``
    layers, float32."""

    name: str
    layers: int
    rank: int
    modules: tuple[tuple[str, int, int], ...]

    @property
    def update_bytes(self) -> int:
        """The tensors' bytes (the file adds a header of a few KB)."""
        per_layer = sum(self.rank * (out + in_) for _, out, in_ in self.modules)
        return 4 * self.layers * per_layer

    @property
    def spec(self) -> PeftSpec:
        from loraledger.update import PeftSpec

        targets = tuple(name for name, _, _ in self.modules)
        return PeftSpec(rank=self.rank, alpha=2.0 * self.rank, target_modules=targets)

    def describe(self) -> str:
        names = "/".join(name.removesuffix("_proj") for name, _, _ in self.modules)
        return (
            f"{self.name}: r={self.rank} on {names} of {self.layers} layers, "
            f"{self.update_bytes / 1e6:.2f} MB per update"
        )

    def start(self, seed: int) -> dict[str, torch.Tensor]:
        """The task's start adapter (peft's key names)."""
        import torch

        generator = torch.Generator().manual_seed(seed)
        tensors = {}
        for layer in range(self.layers):
            for name, out, in_ in self.modules:
                prefix = f"base_model.model.model.layers.{layer}.self_attn.{name}"
                tensors[f"{prefix}.lora_A.weight"] = 0.1 * torch.randn(
                    self.rank, in_, generator=generator
                )
                tensors[f"{prefix}.lora_B.weight"] = 0.1 * torch.randn(
                    out, self.rank, generator=generator
                )
        return tensors

    def update(
        self, seed: int, index: int, *, task_id: int, round_: int, node: str, examples: int
    ) -> bytes:
        """Node ``index``'s update: the start adapter of ``seed`` plus Gaussian noise (0.05 per
        value, half the start's scale), as :func:`loraledger.update.build_update` packs it."""
        import torch

        from loraledger.update import FORMAT_VERSION, UpdateMetadata, build_update

        # a seed the start adapter's never is (its noise must not be the start itself)
        generator = torch.Generator().manual_seed((seed + 1) * 1_000_003 + index)
        tensors = {
            k: v + 0.05 * torch.randn(v.shape, generator=generator)
            for k, v in self.start(seed).items()
        }
        metadata = UpdateMetadata(
            format_version=FORMAT_VERSION,
            task_id=task_id,
            round=round_,
            base_model=BASE_MODEL,
            peft=self.spec,
            node=node,
            num_examples=examples,
        )
        return build_update(tensors, metadata)


_SMOLLM2_ATTENTION = (
    ("q_proj", 576, 576),
    ("k_proj", 192, 576),
    ("v_proj", 192, 576),
    ("o_proj", 576, 576),
)
ADAPTERS = {
    "smollm2": AdapterShape("smollm2", 30, 8, _SMOLLM2_ATTENTION),
    "small": AdapterShape("small", 4, 8, _SMOLLM2_ATTENTION),
    "tiny": AdapterShape("tiny", 2, 4, (("q_proj", 12, 10), ("v_proj", 8, 10))),
}
"""``smollm2``: the demo's adapter (3.7 MB); ``small``: its first 4 layers (0.5 MB);
``tiny``: the test suite's adapter (1 KB)."""


@dataclass(frozen=True)
class LoadConfig:
    """One load run: ``nodes`` nodes on a fresh ``chain``, ``workers`` of them acting at once,
    the aggregator verifying with ``fetch_workers`` threads (``aggregator run
    --fetch-workers``)."""

    nodes: int
    chain: ChainKind = "anvil"
    adapter: AdapterShape = ADAPTERS["smollm2"]
    workers: int = 4
    fetch_workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        from flower_app.accounts import MAX_DEV_ACCOUNT

        if not 1 <= self.nodes <= MAX_DEV_ACCOUNT:
            raise ConfigError(f"nodes must be in 1..{MAX_DEV_ACCOUNT}, got {self.nodes}")
        if self.chain not in ("ganache", "anvil"):
            raise ConfigError(f"chain must be ganache or anvil, got {self.chain!r}")
        if self.workers < 1:
            raise ConfigError(f"workers must be positive, got {self.workers}")
        if self.fetch_workers < 1:
            raise ConfigError(f"fetch_workers must be positive, got {self.fetch_workers}")


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Phase:
    """What one phase cost: wall seconds; JSON-RPC requests and gas of the nodes (total, and
    the most any one node made or paid) and of the aggregator and sponsor; transactions; the
    requests by JSON-RPC method."""

    name: str
    seconds: float
    node_rpc: int
    node_rpc_max: int
    other_rpc: int
    node_gas: int
    node_gas_max: int
    other_gas: int
    transactions: int
    methods: dict[str, int] = field(default_factory=dict)  # every party's requests by method

    def per_node(self, nodes: int) -> tuple[float, float]:
        """Mean RPC requests and gas per node."""
        return self.node_rpc / nodes, self.node_gas / nodes


@dataclass(frozen=True)
class AggregatorRun:
    """The aggregator's child process: seconds per step since it started (``ready``: imports
    and connections done), RSS (KiB) when ready and at its peak, CPU seconds of the round,
    what the round decided."""

    steps: dict[str, float]
    baseline_kib: int
    peak_kib: int
    cpu_seconds: float  # from "ready" to "done", every thread
    accepted: int
    rejected: int
    reward_lines: int
    report_cid: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class LoadResult:
    """Everything one run measured, as written to its JSON file."""

    nodes: int
    chain: str
    chain_version: str
    adapter: str
    adapter_bytes: int
    update_file_bytes: int
    workers: int
    fetch_workers: int
    phases: tuple[Phase, ...]
    aggregator: AggregatorRun
    paid_once: int  # nodes that claimed exactly once, exactly their reward line
    total_seconds: float
    started: str
    machine: dict[str, str]
    command: str
    format: int = RESULT_FORMAT

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LoadResult:
        body = json.loads(text)
        if body.get("format") != RESULT_FORMAT:
            raise ConfigError(f"load result format {body.get('format')!r} is not {RESULT_FORMAT}")
        body["phases"] = tuple(Phase(**p) for p in body["phases"])
        body["aggregator"] = AggregatorRun(**body["aggregator"])
        return cls(**body)


# --------------------------------------------------------------------------- parties


class _Clock:
    """The phase under way, which every party's requests and receipts are booked to."""

    def __init__(self) -> None:
        self.phase = "setup"


class Party:
    """One account on its own connection to the chain, with what it cost per phase."""

    def __init__(
        self,
        name: str,
        account: LocalAccount,
        network: NetworkSpec,
        ledger: str,
        from_block: int,
        store_root: Path,
        state_root: Path,
        clock: _Clock,
    ) -> None:
        from chain.bindings import Ledger
        from chain.events import History
        from chain.network import connect
        from chain.session import Session
        from ipfs import EmbeddedConfig, EmbeddedStore

        self.name = name
        self.account = account
        self.clock = clock
        self.rpc: dict[str, int] = {}
        self.methods: dict[str, dict[str, int]] = {}  # phase -> JSON-RPC method -> requests
        self.gas: dict[str, int] = {}
        self.transactions: dict[str, int] = {}
        self.chain: Chain = connect(network)
        self.chain.w3.middleware_onion.add(_counting(self), name="loraledger-rpc-count")
        self.chain.on_mined = self._mined
        self.ledger: Ledger = Ledger(self.chain, ledger)
        store = EmbeddedStore(EmbeddedConfig(root=store_root))
        self.session: Session = Session(
            self.ledger, History(self.ledger, from_block), store, account, state_root
        )

    @property
    def address(self) -> str:
        return self.account.address

    def requested(self, method: str) -> None:
        phase = self.clock.phase
        self.rpc[phase] = self.rpc.get(phase, 0) + 1
        methods = self.methods.setdefault(phase, {})
        methods[method] = methods.get(method, 0) + 1

    def _mined(self, _what: str, receipt: TxReceipt) -> None:
        phase = self.clock.phase
        self.gas[phase] = self.gas.get(phase, 0) + int(receipt["gasUsed"])
        self.transactions[phase] = self.transactions.get(phase, 0) + 1


def _counting(party: Party) -> type[Web3Middleware]:
    """A web3 middleware that books every JSON-RPC request of ``party``'s connection."""
    from web3.middleware import Web3Middleware

    class Counting(Web3Middleware):
        def wrap_make_request(self, make_request: Any) -> Any:
            def middleware(method: Any, params: Any) -> Any:
                party.requested(str(method))
                return make_request(method, params)

            return middleware

    return Counting


@dataclass
class _Node:
    """A node of the run and what it committed to (the salt is its secret until the reveal)."""

    party: Party
    index: int
    examples: int
    path: Path
    digest: bytes = b""
    salt: bytes = b""


# --------------------------------------------------------------------------- the run


@dataclass
class _Run:
    config: LoadConfig
    work: Path
    network: NetworkSpec
    say: Callable[[str], None]
    clock: _Clock = field(default_factory=_Clock)
    seconds: dict[str, float] = field(default_factory=dict)
    sponsor: Party | None = None
    aggregator: Party | None = None
    nodes: list[_Node] = field(default_factory=list)
    ledger: str = ""
    block: int = 0
    task_id: int = 0
    round: int = 0

    @property
    def store_root(self) -> Path:
        return self.work / "store"

    def party(self, name: str, account: LocalAccount) -> Party:
        return Party(
            name,
            account,
            self.network,
            self.ledger,
            self.block,
            self.store_root,
            self.work / "state" / name,
            self.clock,
        )

    def phase(self, name: str, work: Callable[[], object]) -> None:
        self.clock.phase = name
        self.say(name)
        began = time.perf_counter()
        work()
        self.seconds[name] = time.perf_counter() - began
        self.clock.phase = "check"

    def each_node(self, action: Callable[[_Node], object]) -> None:
        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="load-node") as pool:
            list(pool.map(action, self.nodes))


def run_load(
    config: LoadConfig,
    *,
    command: str = "",
    progress: Callable[[str], None] | None = None,
    work: Path | None = None,
) -> LoadResult:
    """Start a fresh chain of ``config.chain``, run the round (see the module docstring) and
    stop the chain. ``work`` keeps the chain, store and state (default: a temporary folder,
    removed afterwards); ``progress`` is told each phase as it starts."""
    from bench.report import machine
    from chain import local
    from chain.network import parse_network
    from flower_app.federation import free_port

    say = progress or (lambda _text: None)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="loraledger-load-") as tmp:
        folder = work or Path(tmp)
        chain_root = folder / "chains"
        say(f"starting {config.chain}")
        process = local.start(config.chain, port=free_port(), root=chain_root, fresh=True)
        try:
            network = parse_network(f"{config.chain}:{process.port}")
            run = _Run(config, folder, network, say)
            began = time.perf_counter()
            phases, aggregator, file_bytes, paid = _round(run)
            total = time.perf_counter() - began
            version = str(run.sponsor.chain.w3.client_version) if run.sponsor else ""
        finally:
            local.stop(config.chain, root=chain_root)
    return LoadResult(
        nodes=config.nodes,
        chain=config.chain,
        chain_version=version,
        adapter=config.adapter.describe(),
        adapter_bytes=config.adapter.update_bytes,
        update_file_bytes=file_bytes,
        workers=config.workers,
        fetch_workers=config.fetch_workers,
        phases=phases,
        aggregator=aggregator,
        paid_once=paid,
        total_seconds=round(total, 2),
        started=started,
        machine=machine(),
        command=command,
    )


def _round(run: _Run) -> tuple[tuple[Phase, ...], AggregatorRun, int, int]:
    from aggregator.round import RoundRunner
    from fl_node.node import claim, join

    run.phase("setup", lambda: _setup(run))
    sponsor, aggregator = run.sponsor, run.aggregator
    if sponsor is None or aggregator is None:  # pragma: no cover - _setup sets both
        raise ConfigError("the set-up made no sponsor or aggregator")
    run.phase("join", lambda: run.each_node(lambda n: join(n.party.session, run.task_id)))
    runner = RoundRunner(aggregator.session, run.task_id, quorum_timeout=None)

    def open_round() -> None:
        run.round = runner.open()

    run.phase("open", open_round)
    run.phase("prepare", lambda: run.each_node(lambda n: _prepare(run, n)))
    run.phase("commit", lambda: run.each_node(lambda n: _commit(run, n)))
    run.phase("reveal", lambda: run.each_node(lambda n: _reveal(run, n)))
    child: list[tuple[AggregatorRun, dict[str, Any]]] = []
    run.phase("aggregate", lambda: child.append(_aggregate(run)))
    outcome, child_cost = child[0]

    def settle() -> None:
        info, task = (
            aggregator.ledger.round(run.task_id, run.round),
            aggregator.ledger.task(run.task_id),
        )
        end = info.finalized_at + task.challenge_window
        aggregator.chain.advance_time(max(end - aggregator.chain.timestamp() + 1, 1))
        if not runner.settle(run.round, poll_seconds=0.1, timeout=60):
            raise ChainError(f"round {run.round} did not settle")

    run.phase("settle", settle)
    claimed: dict[str, int] = {}

    def claim_one(node: _Node) -> None:
        requests = claim(node.party.session, run.task_id)
        claimed[node.party.address] = sum(r.amount for r in requests if r.round == run.round)

    run.phase("claim", lambda: run.each_node(claim_one))
    paid = _paid_once(run, outcome.report_cid, claimed)
    phases = tuple(_figures(run, name, child_cost) for name in PHASES)
    file_bytes = run.nodes[0].path.stat().st_size if run.nodes else 0
    return phases, outcome, file_bytes, paid


def _setup(run: _Run) -> None:
    """Deploy, create and fund the task (its adapter pinned), fund every node, post the
    aggregator's bond."""
    from aggregator.validator import post_bond
    from chain.batch import BatchSender
    from chain.bindings import TaskParams, Token, base_model_hash
    from chain.deployments import deploy
    from chain.network import connect, dev_account
    from flower_app.accounts import resolve_account
    from ipfs import EmbeddedConfig, EmbeddedStore
    from loraledger.update import pack_global_adapter, sha256_hex

    config = run.config
    chain = connect(run.network)
    owner = dev_account(run.network, 0)  # sponsor, aggregator and (quorum 1) its validator
    deployment = deploy(chain, owner, save=False)
    run.ledger, run.block = deployment.ledger, deployment.block
    sponsor = run.sponsor = run.party("sponsor", owner)
    run.aggregator = run.party("aggregator", owner)
    ledger, token = sponsor.ledger, Token(sponsor.chain, deployment.token)
    store = EmbeddedStore(EmbeddedConfig(root=run.store_root))
    task_id = ledger.task_count() + 1
    adapter = pack_global_adapter(
        config.adapter.start(config.seed),
        task_id=task_id,
        round_=0,
        base_model=BASE_MODEL,
        peft=config.adapter.spec,
    )
    cid = store.put_bytes(adapter)
    store.pin(cid)
    params = TaskParams(
        base_model_hash=base_model_hash(BASE_MODEL),
        initial_global_cid=cid,
        initial_global_digest=bytes.fromhex(sha256_hex(adapter)),
        token=token.address,
        reward_per_round=REWARD,
        min_stake=STAKE,
        submission_window=WINDOW,
        reveal_window=WINDOW,
        max_rounds=1,
        aggregator=owner.address,
        validators=(owner.address,),
        quorum=1,
        challenge_window=CHALLENGE_WINDOW,
    )
    token.approve(ledger.address, REWARD, owner)
    run.task_id, _ = ledger.create_task(params, owner)
    ledger.fund_task(run.task_id, REWARD, owner)
    post_bond(run.aggregator.session, run.task_id)
    accounts = [resolve_account(f"dev:{i}", run.network) for i in range(1, config.nodes + 1)]
    sender = BatchSender(sponsor.chain)
    sender.value(owner, [a.address for a in accounts], GAS_MONEY)
    sender.calls(
        [(token.contract.functions.transfer(a.address, STAKE), owner) for a in accounts],
        "stakes",
    )
    nodes_dir = run.work / "updates"
    nodes_dir.mkdir(parents=True, exist_ok=True)
    run.nodes = [
        _Node(
            run.party(f"node-{i}", account),
            i,
            examples=10 + (37 * i) % 91,
            path=nodes_dir / f"node-{i}.safetensors",
        )
        for i, account in enumerate(accounts, start=1)
    ]


def _prepare(run: _Run, node: _Node) -> None:
    """The node's update (instead of training), written to its own folder; digest and salt
    kept for the commitment."""
    config = run.config
    data = config.adapter.update(
        config.seed,
        node.index,
        task_id=run.task_id,
        round_=run.round,
        node=node.party.address,
        examples=node.examples,
    )
    node.path.write_bytes(data)
    node.digest = hashlib.sha256(data).digest()
    node.salt = hashlib.sha256(f"salt-{config.seed}-{node.index}".encode()).digest()


def _commit(run: _Run, node: _Node) -> None:
    from chain.bindings import commitment_hash

    address = node.party.address
    commitment = commitment_hash(
        run.task_id, run.round, address, node.digest, node.examples, node.salt
    )
    node.party.ledger.commit_update(run.task_id, run.round, commitment, node.party.account)


def _reveal(run: _Run, node: _Node) -> None:
    store = node.party.session.store
    cid = store.put_bytes(node.path.read_bytes())
    store.pin(cid)
    node.party.ledger.reveal_update(
        run.task_id, run.round, cid, node.digest, node.examples, node.salt, node.party.account
    )


# --------------------------------------------------------------------------- the aggregator


@dataclass(frozen=True)
class AggregatorJob:
    """What the aggregator's child process needs (JSON on its command line)."""

    network: str
    ledger: str
    block: int
    store: str
    state: str
    task_id: int
    round: int
    fetch_workers: int


def _aggregate(run: _Run) -> tuple[AggregatorRun, dict[str, Any]]:
    job = AggregatorJob(
        network=_network_arg(run.network),
        ledger=run.ledger,
        block=run.block,
        store=str(run.store_root),
        state=str(run.work / "state" / "aggregator-child"),
        task_id=run.task_id,
        round=run.round,
        fetch_workers=run.config.fetch_workers,
    )
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(asdict(job))],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if completed.returncode != 0:
        raise ChainError(
            f"the aggregator's process failed (exit {completed.returncode}): "
            f"{completed.stderr.strip()[-2000:]}"
        )
    body = json.loads(completed.stdout.strip().splitlines()[-1])
    cost = {key: body.pop(key) for key in ("rpc", "gas", "transactions", "methods")}
    return AggregatorRun(**body), cost


def _network_arg(network: NetworkSpec) -> str:
    """``kind:PORT`` of a local chain, as ``--network`` takes it."""
    port = str(network.url).rsplit(":", 1)[-1]
    return f"{network.kind}:{port}"


def aggregator_child(arguments: str) -> None:
    """Child process body: finalize the round as the aggregator with its in-process validator;
    print what it took (one JSON line)."""
    began = time.perf_counter()
    from aggregator.round import RoundRunner, RoundSettings
    from aggregator.validator import Validator
    from aggregator.verify import VerifyPolicy
    from bench.aggregate import reset_peak_rss, rss_kib
    from chain.network import dev_account, parse_network
    from loraledger.report import fetch_report

    job = AggregatorJob(**json.loads(arguments))
    network = parse_network(job.network)
    state = Path(job.state)
    party = Party(
        "aggregator",
        dev_account(network, 0),
        network,
        job.ledger,
        job.block,
        Path(job.store),
        state,
        _Clock(),
    )
    party.clock.phase = "aggregate"
    steps: dict[str, float] = {}

    def checkpoint(step: str) -> None:
        steps[step] = round(time.perf_counter() - began, 3)

    settings = RoundSettings(verify=VerifyPolicy(fetch_workers=job.fetch_workers))
    validator = Validator(party.session, job.task_id, None, settings, propose_after=0.0)
    runner = RoundRunner(
        party.session,
        job.task_id,
        settings,
        validators=[validator],
        checkpoint=checkpoint,
        sheet_timeout=0.0,
        quorum_timeout=None,
    )
    checkpoint("ready")  # imports and connections
    reset_peak_rss()
    baseline, cpu = rss_kib("VmRSS"), _cpu_seconds()
    validator.post_sheet(job.round)
    checkpoint("sheet posted")
    outcome = runner.finalize(job.round, poll_seconds=0.1)
    checkpoint("done")
    peak, cpu = rss_kib("VmHWM"), _cpu_seconds() - cpu
    report = fetch_report(party.session.store, outcome.report_cid)
    print(
        json.dumps(
            {
                "steps": steps,
                "baseline_kib": baseline,
                "peak_kib": peak,
                "cpu_seconds": round(cpu, 3),
                "accepted": outcome.finalization.accepted,
                "rejected": outcome.finalization.rejected,
                "reward_lines": len(report.rewards.lines),
                "report_cid": outcome.report_cid,
                "metrics": report.metrics,
                "rpc": sum(party.rpc.values()),
                "methods": party.methods.get("aggregate", {}),
                "gas": sum(party.gas.values()),
                "transactions": sum(party.transactions.values()),
            }
        )
    )


# --------------------------------------------------------------------------- memory bound


@dataclass(frozen=True)
class MemoryFigures:
    """The aggregator's verification and aggregation of ``updates`` updates of
    ``update_bytes`` each, in a fresh process: its RSS before (KiB), its peak, seconds, and how
    many updates it accepted."""

    updates: int
    update_bytes: int
    fetch_workers: int
    baseline_kib: int
    peak_kib: int
    seconds: float
    cpu_seconds: float  # user + system time of every thread (cpu / wall: the cores used)
    accepted: int

    @property
    def above_kib(self) -> int:
        return self.peak_kib - self.baseline_kib


def verify_memory(
    count: int, adapter: AdapterShape, *, fetch_workers: int = 2, work: Path | None = None
) -> MemoryFigures:
    """Peak memory of what the aggregator does with a round's updates: ``count`` synthetic
    updates (:meth:`AdapterShape.update`) pinned to an embedded store here, then verified
    (:func:`aggregator.verify.verify_round`, free riders and copies included) and the accepted
    ones aggregated from their files (:func:`aggregator.combine.combine`, FedAvg) in a fresh
    child process (:func:`verify_memory_child`), whose peak RSS above its baseline is the
    figure the bound in docs/results/load/README.md is about."""
    from ipfs import EmbeddedConfig, EmbeddedStore
    from loraledger.update import pack_global_adapter, sha256_hex

    if count < 1:
        raise ConfigError(f"count must be positive, got {count}")
    with tempfile.TemporaryDirectory(prefix="loraledger-memory-") as tmp:
        folder = work or Path(tmp)
        store = EmbeddedStore(EmbeddedConfig(root=folder / "store"))
        start = pack_global_adapter(
            adapter.start(0), task_id=1, round_=0, base_model=BASE_MODEL, peft=adapter.spec
        )
        commitments = []
        for i in range(count):
            node = f"0x{i + 1:040x}"
            examples = 10 + (37 * i) % 91
            data = adapter.update(0, i, task_id=1, round_=1, node=node, examples=examples)
            commitments.append([node, store.put_bytes(data), sha256_hex(data), examples, i + 1])
        arguments = {
            "store": str(folder / "store"),
            "start": store.put_bytes(start),
            "commitments": commitments,
            "work": str(folder / "work"),
            "fetch_workers": fetch_workers,
        }
        completed = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, json.dumps(arguments)],
            capture_output=True,
            text=True,
            check=False,
        )
    if completed.returncode != 0:
        raise ConfigError(f"the verification process failed: {completed.stderr.strip()[-2000:]}")
    body = json.loads(completed.stdout.strip().splitlines()[-1])
    return MemoryFigures(
        updates=count,
        update_bytes=adapter.update_bytes,
        fetch_workers=fetch_workers,
        **body,
    )


_MEMORY_CHILD = (
    "import sys; from bench.load import verify_memory_child; verify_memory_child(sys.argv[1])"
)


def verify_memory_child(arguments: str) -> None:
    """Child process body of :func:`verify_memory`: one JSON line with the figures."""
    from aggregator.combine import StrategyConfig, combine
    from aggregator.verify import Commitment, VerifyPolicy, verify_round
    from bench.aggregate import reset_peak_rss, rss_kib
    from ipfs import EmbeddedConfig, EmbeddedStore
    from loraledger.update import parse_global_adapter

    job = json.loads(arguments)
    store = EmbeddedStore(EmbeddedConfig(root=Path(job["store"])))
    start = parse_global_adapter(store.get_bytes(job["start"]))
    commitments = [
        Commitment(node, cid, digest, examples, block=block)
        for node, cid, digest, examples, block in job["commitments"]
    ]
    policy = VerifyPolicy(fetch_workers=job["fetch_workers"])
    reset_peak_rss()
    baseline = rss_kib("VmRSS")
    began, cpu = time.perf_counter(), _cpu_seconds()
    verification = verify_round(
        store,
        commitments,
        task_id=1,
        round_=1,
        start=start,
        policy=policy,
        workdir=Path(job["work"]),
    )
    accepted = verification.accepted
    if accepted:
        combine(
            StrategyConfig(),
            [c.client_update() for c in accepted],
            start.tensors,
            start.metadata.peft,
        )
    seconds, cpu = time.perf_counter() - began, _cpu_seconds() - cpu
    peak = rss_kib("VmHWM")
    print(
        json.dumps(
            {
                "baseline_kib": baseline,
                "peak_kib": peak,
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu, 3),
                "accepted": len(accepted),
            }
        )
    )


def _cpu_seconds() -> float:
    """User and system CPU time of this process so far (every thread; forked workers that
    were waited for too)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# --------------------------------------------------------------------------- checks and figures


def _paid_once(run: _Run, report_cid: str, claimed: dict[str, int]) -> int:
    """How many nodes claimed exactly once, exactly their reward line; raises when any node
    did not (a load test whose rewards went wrong measured nothing worth keeping)."""
    from collections import Counter

    from loraledger.report import fetch_report

    if run.sponsor is None:  # pragma: no cover - set by _setup
        raise ConfigError("no sponsor")
    report = fetch_report(run.sponsor.session.store, report_cid)
    lines = {line.node.lower(): line.amount for line in report.rewards.lines}
    events = run.sponsor.session.history.claims(run.task_id)
    times = Counter(e.node.lower() for e in events)
    amounts = {e.node.lower(): e.amount for e in events}
    wrong = [
        n.party.address
        for n in run.nodes
        if times[n.party.address.lower()] != 1
        or amounts.get(n.party.address.lower()) != lines.get(n.party.address.lower())
        or claimed.get(n.party.address) != lines.get(n.party.address.lower())
    ]
    if wrong:
        raise ChainError(
            f"{len(wrong)} of {len(run.nodes)} nodes were not paid exactly once their reward "
            f"line, e.g. {wrong[:3]}"
        )
    return len(run.nodes)


def _figures(run: _Run, name: str, child: dict[str, Any]) -> Phase:
    parties = [n.party for n in run.nodes]
    others = [p for p in (run.sponsor, run.aggregator) if p is not None]
    node_rpc = [p.rpc.get(name, 0) for p in parties]
    node_gas = [p.gas.get(name, 0) for p in parties]
    in_child = name == "aggregate"
    methods: dict[str, int] = {}
    books = [p.methods.get(name, {}) for p in (*parties, *others)]
    for book in [*books, child["methods"] if in_child else {}]:
        for method, count in book.items():
            methods[method] = methods.get(method, 0) + count
    return Phase(
        name=name,
        seconds=round(run.seconds.get(name, 0.0), 3),
        node_rpc=sum(node_rpc),
        node_rpc_max=max(node_rpc, default=0),
        other_rpc=sum(p.rpc.get(name, 0) for p in others) + (child["rpc"] if in_child else 0),
        node_gas=sum(node_gas),
        node_gas_max=max(node_gas, default=0),
        other_gas=sum(p.gas.get(name, 0) for p in others) + (child["gas"] if in_child else 0),
        transactions=sum(p.transactions.get(name, 0) for p in (*parties, *others))
        + (child["transactions"] if in_child else 0),
        methods=dict(sorted(methods.items(), key=lambda kv: -kv[1])),
    )


# --------------------------------------------------------------------------- the report


def result_path(folder: Path, result: LoadResult) -> Path:
    """Where a run's JSON goes: one file per chain, size and adapter (a rerun replaces it)."""
    name = result.adapter.split(":", 1)[0]
    return folder / f"load-{result.chain}-{result.nodes}-{name}.json"


def load_results(folder: Path) -> list[LoadResult]:
    """Every run recorded in ``folder``, by chain, adapter and size."""
    results = [LoadResult.from_json(p.read_text()) for p in sorted(folder.glob("load-*.json"))]
    return sorted(results, key=lambda r: (r.chain, r.adapter, r.nodes))


def render_tables(results: Sequence[LoadResult]) -> list[str]:
    """Markdown tables of ``results``: per phase and size, seconds, seconds per node, RPC
    requests per node (mean and most) and gas per node; then the aggregator's memory."""
    from bench.report import table

    out: list[str] = []
    for (chain, adapter), group in _groups(results):
        out += [f"### {chain}, {adapter}", ""]
        rows = []
        for phase in ROUND_PHASES:
            for r in group:
                p = r.phase(phase)
                rpc, gas = p.per_node(r.nodes)
                rows.append(
                    [
                        phase,
                        str(r.nodes),
                        f"{p.seconds:.2f}",
                        f"{1000 * p.seconds / r.nodes:.1f}",
                        f"{rpc:.1f}",
                        str(p.node_rpc_max),
                        str(p.other_rpc),
                        f"{gas:,.0f}",
                        f"{p.other_gas:,}",
                    ]
                )
        out += [
            table(
                [
                    "phase",
                    "nodes",
                    "seconds",
                    "ms per node",
                    "RPC per node",
                    "RPC most (one node)",
                    "RPC aggregator",
                    "gas per node",
                    "gas aggregator",
                ],
                rows,
            ),
            "",
        ]
        out += [
            table(
                [
                    "nodes",
                    "set-up s",
                    "join s",
                    "round s",
                    "aggregator: seconds of each step (its own start-up first)",
                    "aggregator CPU s",
                    "aggregator RSS MB: ready / peak / peak - ready",
                    "paid once",
                ],
                [
                    [
                        str(r.nodes),
                        f"{r.phase('setup').seconds:.1f}",
                        f"{r.phase('join').seconds:.1f}",
                        f"{sum(r.phase(p).seconds for p in ROUND_PHASES):.1f}",
                        ", ".join(f"{k} {v:.1f}" for k, v in step_seconds(r.aggregator.steps)),
                        f"{r.aggregator.cpu_seconds:.1f}",
                        f"{r.aggregator.baseline_kib / 1024:.0f} / "
                        f"{r.aggregator.peak_kib / 1024:.0f} / "
                        f"{(r.aggregator.peak_kib - r.aggregator.baseline_kib) / 1024:.0f}",
                        f"{r.paid_once}/{r.nodes}",
                    ]
                    for r in group
                ],
            ),
            "",
        ]
    return out


def step_seconds(steps: dict[str, float]) -> list[tuple[str, float]]:
    """The aggregator's checkpoints (seconds since its start) as the seconds each step took:
    ``ready`` its start-up, ``sheet posted`` the validator's own verification, ``collected``
    .. ``journaled`` the result's computation, ``proposed``, ``finalized`` the validator's
    review and signature."""
    out, last = [], 0.0
    for name, at in sorted(steps.items(), key=lambda step: step[1]):  # (JSON sorts by name)
        out.append((name, at - last))
        last = at
    return out


def _groups(results: Iterable[LoadResult]) -> list[tuple[tuple[str, str], list[LoadResult]]]:
    groups: dict[tuple[str, str], list[LoadResult]] = {}
    for r in results:
        groups.setdefault((r.chain, r.adapter), []).append(r)
    return list(groups.items())


def write_result(folder: Path, result: LoadResult) -> Path:
    """Write the run's JSON into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = result_path(folder, result)
    path.write_text(result.to_json())
    return path


TABLES_BEGIN = "<!-- bench load tables: begin (written by `loraledger bench load`) -->"
TABLES_END = "<!-- bench load tables: end -->"


def update_readme(folder: Path) -> Path:
    """Rewrite the measured part of ``folder``/README.md from every run's JSON there (between
    :data:`TABLES_BEGIN` and :data:`TABLES_END`); the text around it is kept."""
    from bench.report import table

    results = load_results(folder)
    body = [TABLES_BEGIN, ""]
    if results:
        latest = max(results, key=lambda r: r.started)
        body += [
            "Runs (newest first):",
            "",
            *[
                f"- `{r.command}` ({r.started}, {r.total_seconds:.0f} s, {r.chain_version}, "
                f"load average {r.machine.get('load average', '?')})"
                for r in sorted(results, key=lambda r: r.started, reverse=True)
            ],
            "",
            "Machine of the latest run:",
            "",
            table(["item", "value"], [[k, v] for k, v in latest.machine.items()]),
            "",
            *render_tables(results),
        ]
    body.append(TABLES_END)
    path = folder / "README.md"
    text = path.read_text() if path.exists() else f"# Load\n\n{TABLES_BEGIN}\n{TABLES_END}\n"
    if TABLES_BEGIN in text and TABLES_END in text:
        head, rest = text.split(TABLES_BEGIN, 1)
        _, tail = rest.split(TABLES_END, 1)
        text = head + "\n".join(body) + tail
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
    path.write_text(text)
    return path
