"""Rounds of tasks with a privacy policy, finalized with reports made by hand and pinned to a
store: what ``audit rounds``, the audit views and the dashboard show of a report's epsilon. The
aggregator does not run here: these rounds test what is read from a report, not how it is made
(tests/aggregator does that)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from eth_account.signers.local import LocalAccount

from chain.bindings import ZERO_DIGEST
from ipfs import ContentStore
from loraledger.privacy import TaskPrivacy, global_epsilon
from loraledger.report import RewardTable, RoundPrivacy, RoundReport, SubmissionVerdict
from tests.support.chain import BASE_MODEL, LedgerEnv

NODE_POLICY = TaskPrivacy(
    mode="node",
    noise_multiplier=2.0,
    clip_norm=1.0,
    target_epsilon=10.0,
    delta=1e-5,
    accountant="rdp",
    min_nodes=2,
)
EXAMPLE_POLICY = TaskPrivacy(
    mode="example",
    noise_multiplier=1.1,
    clip_norm=1.0,
    target_epsilon=3.0,
    delta=1e-5,
    accountant="rdp",
)


@dataclass(frozen=True)
class Stated:
    """One node's submission of a hand-made round: the verdict its report gives it and the
    epsilon its update states (``None``: trained without DP)."""

    node: LocalAccount
    verdict: str  # "accepted" or "rejected"
    epsilon: float | None


def node_round_privacy(policy: TaskPrivacy, summed_by_round: Sequence[int]) -> RoundPrivacy:
    """What a node-level report states for the last of ``summed_by_round`` (updates summed
    in each round so far), from :mod:`loraledger.privacy`'s accountant."""
    return RoundPrivacy(
        summed=summed_by_round[-1],
        epsilon=global_epsilon(policy, summed_by_round[-1:]),
        total=global_epsilon(policy, summed_by_round),
    )


def private_round(
    env: LedgerEnv,
    store: ContentStore,
    task_id: int,
    stated: Sequence[Stated],
    privacy: RoundPrivacy | None = None,
) -> int:
    """Open the task's next round, let each node of ``stated`` commit and reveal, and finalize
    it (signed by a quorum of the task's validators) with a report pinned to ``store`` that
    gives each its verdict and stated epsilon, and ``privacy``; then let its challenge window
    pass. Pays nothing. Returns the round."""
    round_ = env.open(task_id)
    committed = [env.commit(task_id, round_, s.node) for s in stated]
    env.reveal_all(task_id, round_)
    accepted = sum(1 for s in stated if s.verdict == "accepted")
    result, _ = env.result(task_id, round_, {}, accepted=accepted, rejected=len(stated) - accepted)
    report = RoundReport(
        task_id=task_id,
        round=round_,
        base_model=BASE_MODEL,
        start_digest=env.ledger.round(task_id, round_).start_digest.hex(),
        global_cid=result.global_cid,
        global_digest=result.global_digest.hex(),
        strategy="fedavg",
        submissions=tuple(
            SubmissionVerdict(
                node=s.node.address,
                cid=c.cid,
                digest=c.digest.hex(),
                num_examples=c.examples,
                verdict="accepted" if s.verdict == "accepted" else "rejected",
                reason=None if s.verdict == "accepted" else "norm_outlier",
                weight=1 / accepted if s.verdict == "accepted" else 0.0,
                quality=1.0 if s.verdict == "accepted" else 0.0,
                epsilon=s.epsilon,
            )
            for s, c in zip(stated, committed, strict=True)
        ),
        rewards=RewardTable(rule="examples", pool=0, total=0, root=ZERO_DIGEST.hex(), lines=()),
        privacy=privacy,
    )
    result = replace(result, report_cid=store.put_bytes(report.to_bytes()))
    attestations = env.sign(task_id, round_, result)
    env.ledger.finalize_round(task_id, round_, result, attestations, env.aggregator)
    env.settle(task_id, round_)
    return round_
