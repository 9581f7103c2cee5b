"""The attacks the demo and the incentives experiment run next to honest nodes.

Each attacker is a real account that stakes, commits and reveals through the real contract and
store; what it sends is what an adversary after the pool would send:

``inflate``
    trains honestly on its own shard but claims the task's maximum example count;
``zero``
    resubmits the round's start adapter unchanged (a free ride), claiming the maximum;
``noise``
    the start adapter plus 1e-6 noise, claiming the maximum;
``sybil``
    one of several accounts each sending a near-zero update (a random weight change of norm
    0.01; honest ones are ~0.5), claiming the maximum;
``copy``
    another node's update of this round, leaked to it before the commit phase ended, with
    other bytes (A factors x2, B factors x0.5, ULP noise), committed after the author;
``frontrun``
    commits a placeholder, then, once the author reveals, tries to reveal the author's update
    as its own (the commitment binds what it committed to, so the contract refuses; the
    placeholder is never revealed);
``malformed``
    an update whose metadata holds JSON nested 100,000 levels deep (what used to crash the
    aggregator), committed and revealed properly;
``poison``
    the start adapter plus large random weights (claims 10 examples);
``replay``
    the victim's update of the previous round, re-signed as its own (sits round 1 out);
``mismatch``
    commits to some bytes and reveals others.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import torch
from eth_account.signers.local import LocalAccount

from aggregator.round import RoundRunner
from aggregator.validator import Validator
from chain.bindings import Finalization, commitment_hash
from chain.errors import ContractRevert
from chain.merkle import RewardEntry, RewardTree
from chain.session import Session
from fl_node.data import NodeData
from fl_node.model import LoadedModel
from fl_node.train import NodeTrainConfig, TrainSettings, train_round
from loraledger.errors import ConfigError
from loraledger.report import RewardLine, RoundReport, ScoreSheet
from loraledger.update import (
    FORMAT_VERSION,
    METADATA_KEY,
    GlobalAdapter,
    PeftSpec,
    UpdateMetadata,
    build_update,
    parse_global_adapter,
    parse_update,
    sha256_hex,
)

AttackName = Literal[
    "inflate",
    "zero",
    "noise",
    "sybil",
    "copy",
    "frontrun",
    "malformed",
    "poison",
    "replay",
    "mismatch",
]
ALL_ATTACKS: tuple[AttackName, ...] = get_args(AttackName)
"""Every attack: on the pool (:data:`ATTACKS`) and on the model and the protocol
(:data:`DEFAULT_ATTACKS`: ``poison``, huge random weights; ``replay``, a victim's update of an
earlier round, re-signed; ``mismatch``, a reveal whose bytes are not the committed ones)."""
ATTACKS: tuple[AttackName, ...] = ALL_ATTACKS[:7]
"""The attacks on the pool (the incentives experiment runs each)."""
DEFAULT_ATTACKS: tuple[AttackName, ...] = ALL_ATTACKS[7:]
NEEDS_DATA: frozenset[str] = frozenset({"inflate"})  # attackers that train on a shard
SYBIL_NORM = 0.01
NESTING = 100_000


@dataclass
class Attacker:
    """One attacking account and what it did in each round."""

    kind: AttackName
    session: Session
    data: NodeData | None = None  # its shard (``inflate``)
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)  # round -> what to reveal
    log: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.session.address

    @property
    def account(self) -> LocalAccount:
        return self.session.signer

    # ------------------------------------------------------------------ commit phase

    def commit(
        self,
        task_id: int,
        round_: int,
        *,
        model: LoadedModel,
        spec: PeftSpec,
        settings: TrainSettings,
        max_examples: int,
        victim: str | None = None,
        leaked: bytes | None = None,
        seed: int = 0,
    ) -> None:
        """Commit this round's attack (``victim``: the honest node it copies or replays;
        ``leaked``: the victim's update bytes of this round, for ``copy``)."""
        ledger, store = self.session.ledger, self.session.store
        info = ledger.round(task_id, round_)
        start_cid = self.session.history.global_adapter_at(task_id, info.start_digest)
        start_bytes = store.get_bytes(start_cid)
        start = parse_global_adapter(start_bytes)
        g = torch.Generator().manual_seed(seed)
        if self.kind == "frontrun":
            placeholder = secrets.token_bytes(32)
            ledger.commit_update(task_id, round_, placeholder, self.account)
            self.pending[round_] = {"frontrun": True}
            self.log.append(f"round {round_}: committed a placeholder")
            return
        if self.kind == "inflate":
            if self.data is None:
                raise ValueError("the inflate attacker needs a data shard")
            config = NodeTrainConfig(
                task_id=task_id, round=round_, node=self.address, peft=spec, train=settings
            )
            trained = parse_update(
                train_round(config, model, self.data, start_bytes, info.start_digest.hex()).update
            )
            tensors, peft = dict(trained.tensors), trained.metadata.peft
        elif self.kind == "copy":
            if leaked is None:
                raise ValueError("the copy attacker needs the victim's update")
            original = parse_update(leaked)
            tensors = {
                k: (v * 2.0 if "lora_A" in k else v * 0.5)
                + 1e-9 * torch.randn(v.shape, generator=g, dtype=v.dtype)
                for k, v in original.tensors.items()
            }
            peft = original.metadata.peft
        elif self.kind == "replay":
            earlier = [
                r
                for r in self.session.history.reveals(task_id)
                if victim is not None and r.node.lower() == victim.lower() and r.round < round_
            ]
            if not earlier:
                self.log.append(f"round {round_}: nothing to replay yet; sat the round out")
                return
            replayed = parse_update(store.get_bytes(earlier[-1].cid))
            tensors, peft = dict(replayed.tensors), replayed.metadata.peft
        elif self.kind == "poison":
            tensors = {
                k: v + 5.0 * torch.randn(v.shape, generator=g, dtype=v.dtype)
                for k, v in start.tensors.items()
            }
            peft = start.metadata.peft
        else:
            tensors, peft = _free_ride(self.kind, start, g), start.metadata.peft
        claim = 10 if self.kind in DEFAULT_ATTACKS else max_examples
        metadata = UpdateMetadata(
            format_version=FORMAT_VERSION,
            task_id=task_id,
            round=round_,
            base_model=start.metadata.base_model,
            peft=peft,
            node=self.address,
            num_examples=claim,
        )
        data = build_update(tensors, metadata)
        if self.kind == "malformed":
            data = _nest_metadata(data, NESTING)
        committed = data + b"tampered" if self.kind == "mismatch" else data
        digest = bytes.fromhex(sha256_hex(committed))
        salt = secrets.token_bytes(32)
        commitment = commitment_hash(task_id, round_, self.address, digest, claim, salt)
        ledger.commit_update(task_id, round_, commitment, self.account)
        self.pending[round_] = {"data": data, "digest": digest, "n": claim, "salt": salt}
        self.log.append(f"round {round_}: committed {self.kind} claiming {claim} examples")

    # ------------------------------------------------------------------ reveal phase

    def reveal(self, task_id: int, round_: int, victim: str | None = None) -> None:
        """Reveal what was committed (``frontrun``: try to reveal ``victim``'s update)."""
        pending = self.pending.pop(round_, None)
        if pending is None:
            return
        ledger, store = self.session.ledger, self.session.store
        if pending.get("frontrun"):
            target = next(
                (
                    r
                    for r in self.session.history.reveals(task_id, round_)
                    if victim is not None and r.node.lower() == victim.lower()
                ),
                None,
            )
            if target is None:
                self.log.append(f"round {round_}: nothing revealed to front-run")
                return
            try:
                ledger.reveal_update(
                    task_id,
                    round_,
                    target.cid,
                    target.digest,
                    target.num_examples,
                    secrets.token_bytes(32),
                    self.account,
                )
            except ContractRevert as exc:
                self.log.append(f"round {round_}: revealing the author's update refused: {exc}")
            else:  # pragma: no cover - the contract binds the commitment
                self.log.append(f"round {round_}: revealed the author's update")
            return
        cid = store.put_bytes(pending["data"])
        store.pin(cid)
        ledger.reveal_update(
            task_id, round_, cid, pending["digest"], pending["n"], pending["salt"], self.account
        )
        self.log.append(f"round {round_}: revealed {cid}")


