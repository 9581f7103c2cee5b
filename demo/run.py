"""The whole story in one process: a federated run with rewards and an audit.

:func:`run_demo` deploys the contracts, creates and funds a task whose initial adapter is built
from the base model, lets N nodes (non-IID shards of the bundled data, alternating LoRA ranks)
stake and join, runs R rounds (nodes train and commit, the aggregator verifies, aggregates,
publishes and finalizes), lets every node claim its rewards and finally audits every round.
Optional malicious nodes send poisoned, replayed or mismatched updates to show them rejected
and unpaid. Every part is the real one: the same node and aggregator code as the CLI, on the
embedded chain and store by default or on Ganache/anvil and an IPFS node.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import torch
from pydantic import model_validator

from aggregator.combine import StrategyConfig
from aggregator.round import RoundOutcome, RoundRunner, RoundSettings
from chain.bindings import Ledger
from chain.deployments import deploy
from chain.events import History
from chain.network import DEV_ACCOUNTS, Chain, dev_account
from chain.session import Session
from fl_node.data import Example, NodeData, sample_examples, split_shards, train_eval_split
from fl_node.evaluate import AdapterEvaluator
from fl_node.model import LoadedModel
from fl_node.node import claim, join, submit_round
from fl_node.train import StepReport, TrainSettings
from ipfs import ContentStore
from loraledger.settings import Invalid, Settings
from loraledger.update import (
    FORMAT_VERSION,
    PeftSpec,
    UpdateMetadata,
    build_update,
    parse_global_adapter,
    parse_update,
)
from sponsor.task import publish_task

TOKEN = 10**18
MALICIOUS_KINDS = ("noise", "replay", "mismatch")


class DemoConfig(Settings):
    """The demo: how many nodes (and malicious ones) over how many rounds, and how they train."""

    nodes: int = 4
    rounds: int = 3
    malicious: int = 0
    task_rank: int = 8
    ranks: tuple[int, ...] = (8, 4)  # cycled over the nodes
    steps: int = 6
    batch_size: int = 4
    max_length: int = 128
    learning_rate: float = 1e-3
    strategy: str = "flexlora"
    reward_per_round: int = 100 * TOKEN
    stake: int = 10 * TOKEN
    window: int = 3600
    validation_examples: int = (
        32  # the aggregator's validation set (scores every update each round)
    )
    node_eval_examples: int = 24  # each node's held-out set (eval loss before and after each round)
    seed: int = 0

    @model_validator(mode="after")
    def _enough_accounts(self) -> Self:
        if self.nodes < 1 or self.rounds < 1 or self.malicious < 0:
            raise ValueError("--nodes and --rounds must be positive, --malicious not negative")
        if self.nodes + self.malicious > DEV_ACCOUNTS - 2:
            raise Invalid(
                f"{self.nodes} nodes + {self.malicious} malicious need more than the "
                f"{DEV_ACCOUNTS - 2} dev accounts left after the sponsor and the aggregator",
                hint=f"use at most {DEV_ACCOUNTS - 2} nodes in all",
            )
        return self


@dataclass
class NodeSummary:
    address: str
    kind: str  # "honest" or a malicious kind
    examples: int
    rank: int
    accepted_rounds: int = 0
    earned: int = 0


@dataclass
class RoundSummary:
    round: int
    submitted: int
    accepted: int
    rejected: dict[str, int]
    global_eval_loss: float | None
    start_eval_loss: float | None
    paid: int
    gas_used: int
    report_cid: str
    global_cid: str


@dataclass
class DemoResult:
    network: str
    ledger: str
    task_id: int
    base_model: str
    rounds: list[RoundSummary] = field(default_factory=list)
    nodes: list[NodeSummary] = field(default_factory=list)
    audit_ok: bool = False
    audit: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    out_dir: str = ""

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        for r in body["rounds"]:
            r["paid"] = str(r["paid"])
        for n in body["nodes"]:
            n["earned"] = str(n["earned"])
        return body


Progress = Callable[[str, dict[str, Any]], None]
"""``progress(event, fields)``: events ``stage``, ``train`` (round, node, step, total, loss),
``submitted``, ``round``; the CLI draws them, tests ignore them."""


def run_demo(
    chain: Chain,
    store: ContentStore,
    model: LoadedModel,
    config: DemoConfig,
    out_dir: Path,
    *,
    progress: Progress = lambda event, fields: None,
) -> DemoResult:
    began = time.perf_counter()
    net = chain.network
    admin, aggregator = dev_account(net, 0), dev_account(net, 1)
    honest = [dev_account(net, 2 + i) for i in range(config.nodes)]
    malicious = [dev_account(net, 2 + config.nodes + i) for i in range(config.malicious)]

    progress("stage", {"text": f"deploying the contracts on {net.name}"})
    deployment = deploy(chain, admin, aggregator=aggregator.address, save=net.kind != "embedded")
    ledger, token = deployment.ledger_contract(chain), deployment.token_contract(chain)
    history = History(ledger, deployment.block)

    data = _node_data(config)
    validation = data.pop()
    spec = PeftSpec(rank=config.task_rank, alpha=2.0 * config.task_rank)
    task_id, _ = publish_task(
        ledger,
        token,
        store,
        model,
        spec,
        admin,
        reward_per_round=config.reward_per_round,
        min_stake=config.stake,
        window=config.window,
        max_rounds=config.rounds,
        fund=config.reward_per_round * config.rounds,
        seed=config.seed,
    )
    progress(
        "stage", {"text": f"task {task_id}: {len(honest)} nodes + {len(malicious)} malicious join"}
    )
    for account in [*honest, *malicious]:
        token.transfer(account.address, config.stake, admin)
        join(Session(ledger, history, store, account), task_id)

    runner = RoundRunner(
        Session(ledger, history, store, aggregator, state_root=out_dir / "aggregator"),
        task_id,
        RoundSettings(strategy=StrategyConfig(name=config.strategy)),  # type: ignore[arg-type]
        evaluator=AdapterEvaluator(model, validation.train, max_length=config.max_length),
    )
    result = DemoResult(net.name, ledger.address, task_id, model.model_id, out_dir=str(out_dir))
    ranks = [config.ranks[i % len(config.ranks)] for i in range(len(honest))]
    result.nodes = [
        NodeSummary(a.address, "honest", 0, r) for a, r in zip(honest, ranks, strict=True)
    ]
    result.nodes += [
        NodeSummary(a.address, MALICIOUS_KINDS[i % len(MALICIOUS_KINDS)], 10, spec.rank)
        for i, a in enumerate(malicious)
    ]
    settings = TrainSettings(
        max_steps=config.steps,
        batch_size=config.batch_size,
        max_length=config.max_length,
        learning_rate=config.learning_rate,
        seed=config.seed,
    )
    reports_dir = out_dir / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(config.rounds):
        first_block = chain.w3.eth.block_number + 1
        round_ = runner.open()
        for i, (account, node_data) in enumerate(zip(honest, data, strict=True)):
            node_spec = PeftSpec(rank=ranks[i], alpha=2.0 * ranks[i])

            def on_step(step: StepReport, node: int = i, r: int = round_) -> None:
                progress(
                    "train",
                    {
                        "round": r,
                        "node": node,
                        "step": step.step,
                        "total": step.total_steps,
                        "loss": step.loss,
                    },
                )

            session = Session(ledger, history, store, account, state_root=out_dir / "nodes")
            submitted = submit_round(
                session,
                task_id,
                model,
                node_data,
                peft=node_spec,
                settings=settings,
                progress=on_step,
            )
            result.nodes[i].examples = submitted.num_examples
            progress(
                "submitted",
                {
                    "round": round_,
                    "node": i,
                    "cid": submitted.cid,
                    "before": submitted.eval_loss_before,
                    "after": submitted.eval_loss_after,
                },
            )
        for j, account in enumerate(malicious):
            _submit_malicious(
                ledger,
                history,
                store,
                task_id,
                round_,
                account,
                honest[0].address,
                MALICIOUS_KINDS[j % len(MALICIOUS_KINDS)],
                spec,
                seed=100 * round_ + j,
            )
        progress("stage", {"text": f"round {round_}: the aggregator verifies and aggregates"})
        outcome = runner.finalize(round_)
        last_block = chain.w3.eth.block_number
        (reports_dir / f"round-{round_}.json").write_bytes(outcome.report.to_bytes())
        summary = _round_summary(outcome, _gas_between(chain, first_block, last_block))
        for node in result.nodes:
            verdict = next(
                (v for v in outcome.report.submissions if v.node.lower() == node.address.lower()),
                None,
            )
            node.accepted_rounds += int(verdict is not None and verdict.verdict == "accepted")
        result.rounds.append(summary)
        progress("round", asdict(summary))

    progress("stage", {"text": "every node claims its rewards"})
    for account, node in zip([*honest, *malicious], result.nodes, strict=True):
        before = token.balance_of(account.address)
        claim(Session(ledger, history, store, account), task_id)
        node.earned = token.balance_of(account.address) - before

    progress("stage", {"text": "auditing every round from the chain and the store"})
    from aggregator.audit import Auditor

    checks = Auditor(ledger, History(ledger, deployment.block), store).verify(task_id)
    result.audit = [c.to_json() for c in checks]
    result.audit_ok = all(c.ok for c in checks)
    result.seconds = time.perf_counter() - began
    (out_dir / "summary.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result


def _node_data(config: DemoConfig) -> list[NodeData]:
    """Non-IID shards of the bundled data (split by topic), each with a held-out split, and a
    pooled validation set for the aggregator (returned last, as train examples)."""
    examples = sample_examples()
    shards = split_shards(examples, config.nodes + 1, "label", seed=config.seed)
    validation_pool: list[Example] = []
    out = []
    for shard in shards[: config.nodes]:
        data = train_eval_split(shard, 0.2, seed=config.seed)
        out.append(NodeData(train=data.train, eval=data.eval[: config.node_eval_examples]))
        validation_pool.extend(data.eval)
    validation_pool.extend(shards[config.nodes])
    random.Random(config.seed).shuffle(validation_pool)
    out.append(NodeData(train=tuple(validation_pool[: config.validation_examples])))
    return out


def _submit_malicious(
    ledger: Ledger,
    history: History,
    store: ContentStore,
    task_id: int,
    round_: int,
    account: Any,
    victim: str,
    kind: str,
    spec: PeftSpec,
    *,
    seed: int,
) -> None:
    """A bad update of ``kind``: huge random weights, another node's tensors, or a commitment
    to other bytes than those pinned."""
    info = ledger.round(task_id, round_)
    start = parse_global_adapter(
        store.get_bytes(history.global_adapter_at(task_id, info.start_digest))
    )
    g = torch.Generator().manual_seed(seed)
    if kind == "replay":
        (copied,) = [
            s for s in history.submissions(task_id, round_) if s.node.lower() == victim.lower()
        ]
        parsed = parse_update(store.get_bytes(copied.cid))
        tensors, peft = parsed.tensors, parsed.metadata.peft
    else:
        tensors = {k: v + 5.0 * torch.randn(v.shape, generator=g) for k, v in start.tensors.items()}
        peft = spec
    metadata = UpdateMetadata(
        format_version=FORMAT_VERSION,
        task_id=task_id,
        round=round_,
        base_model=start.metadata.base_model,
        peft=peft,
        node=account.address,
        num_examples=10,
    )
    data = build_update(tensors, metadata)
    cid = store.put_bytes(data)
    digest = hashlib.sha256(data if kind != "mismatch" else data + b"tampered").digest()
    ledger.submit_update(task_id, round_, cid, digest, 10, account)


def _round_summary(outcome: RoundOutcome, gas: int) -> RoundSummary:
    report = outcome.report
    rejected: dict[str, int] = {}
    for s in report.submissions:
        if s.verdict == "rejected" and s.reason:
            rejected[s.reason] = rejected.get(s.reason, 0) + 1
    return RoundSummary(
        round=outcome.round,
        submitted=len(report.submissions),
        accepted=sum(1 for s in report.submissions if s.verdict == "accepted"),
        rejected=rejected,
        global_eval_loss=report.metrics.get("global_eval_loss"),
        start_eval_loss=report.metrics.get("start_eval_loss"),
        paid=report.rewards.total,
        gas_used=gas,
        report_cid=outcome.report_cid,
        global_cid=report.global_cid,
    )


def _gas_between(chain: Chain, first: int, last: int) -> int:
    return sum(int(chain.w3.eth.get_block(n)["gasUsed"]) for n in range(first, last + 1))
