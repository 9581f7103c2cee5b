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

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

from pydantic import model_validator

from aggregator.combine import StrategyConfig
from aggregator.round import RoundOutcome, RoundRunner, RoundSettings
from aggregator.validator import Validator, post_bond
from chain.deployments import deploy, recorded
from chain.events import History
from chain.network import DEV_ACCOUNTS, Chain, dev_account
from chain.round_state import RoundState
from chain.session import Session
from demo.attacks import (
    DEFAULT_ATTACKS,
    NEEDS_DATA,
    Attacker,
    AttackName,
    LyingAggregator,
    LyingValidator,
)
from fl_node.data import Example, NodeData, sample_examples, split_shards, train_eval_split
from fl_node.evaluate import AdapterEvaluator
from fl_node.model import LoadedModel
from fl_node.node import claim, join, reveal_round, submit_round
from fl_node.train import StepReport, TrainSettings
from ipfs import ContentStore
from loraledger.errors import ChainError
from loraledger.report import RoundReport, fetch_report
from loraledger.settings import Invalid, Settings
from loraledger.update import (
    PeftSpec,
)
from sponsor.task import TaskRoles, publish_task

TOKEN = 10**18


class DemoConfig(Settings):
    """The demo: how many nodes (and malicious ones) over how many rounds, and how they train."""

    nodes: int = 4
    rounds: int = 3
    malicious: int = 0
    attacks: tuple[AttackName, ...] = ()  # cycled over the malicious nodes (default: the
    # attacks on the model and protocol, demo.attacks.DEFAULT_ATTACKS)
    legacy_rewards: bool = False  # the reward rules before contribution scoring (comparisons)
    max_examples: int = 100_000  # the task's cap on claimed examples per node and round
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
    validation_examples: int = 32  # each validator's held-out set (scores every update)
    validators: int = 3  # the task's validators, each with its own held-out data
    quorum: int | None = None  # signatures a result needs (default: a strict majority)
    liars: bool = False  # a lying aggregator and one lying validator (demo.attacks)
    validator_share_bps: int = 1000  # validators' share of each round's reward
    bond: int = 10 * TOKEN  # what the aggregator and each validator lock
    challenge_window: int = 60  # seconds a finalized round can be challenged (the demo waits it)
    node_eval_examples: int = 24  # each node's held-out set (eval loss before and after each round)
    seed: int = 0

    @property
    def attack_kinds(self) -> list[AttackName]:
        """The attack of each malicious node, in order."""
        kinds = self.attacks or DEFAULT_ATTACKS
        return [kinds[i % len(kinds)] for i in range(self.malicious)]

    @model_validator(mode="after")
    def _enough_accounts(self) -> Self:
        if self.nodes < 1 or self.rounds < 1 or self.malicious < 0:
            raise ValueError("--nodes and --rounds must be positive, --malicious not negative")
        if not 1 <= self.validators <= 5:
            raise ValueError(f"--validators must be in 1..5, got {self.validators}")
        if self.liars and self.validators < 3:
            raise Invalid(
                "a lying validator is outvoted only by two honest ones",
                hint="use --validators 3 or more with the lying parties",
            )
        free = DEV_ACCOUNTS - 2 - self.validators
        if self.nodes + self.malicious > free:
            raise Invalid(
                f"{self.nodes} nodes + {self.malicious} malicious need more than the "
                f"{free} dev accounts left after the sponsor, the aggregator and "
                f"{self.validators} validators",
                hint=f"use at most {free} nodes in all",
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
    slashed: int = 0
    log: list[str] = field(default_factory=list)  # what an attacker did, round by round


@dataclass
class PartySummary:
    """The aggregator or a validator: whether it lied, what it earned and lost."""

    address: str
    role: str  # "aggregator" or "validator"
    honest: bool
    earned: int = 0
    bond_slashed: int = 0
    agreement: float | None = None  # a validator's mean agreement with the consensus


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
    train_seconds: float = 0.0  # the honest nodes' training (submit_round), one after another
    verify_seconds: float = 0.0  # the aggregator's verification (the report's metrics)
    score_seconds: float = 0.0  # its contribution scoring
    aggregate_seconds: float = 0.0  # its aggregation


@dataclass
class DemoResult:
    network: str
    ledger: str
    task_id: int
    base_model: str
    rounds: list[RoundSummary] = field(default_factory=list)
    nodes: list[NodeSummary] = field(default_factory=list)
    parties: list[PartySummary] = field(default_factory=list)
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
            n["slashed"] = str(n["slashed"])
        for p in body["parties"]:
            p["earned"] = str(p["earned"])
            p["bond_slashed"] = str(p["bond_slashed"])
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
    validator_accounts = [dev_account(net, 2 + i) for i in range(config.validators)]
    first = 2 + config.validators
    honest = [dev_account(net, first + i) for i in range(config.nodes)]
    malicious = [dev_account(net, first + config.nodes + i) for i in range(config.malicious)]

    progress("stage", {"text": f"deploying the contracts on {net.name}"})
    previous = recorded(chain.chain_id) if net.kind != "embedded" else None
    # the demo makes a world of its own: the chain's earlier deployment stays in its history
    deployment = deploy(chain, admin, save=net.kind != "embedded", replace=True)
    if previous is not None:
        progress(
            "stage",
            {
                "text": f"the chain's earlier deployment (LoRALedger {previous.ledger}) stays in "
                f"`loraledger deployments list --network {net.name}`"
            },
        )
    ledger, token = deployment.ledger_contract(chain), deployment.token_contract(chain)
    history = History(ledger, deployment.block)

    kinds = config.attack_kinds
    trainers = config.nodes + sum(1 for k in kinds if k in NEEDS_DATA)
    data = _node_data(config, trainers)
    validation_sets = [data.pop() for _ in range(config.validators)][::-1]
    spec = PeftSpec(rank=config.task_rank, alpha=2.0 * config.task_rank)
    roles = TaskRoles(
        aggregator=aggregator.address,
        validators=tuple(a.address for a in validator_accounts),
        quorum=config.quorum,
        aggregator_bond=config.bond,
        validator_bond=config.bond,
        validator_share_bps=config.validator_share_bps,
        challenge_window=config.challenge_window,
    )
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
        max_examples=config.max_examples,
        seed=config.seed,
        roles=roles,
    )
    progress(
        "stage",
        {
            "text": f"task {task_id}: the aggregator and {config.validators} validators "
            f"(quorum {roles.effective_quorum}) post their bonds"
            + ("; the aggregator and one validator lie" if config.liars else "")
        },
    )
    for account in [aggregator, *validator_accounts]:
        token.transfer(account.address, config.bond, admin)
        post_bond(Session(ledger, history, store, account), task_id)
    progress(
        "stage", {"text": f"task {task_id}: {len(honest)} nodes + {len(malicious)} malicious join"}
    )
    for account in [*honest, *malicious]:
        token.transfer(account.address, config.stake, admin)
        join(Session(ledger, history, store, account), task_id)

    round_settings = (RoundSettings.legacy if config.legacy_rewards else RoundSettings)(
        strategy=StrategyConfig(name=config.strategy)  # type: ignore[arg-type]
    )
    validators: list[Validator] = []
    for i, (account, held_out) in enumerate(zip(validator_accounts, validation_sets, strict=True)):
        lying = config.liars and i == len(validator_accounts) - 1
        validator = (LyingValidator if lying else Validator)(
            Session(ledger, history, store, account, state_root=out_dir / f"validator-{i}"),
            task_id,
            AdapterEvaluator(model, held_out.train, max_length=config.max_length),
            round_settings,
            propose_after=0.0,  # in one process: propose at once when nothing can be signed
        )
        validators.append(validator)
    runner = (LyingAggregator if config.liars else RoundRunner)(
        Session(ledger, history, store, aggregator, state_root=out_dir / "aggregator"),
        task_id,
        round_settings,
        validators=validators,
        sheet_timeout=0.0,
        quorum_timeout=60.0,
    )
    result = DemoResult(net.name, ledger.address, task_id, model.model_id, out_dir=str(out_dir))
    ranks = [config.ranks[i % len(config.ranks)] for i in range(len(honest))]
    result.nodes = [
        NodeSummary(a.address, "honest", 0, r) for a, r in zip(honest, ranks, strict=True)
    ]
    shards = iter(data[config.nodes :])
    attackers = [
        Attacker(
            kind,
            Session(ledger, history, store, a, state_root=out_dir / "attackers"),
            next(shards) if kind in NEEDS_DATA else None,
        )
        for a, kind in zip(malicious, kinds, strict=True)
    ]
    result.nodes += [
        NodeSummary(
            a.address, a.kind, 10 if a.kind in DEFAULT_ATTACKS else config.max_examples, spec.rank
        )
        for a in attackers
    ]
    if config.liars:  # the lying validator's crony: an attacker if any, else the last node
        crony = attackers[0].address if attackers else honest[-1].address
        for validator in validators:
            if isinstance(validator, LyingValidator):
                validator.crony = crony
    result.parties = [PartySummary(aggregator.address, "aggregator", not config.liars)] + [
        PartySummary(v.address, "validator", not isinstance(v, LyingValidator)) for v in validators
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
        trained_at = time.perf_counter()
        for i, (account, node_data) in enumerate(zip(honest, data[: config.nodes], strict=True)):
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
        train_seconds = time.perf_counter() - trained_at
        victim = honest[0]
        victim_session = Session(ledger, history, store, victim, state_root=out_dir / "nodes")
        for j, attacker in enumerate(attackers):
            if ledger.member(task_id, attacker.address).stake < config.stake:
                continue  # slashed for cheating in an earlier round: it can no longer commit
            attacker.commit(
                task_id,
                round_,
                model=model,
                spec=spec,
                settings=settings,
                max_examples=config.max_examples,
                victim=victim.address,
                leaked=_leaked(victim_session, task_id, round_)
                if attacker.kind == "copy"
                else None,
                seed=100 * round_ + j,
            )
        if ledger.round_state(task_id, round_) is RoundState.OPEN:  # a node sat the round out
            progress("stage", {"text": f"round {round_}: the commit window runs out"})
            chain.advance_time(ledger.round(task_id, round_).deadline - chain.timestamp() + 1)
        progress("stage", {"text": f"round {round_}: the nodes reveal their updates"})
        for account in honest:
            reveal_round(
                Session(ledger, history, store, account, state_root=out_dir / "nodes"),
                task_id,
                round_,
            )
        for attacker in attackers:
            attacker.reveal(task_id, round_, victim.address)
        if ledger.round_state(task_id, round_) is RoundState.REVEALING:  # someone did not reveal
            progress("stage", {"text": f"round {round_}: the reveal window runs out"})
            info = ledger.round(task_id, round_)
            chain.advance_time(info.reveal_deadline - chain.timestamp() + 1)
        progress("stage", {"text": f"round {round_}: the aggregator verifies and aggregates"})
        outcome = runner.finalize(round_)
        progress(
            "stage",
            {"text": f"round {round_}: finalized by the validators; the challenge window runs"},
        )
        info = ledger.round(task_id, round_)
        chain.advance_time(info.finalized_at + config.challenge_window - chain.timestamp() + 1)
        runner.settle(round_)  # executes the slashes the result names
        last_block = chain.w3.eth.block_number
        (reports_dir / f"round-{round_}.json").write_bytes(outcome.report.to_bytes())
        summary = _round_summary(outcome, _gas_between(chain, first_block, last_block))
        summary.train_seconds = round(train_seconds, 3)
        for node in result.nodes:
            verdict = next(
                (v for v in outcome.report.submissions if v.node.lower() == node.address.lower()),
                None,
            )
            node.accepted_rounds += int(verdict is not None and verdict.verdict == "accepted")
        result.rounds.append(summary)
        progress("round", asdict(summary))

    progress("stage", {"text": "every node and validator claims its rewards"})
    for account, node in zip([*honest, *malicious], result.nodes, strict=True):
        before = token.balance_of(account.address)
        claim(Session(ledger, history, store, account), task_id)
        node.earned = token.balance_of(account.address) - before
    for account, party in zip([aggregator, *validator_accounts], result.parties, strict=True):
        before = token.balance_of(account.address)
        claim(Session(ledger, history, store, account), task_id)
        party.earned = token.balance_of(account.address) - before
    for bond_slash in history.bond_slashes(task_id):
        for party in result.parties:
            if party.address.lower() == bond_slash.account.lower():
                party.bond_slashed += bond_slash.amount
    for party in result.parties:
        lines = [
            line.agreement
            for r in range(1, config.rounds + 1)
            for line in _report_of(history, store, task_id, r).validators
            if line.validator.lower() == party.address.lower()
        ]
        party.agreement = sum(lines) / len(lines) if lines else None
    for event in history.slashes(task_id):
        for node in result.nodes:
            if node.address.lower() == event.node.lower():
                node.slashed += event.amount
    for attacker, node in zip(attackers, result.nodes[config.nodes :], strict=True):
        node.log = attacker.log

    progress("stage", {"text": "auditing every round from the chain and the store"})
    from aggregator.audit import Auditor

    checks = Auditor(ledger, History(ledger, deployment.block), store).verify(task_id)
    result.audit = [c.to_json() for c in checks]
    result.audit_ok = all(c.ok for c in checks)
    result.seconds = time.perf_counter() - began
    (out_dir / "summary.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result


def _node_data(config: DemoConfig, trainers: int) -> list[NodeData]:
    """Non-IID shards of the bundled data (split by topic), each with a held-out split, then
    one private held-out set per validator, disjoint (returned last, as train examples)."""
    examples = sample_examples()
    shards = split_shards(examples, trainers + 1, "label", seed=config.seed)
    validation_pool: list[Example] = []
    out = []
    for shard in shards[:trainers]:
        data = train_eval_split(shard, 0.2, seed=config.seed)
        out.append(NodeData(train=data.train, eval=data.eval[: config.node_eval_examples]))
        validation_pool.extend(data.eval)
    validation_pool.extend(shards[trainers])
    random.Random(config.seed).shuffle(validation_pool)
    size = min(config.validation_examples, len(validation_pool) // config.validators)
    for i in range(config.validators):
        out.append(NodeData(train=tuple(validation_pool[i * size : (i + 1) * size])))
    return out


def _report_of(history: History, store: ContentStore, task_id: int, round_: int) -> RoundReport:
    record = history.finalization(task_id, round_)
    if record is None:
        raise ChainError(f"round {round_} of task {task_id} is not finalized")
    return fetch_report(store, record.report_cid)


def _leaked(victim: Session, task_id: int, round_: int) -> bytes:
    """The victim's committed update of ``round_`` as a careless node would leak it (its
    journalled bytes): what a copier needs before the commit phase ends."""
    path = victim.state_dir("nodes", task_id) / f"round-{round_}.safetensors"
    return path.read_bytes()


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
        # rounds decided by validators publish their median loss of the aggregate instead
        global_eval_loss=report.metrics.get(
            "global_eval_loss", report.metrics.get("scored_eval_loss")
        ),
        start_eval_loss=report.metrics.get("start_eval_loss"),
        paid=report.rewards.total,
        gas_used=gas,
        report_cid=outcome.report_cid,
        global_cid=report.global_cid,
        verify_seconds=report.metrics.get("verify_seconds", 0.0),
        score_seconds=report.metrics.get("score_seconds", 0.0),
        aggregate_seconds=report.metrics.get("aggregate_seconds", 0.0),
    )


def _gas_between(chain: Chain, first: int, last: int) -> int:
    return sum(int(chain.w3.eth.get_block(n)["gasUsed"]) for n in range(first, last + 1))