def _free_ride(kind: str, start: GlobalAdapter, g: torch.Generator) -> dict[str, torch.Tensor]:
    """The start adapter (``zero``), plus 1e-6 noise (``noise``), or plus a random weight
    change of norm :data:`SYBIL_NORM` (``sybil``: noise on the B factors, scaled to that
    norm)."""
    from aggregator.screening import Change, change_distance

    tensors = {k: v.clone() for k, v in start.tensors.items()}
    if kind == "zero":
        return tensors
    if kind == "noise":
        return {
            k: v + 1e-6 * torch.randn(v.shape, generator=g, dtype=v.dtype)
            for k, v in tensors.items()
        }
    noise = {
        k: torch.randn(v.shape, generator=g, dtype=v.dtype)
        if "lora_B" in k
        else torch.zeros_like(v)
        for k, v in tensors.items()
    }
    scaling = start.metadata.peft.delta_scaling
    moved = {k: v + noise[k] for k, v in tensors.items()}
    norm = change_distance(Change(moved, scaling), Change(tensors, scaling))
    factor = SYBIL_NORM / norm if norm > 0 else 0.0
    return {k: v + factor * noise[k] for k, v in tensors.items()}


def _nest_metadata(data: bytes, depth: int) -> bytes:
    """``data`` (a safetensors update) whose JSON metadata gains an entry nested ``depth``
    levels deep (written as text: building it as objects would itself overflow)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    meta = header["__metadata__"][METADATA_KEY]
    header["__metadata__"][METADATA_KEY] = meta[:-1] + ',"extra":' + "[" * depth + "]" * depth + "}"
    body = json.dumps(header, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)
    return len(body).to_bytes(8, "little") + body + data[8 + size :]


def parse_attacks(text: str) -> tuple[AttackName, ...]:
    """``"inflate,zero"`` as attack names; :class:`ConfigError` naming an unknown one."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in names if a not in ALL_ATTACKS]
    if unknown or not names:
        raise ConfigError(
            f"unknown attacks {unknown}" if unknown else "no attack named",
            hint=f"choose from {', '.join(ALL_ATTACKS)}",
        )
    by_name: dict[str, AttackName] = {a: a for a in ALL_ATTACKS}
    return tuple(by_name[n] for n in names)


