"""Builders for the round-loop tests: a task whose adapter and updates are real update-format
artifacts (synthetic tensors), pinned to an embedded store, committed and then revealed on the
embedded chain."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from eth_account.signers.local import LocalAccount
from safetensors.torch import save as st_save

from aggregator.round import RoundRunner, RoundSettings
from aggregator.validator import Validator
from aggregator.verify import Evaluator
from chain.bindings import commitment_hash
from chain.events import History
from chain.round_state import RoundState
from chain.session import Session
from ipfs import EmbeddedConfig, EmbeddedStore
from loraledger.privacy import NO_PRIVACY, TaskPrivacy
from loraledger.update import (
    FORMAT_VERSION,
    METADATA_KEY,
    GlobalAdapterMetadata,
    PeftSpec,
    UpdateMetadata,
    build_global_adapter,
    build_update,
    peft_adapter_config,
)
from tests.aggregator.lora_builders import lora_tensors
from tests.support.chain import BASE_MODEL, LedgerEnv

SPEC = PeftSpec(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj"))


def update_metadata(
    task_id: int, round_: int, node: str, examples: int, spec: PeftSpec = SPEC, **over: object
) -> UpdateMetadata:
    values: dict[str, object] = dict(
        format_version=FORMAT_VERSION,
        task_id=task_id,
        round=round_,
        base_model=BASE_MODEL,
        peft=spec,
        node=node,
        num_examples=examples,
    )
    values.update(over)
    return UpdateMetadata(**values)


def raw_update(tensors: dict[str, torch.Tensor], metadata: UpdateMetadata) -> bytes:
    """Update bytes without the builder's checks (to forge NaN or malformed updates)."""
    meta = json.dumps(metadata.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return st_save({k: v.contiguous() for k, v in tensors.items()}, metadata={METADATA_KEY: meta})


@dataclass
class RoundWorld:
    """A task on the embedded chain with its start adapter pinned to an embedded store."""

    env: LedgerEnv
    store: EmbeddedStore
    task_id: int
    start: dict[str, torch.Tensor]
    work: Path
    pinned: dict[str, bytes] = field(default_factory=dict)
    #: commitments not revealed yet: (round, node) -> (node, cid, digest, examples, salt)
    unrevealed: dict[tuple[int, str], tuple[LocalAccount, str, bytes, int, bytes]] = field(
        default_factory=dict
    )

    def session(self, account: LocalAccount | None = None) -> Session:
        return Session(
            self.env.ledger,
            History(self.env.ledger),
            self.store,
            account or self.env.aggregator,
            state_root=self.work,
        )

    def validators(
        self,
        settings: RoundSettings | None = None,
        evaluator: Evaluator | None = None,
        *,
        count: int | None = None,
    ) -> list[Validator]:
        """The task's validators (the first ``count``), in process, each with its own account
        and work folder, all scoring with ``evaluator`` (``None``: verdicts, no scores)."""
        accounts = self.env.validators[:count]
        return [
            Validator(
                Session(
                    self.env.ledger,
                    History(self.env.ledger),
                    self.store,
                    account,
                    state_root=self.work / f"validator-{i}",
                ),
                self.task_id,
                evaluator,
                settings,
                propose_after=0.0,
            )
            for i, account in enumerate(accounts)
        ]

    def runner(
        self,
        settings: RoundSettings | None = None,
        *,
        evaluator: Evaluator | None = None,
        validators: list[Validator] | None = None,
        **kwargs: Any,
    ) -> RoundRunner:
        """The aggregator's runner with the task's validators in process (``validators``, or
        all of them scoring with ``evaluator``)."""
        if validators is None:
            validators = self.validators(settings, evaluator)
        kwargs.setdefault("sheet_timeout", 0.0)
        kwargs.setdefault("quorum_timeout", 30.0)
        return RoundRunner(self.session(), self.task_id, settings, validators=validators, **kwargs)

    def settle(self, runner: RoundRunner, round_: int) -> None:
        """Let ``round_``'s challenge window pass (time travel) and settle it (its slashes)."""
        info = self.env.ledger.round(self.task_id, round_)
        window = self.env.ledger.task(self.task_id).challenge_window
        self.env.advance_to(info.finalized_at + window)
        assert runner.settle(round_, poll_seconds=0.01, timeout=5)

    def honest(
        self, seed: int, *, spec: PeftSpec = SPEC, noise: float = 0.05
    ) -> dict[str, torch.Tensor]:
        """The start adapter plus small noise (at ``spec``'s rank: the start's first rows/cols)."""
        g = torch.Generator().manual_seed(seed)
        out = {}
        for key, value in self.start.items():
            if spec.rank != SPEC.rank:
                value = value[: spec.rank] if "lora_A" in key else value[:, : spec.rank]
            out[key] = value + noise * torch.randn(value.shape, generator=g)
        return out

    def submit(
        self,
        round_: int,
        node: LocalAccount,
        tensors: dict[str, torch.Tensor] | None = None,
        *,
        examples: int = 10,
        data: bytes | None = None,
        commit_digest: bytes | None = None,
        cid: str | None = None,
        spec: PeftSpec = SPEC,
        **meta: object,
    ) -> str:
        """Pin an update and commit to it; returns its CID. Once every joined node has
        committed (the round is ``REVEALING``), every pending commitment is revealed, in commit
        order; otherwise :meth:`reveal_all` does it after the window."""
        if data is None:
            assert tensors is not None
            data = build_update(
                tensors, update_metadata(self.task_id, round_, node.address, examples, spec, **meta)
            )
        if cid is None:
            cid = self.store.put_bytes(data)
            self.pinned[cid] = data
        digest = commit_digest or hashlib.sha256(data).digest()
        salt = hashlib.sha256(b"salt" + digest + node.address.encode()).digest()
        commitment = commitment_hash(self.task_id, round_, node.address, digest, examples, salt)
        self.env.ledger.commit_update(self.task_id, round_, commitment, node)
        self.unrevealed[(round_, node.address)] = (node, cid, digest, examples, salt)
        if self.env.ledger.round_state(self.task_id, round_) is RoundState.REVEALING:
            self.reveal_all(round_)
        return cid

    def reveal_all(self, round_: int) -> None:
        """End the commit phase (time travel on the embedded chain, waiting on others) and
        reveal every pending commitment of ``round_``."""
        ledger, chain = self.env.ledger, self.env.chain
        while ledger.round_state(self.task_id, round_) is RoundState.OPEN:
            if chain.network.kind == "embedded":
                self.env.end_commit_phase(self.task_id, round_)
            else:  # a real chain's clock: wait for the window, mining empty blocks
                time.sleep(0.2)
                chain.keep_clock()
        for key, (node, cid, digest, examples, salt) in list(self.unrevealed.items()):
            if key[0] == round_:
                ledger.reveal_update(self.task_id, round_, cid, digest, examples, salt, node)
                del self.unrevealed[key]


def make_world(
    env: LedgerEnv,
    tmp_path: Path,
    *,
    nodes: int = 6,
    window: int = 3600,
    max_rounds: int = 3,
    privacy: TaskPrivacy = NO_PRIVACY,
) -> RoundWorld:
    store = EmbeddedStore(EmbeddedConfig(root=tmp_path / "store"))
    task_id = env.ledger.task_count() + 1
    start = lora_tensors(0, rank=SPEC.rank, scale=0.1)
    metadata = GlobalAdapterMetadata(
        format_version=FORMAT_VERSION,
        task_id=task_id,
        round=0,
        base_model=BASE_MODEL,
        peft=SPEC,
        adapter_config=peft_adapter_config(SPEC, BASE_MODEL),
    )
    adapter = build_global_adapter(start, metadata)
    cid = store.put_bytes(adapter)
    created = env.create_task(
        initial_global_cid=cid,
        initial_global_digest=hashlib.sha256(adapter).digest(),
        submission_window=window,
        reveal_window=window,
        max_rounds=max_rounds,
        privacy=privacy,
    )
    assert created == task_id
    env.join(task_id, *env.nodes[:nodes])
    return RoundWorld(env, store, task_id, start, tmp_path / "work")
