"""Challenges the contract settles itself: evidence it can check without trusting anyone.

During a finalized round's challenge window (docs/accountability.md) anyone may show that
its reward tree pays an account that neither revealed an update in the round nor is a
validator whose score sheet the result used (``challengeReward``): the round is voided, to be
proposed again, and the bonds of the result's proposer and signers are slashed. What the
contract cannot check (a verdict, a re-aggregation) is the validators' quorum's to decide.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from chain.bindings import Ledger
from chain.events import History
from ipfs import ContentStore
from loraledger.display import tokens
from loraledger.errors import LoRALedgerError, ServiceUnavailable
from loraledger.report import fetch_report

__all__ = ["RewardChallenge", "reward_challenges"]


@dataclass(frozen=True)
class RewardChallenge:
    """A reward leaf of a finalized round for an account with no claim to it."""

    task_id: int
    round: int
    account: str
    amount: int
    proof: tuple[bytes, ...]
    why: str

    def send(self, ledger: Ledger, signer: LocalAccount) -> TxReceipt:
        """Submit it (``challengeReward``); reverts unless the round is still challengeable."""
        return ledger.challenge_reward(
            self.task_id, self.round, self.account, self.amount, list(self.proof), signer
        )


def reward_challenges(
    ledger: Ledger, history: History, store: ContentStore, task_id: int, round_: int
) -> list[RewardChallenge]:
    """The challenges the finalized ``round_``'s report gives evidence for (its reward lines
    for accounts that revealed nothing and are not validators whose sheets it used); empty when
    the round is not finalized or its report cannot be read (an audit reports that)."""
    record = history.finalization(task_id, round_)
    if record is None:
        return []
    try:
        report = fetch_report(store, record.report_cid)
    except ServiceUnavailable:
        raise  # our own IPFS node does not answer: not "nothing to challenge"
    except LoRALedgerError:
        return []
    revealed = {e.node.lower() for e in history.reveals(task_id, round_)}
    validators = ledger.validators(task_id)
    used = {v.lower() for i, v in enumerate(validators) if record.scores_bitmap >> i & 1}
    out = []
    for line in report.rewards.lines:
        key = line.node.lower()
        if key in revealed or key in used:
            continue
        out.append(
            RewardChallenge(
                task_id,
                round_,
                line.node,
                line.amount,
                tuple(bytes.fromhex(p) for p in line.proof),
                f"{line.node} is paid {tokens(line.amount, exact=True)} but revealed no update in "
                f"round {round_} and is no validator whose sheet the result used",
            )
        )
    return out