# ---------------------------------------------------------------------- lying parties


class LyingAggregator(RoundRunner):
    """The task's aggregator, lying in the task's last round (a slashed bond opens no more
    rounds, so it lies when it has no round left to lose): it halves every honest reward and
    pays the difference to itself, in a report that says so. The validators review results
    with the audit's checks, so the honest ones refuse to sign it, propose the result they
    derive, and the lie costs its author its bond (``slashConflicting``)."""

    lies: list[str]

    def _compute(self, round_: int, submissions: int) -> tuple[RoundReport, Finalization]:
        report, honest = super()._compute(round_, submissions)
        self.lies = getattr(self, "lies", [])
        if round_ < self.task.max_rounds:
            return report, honest
        amounts = {line.node: line.amount // 2 for line in report.rewards.lines}
        stolen = report.rewards.total - sum(amounts.values())
        if stolen <= 0:
            return report, honest
        amounts[self.session.address] = amounts.get(self.session.address, 0) + stolen
        tree = RewardTree(
            self.task_id, round_, [RewardEntry(n, a) for n, a in amounts.items() if a > 0]
        )
        table = report.rewards.model_copy(
            update={
                "root": tree.root.hex(),
                "total": tree.total,
                "lines": tuple(
                    RewardLine(
                        node=e.node,
                        amount=e.amount,
                        proof=tuple(p.hex() for p in tree.proof(e.node)),
                    )
                    for e in sorted(tree.entries, key=lambda e: e.node.lower())
                ),
            }
        )
        lie = report.model_copy(update={"rewards": table})
        cid = self.session.store.put_bytes(lie.to_bytes())
        self.session.store.pin(cid)
        self.lies.append(f"round {round_}: proposed a result paying itself {stolen}")
        return lie, replace(honest, report_cid=cid, reward_root=tree.root, reward_total=tree.total)


class LyingValidator(Validator):
    """A validator in league with a crony: its sheet scores the crony's update 10x higher than
    its data says and every other update 0, and it signs whatever is proposed without checking.
    The median of three sheets ignores it (its agreement, and so its pay, drops to nothing), and
    its signature on a lie is evidence against its bond."""

    crony: str = ""

    def sheet(self, round_: int) -> ScoreSheet:
        honest = super().sheet(round_)
        entries = tuple(
            e.model_copy(
                update={
                    "score": (10 * abs(e.score or 1.0))
                    if e.node.lower() == self.crony.lower()
                    else 0.0
                }
            )
            if e.score is not None
            else e
            for e in honest.entries
        )
        return honest.model_copy(update={"entries": entries})

    def review(self, round_: int, result: Finalization) -> list[str]:
        return []  # signs anything

    def hold_to_account(self, round_: int) -> None:
        return None  # challenges nothing, reports nobody
