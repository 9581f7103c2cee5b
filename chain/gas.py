"""Gas used by each contract function, and by a round as the federation grows.

A result is finalized with a Merkle root of its rewards and k validator signatures, whatever
the number of nodes, so finalizing costs gas in k only, flat in N; a claim verifies a proof of
ceil(log2 N) hashes, so it grows with log N. ``measure`` runs every scenario on a chain (the
embedded one by default) and returns rows a report can print.

Every account is derived from a fixed label (the deployer too, funded by the chain's first dev
account), so contract addresses and calldata, and therefore gas, are the same on every chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from chain.attest import sign_result
from chain.batch import BatchSender
from chain.bindings import (
    ClaimRequest,
    Finalization,
    Ledger,
    TaskParams,
    Token,
    base_model_hash,
    commitment_hash,
)
from chain.compiler import load_artifact
from chain.merkle import RewardEntry, RewardTree, SlashEntry, SlashTree
from chain.network import Chain, dev_account

logger = logging.getLogger(__name__)

TOKEN = 10**18
#: Validators and nodes of the finalization table (``finalizeRound`` gas by k and N).
VALIDATOR_COUNTS = (1, 3, 5, 7)
FINALIZE_NODES = (1, 100, 1000)
WINDOW = 7 * 24 * 3600  # N joins and commitments take minutes on a slow chain; gas does not care
CID = "bafy" + "x" * 55  # a 59-character CIDv1


@dataclass(frozen=True)
class GasRow:
    function: str
    scenario: str
    gas: int


def _digest(label: str) -> bytes:
    return keccak(text=label)


def _account(label: str) -> LocalAccount:
    account: LocalAccount = Account.from_key(keccak(text=f"loraledger-gas-{label}"))
    return account


class _Bench:
    """The contracts deployed afresh, with funded accounts and round helpers."""

    def __init__(self, chain: Chain, rows: list[GasRow]) -> None:
        self.chain = chain
        self.rows = rows
        self.funder = dev_account(chain.network, 0)
        self.deployer = _account("deployer")
        self.aggregator = _account("aggregator")
        self.validators = [_account(f"validator-{i}") for i in range(max(VALIDATOR_COUNTS))]
        self._funded: set[str] = set()
        self.sender = BatchSender(chain)  # set-up transactions, at one fixed price
        self.give_gas([self.deployer, self.aggregator, *self.validators])
        token_art, ledger_art = load_artifact("LedgerToken"), load_artifact("LoRALedger")
        receipt = chain.deploy(
            token_art.abi, token_art.bytecode, [self.deployer.address, 10**9 * TOKEN], self.deployer
        )
        self.row("deploy LedgerToken", "", receipt)
        self.token = Token(chain, str(receipt["contractAddress"]))
        receipt = chain.deploy(ledger_art.abi, ledger_art.bytecode, [], self.deployer)
        self.row("deploy LoRALedger", "", receipt)
        self.ledger = Ledger(chain, str(receipt["contractAddress"]))
        self.token.approve(self.ledger.address, 10**9 * TOKEN, self.deployer)
        self.give_tokens([self.aggregator, *self.validators])

    def row(self, function: str, scenario: str, receipt: TxReceipt | int) -> None:
        gas = receipt if isinstance(receipt, int) else int(receipt["gasUsed"])
        self.rows.append(GasRow(function, scenario, gas))

    def give_gas(self, accounts: Sequence[LocalAccount]) -> None:
        """Send gas money to accounts that have none yet."""
        needy = [a.address for a in accounts if a.address not in self._funded]
        if needy:
            self.sender.value(self.funder, needy, 10**18)
            self._funded.update(needy)

    def batch(self, calls: Sequence[tuple[ContractFunction, LocalAccount]], what: str) -> None:
        """Send transactions that are set-up, not measured (joins, commitments, reveals of
        synthetic nodes) without simulating each (:class:`chain.batch.BatchSender`)."""
        self.sender.calls(calls, what)

    def join_all(self, task_id: int, nodes: Sequence[LocalAccount]) -> None:
        self.batch([(self.ledger.contract.functions.join(task_id), n) for n in nodes], "joins")

    def give_tokens(self, accounts: Sequence[LocalAccount]) -> None:
        for account in accounts:
            self.token.transfer(account.address, 1000 * TOKEN, self.deployer)
            self.token.approve(self.ledger.address, 1000 * TOKEN, account)

    def create_task(
        self,
        validators: Sequence[LocalAccount],
        *,
        quorum: int,
        min_stake: int = 0,
        max_rounds: int = 1,
        bonds: int = 0,
        fund: int = 1000 * TOKEN,
    ) -> tuple[int, TxReceipt]:
        params = TaskParams(
            base_model_hash("gas"),
            "bafy-init",
            _digest("init"),
            self.token.address,
            100 * TOKEN,
            min_stake,
            WINDOW,
            max_rounds,
            aggregator=self.aggregator.address,
            validators=tuple(v.address for v in validators),
            quorum=quorum,
            reveal_window=WINDOW,
            aggregator_bond=bonds,
            validator_bond=bonds,
            challenge_window=600,
            slash_window=600,
            grace_period=3600,
        )
        task_id, receipt = self.ledger.create_task(params, self.deployer)
        self.ledger.fund_task(task_id, fund, self.deployer)
        return task_id, receipt

    def bond_all(self, task_id: int, validators: Sequence[LocalAccount]) -> list[TxReceipt]:
        return [self.ledger.post_bond(task_id, a) for a in (self.aggregator, *validators)]

    def commit(self, task_id: int, round_: int, node: LocalAccount, label: str) -> TxReceipt:
        salt = _digest("salt-" + label)
        commitment = commitment_hash(task_id, round_, node.address, _digest(label), 100, salt)
        return self.ledger.commit_update(task_id, round_, commitment, node)

    def reveal(self, task_id: int, round_: int, node: LocalAccount, label: str) -> TxReceipt:
        salt = _digest("salt-" + label)
        return self.ledger.reveal_update(task_id, round_, CID, _digest(label), 100, salt, node)

    def submissions(
        self, task_id: int, round_: int, nodes: Sequence[LocalAccount], tag: str
    ) -> None:
        """Every node commits (the last commitment ends the commit phase), then reveals."""
        functions = self.ledger.contract.functions
        commits, reveals = [], []
        for i, node in enumerate(nodes):
            label = f"{tag}-{i}"
            digest, salt = _digest(label), _digest("salt-" + label)
            commitment = commitment_hash(task_id, round_, node.address, digest, 100, salt)
            commits.append((functions.commitUpdate(task_id, round_, commitment), node))
            reveals.append((functions.revealUpdate(task_id, round_, CID, digest, 100, salt), node))
        self.batch(commits, "commitments")
        self.batch(reveals, "reveals")

    def result(
        self,
        task_id: int,
        round_: int,
        entries: Sequence[RewardEntry],
        label: str,
        *,
        accepted: int | None = None,
        rejected: int = 0,
        slash_root: bytes = b"\x00" * 32,
    ) -> tuple[Finalization, RewardTree | None]:
        tree = RewardTree(task_id, round_, entries) if entries else None
        result = Finalization(
            "bafy" + "g" * 55,
            _digest("g-" + label),
            "bafy" + "r" * 55,
            len(entries) if accepted is None else accepted,
            rejected,
            tree.root if tree else b"\x00" * 32,
            tree.total if tree else 0,
            slash_root,
            0,
        )
        return result, tree

    def sign(
        self, task_id: int, round_: int, result: Finalization, signers: Sequence[LocalAccount]
    ) -> list[Any]:
        epoch = self.ledger.round(task_id, round_).epoch
        return [
            sign_result(
                signer,
                chain_id=self.chain.chain_id,
                verifying_contract=self.ledger.address,
                task_id=task_id,
                round_=round_,
                epoch=epoch,
                result=result,
                scores_digest=self.ledger.scores_of(task_id, round_, signer.address),
            )
            for signer in signers
        ]

    def finalize(
        self,
        task_id: int,
        round_: int,
        result: Finalization,
        signers: Sequence[LocalAccount],
    ) -> TxReceipt:
        attestations = self.sign(task_id, round_, result, signers)
        return self.ledger.finalize_round(task_id, round_, result, attestations, self.aggregator)

    def settle(self, task_id: int, round_: int, *, slash_window: bool = False) -> None:
        r, task = self.ledger.round(task_id, round_), self.ledger.task(task_id)
        end = r.finalized_at + task.challenge_window + (task.slash_window if slash_window else 0)
        self.chain.advance_time(max(end - self.chain.timestamp() + 1, 1))

    def snapshot(self) -> Any:
        if self.chain.network.kind == "embedded":
            return self.chain.w3.provider.ethereum_tester.take_snapshot()  # type: ignore[attr-defined]
        return self.chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    def revert(self, snapshot: Any) -> None:
        if self.chain.network.kind == "embedded":
            self.chain.w3.provider.ethereum_tester.revert_to_snapshot(snapshot)  # type: ignore[attr-defined]
        else:
            self.chain.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]


def _functions(bench: _Bench, say: Callable[[str], None]) -> None:
    """One row per function, in the scenario a round usually meets it."""
    say("per-function costs")
    ledger, rows = bench.ledger, bench.row
    node, other = _account("node-a"), _account("node-b")
    bench.give_gas([node, other])
    bench.give_tokens([node, other])
    v0, v1, v2 = bench.validators[:3]
    task_id, receipt = bench.create_task(
        [v0, v1, v2], quorum=2, min_stake=10 * TOKEN, max_rounds=5, bonds=5 * TOKEN
    )
    rows("createTask", "3 validators", receipt)
    rows("fundTask", "", bench.ledger.fund_task(task_id, 100 * TOKEN, bench.deployer))
    aggregator_bond, validator_bond, _, _ = bench.bond_all(task_id, [v0, v1, v2])
    rows("postBond", "aggregator", aggregator_bond)
    rows("postBond", "validator", validator_bond)
    rows("join", "with stake", ledger.join(task_id, node))
    ledger.join(task_id, other)

    # round 1: one update, scored by two validators, proposed and attested one by one
    round_, receipt = ledger.open_next_round(task_id, bench.aggregator)
    rows("openRound", "2 nodes eligible", receipt)
    rows("commitUpdate", "", bench.commit(task_id, round_, node, "u1"))
    bench.commit(task_id, round_, other, "u1b")
    rows("revealUpdate", "59-char CID", bench.reveal(task_id, round_, node, "u1"))
    bench.reveal(task_id, round_, other, "u1b")
    rows("postScores", "59-char CID", ledger.post_scores(task_id, round_, _digest("s0"), CID, v0))
    ledger.post_scores(task_id, round_, _digest("s1"), CID, v1)
    slash = SlashEntry(other.address, TOKEN, 1, CID)
    slashes = SlashTree(task_id, round_, [slash])
    entries = [RewardEntry(node.address, 10 * TOKEN)]
    result, tree = bench.result(task_id, round_, entries, "r1", rejected=1, slash_root=slashes.root)
    result = replace(result, scores_bitmap=0b011)
    # a lie: another outcome (no reward, every update rejected) on the same score sheets
    lie = replace(result, global_digest=_digest("lie"), accepted=0, rejected=2, reward_total=0)
    fn = ledger.contract.functions.proposeResult(task_id, round_, result.as_tuple())
    rows("proposeResult", "two 59-char CIDs", bench.chain.send(fn, bench.aggregator))
    lie_hash = ledger.propose_result(task_id, round_, lie, v2)
    result_hash = ledger.result_hash(task_id, round_, result)
    first, second = bench.sign(task_id, round_, result, [v0, v1])
    rows(
        "attest",
        "below quorum",
        ledger.attest(task_id, round_, result_hash, first, bench.aggregator),
    )
    rows(
        "attest",
        "reaching quorum (finalizes)",
        ledger.attest(task_id, round_, result_hash, second, bench.aggregator),
    )
    rows(
        "slashConflicting",
        "proposer's bond",
        ledger.slash_conflicting(task_id, round_, lie_hash, bench.aggregator),
    )
    bench.settle(task_id, round_)
    assert tree is not None
    request = ClaimRequest(task_id, round_, 10 * TOKEN, tuple(tree.proof(node.address)))
    rows("claim", "1-entry table", ledger.claim(request, node))
    proof = slashes.proof(slash)
    rows(
        "executeSlash",
        "59-char evidence CID",
        ledger.execute_slash(task_id, round_, slash, proof, node),
    )
    rows("leave", "unbonding starts", ledger.leave(task_id, other))
    bench.settle(task_id, round_, slash_window=True)
    rows("withdrawStake", "slashed stake returned", ledger.withdraw_stake(task_id, other))

    # rounds 2 and 3: finalizeRound with 2 of 3 signatures; claimed together
    requests = []
    for i in (2, 3):
        round_, _ = ledger.open_next_round(task_id, bench.aggregator)
        bench.submissions(task_id, round_, [node], f"u{i}")
        result, tree = bench.result(
            task_id, round_, [RewardEntry(node.address, 10 * TOKEN)], f"r{i}"
        )
        receipt = bench.finalize(task_id, round_, result, [v0, v1])
        if i == 2:
            rows("finalizeRound", "2 of 3 signatures, 1 node", receipt)
        bench.settle(task_id, round_)
        assert tree is not None
        requests.append(ClaimRequest(task_id, round_, 10 * TOKEN, tuple(tree.proof(node.address))))
    rows("claimBatch", "2 rounds", ledger.claim_batch(requests, node))

    # round 4: a reward to an account that took no part is challenged
    round_, _ = ledger.open_next_round(task_id, bench.aggregator)
    bench.submissions(task_id, round_, [node], "u4")
    outsider = [RewardEntry(node.address, 5 * TOKEN), RewardEntry(bench.aggregator.address, TOKEN)]
    result, tree = bench.result(task_id, round_, outsider, "r4", accepted=1)
    bench.finalize(task_id, round_, result, [v0, v1])
    assert tree is not None
    proof = tree.proof(bench.aggregator.address)
    receipt = ledger.challenge_reward(task_id, round_, bench.aggregator.address, TOKEN, proof, node)
    rows("challengeReward", "3 bonds slashed", receipt)
    ledger.leave(task_id, node)
    bench.chain.advance_time(2 * WINDOW + 3601)
    rows("abandonRound", "", ledger.abandon_round(task_id, round_, node))
    rows("withdrawStake", "after an abandoned round", ledger.withdraw_stake(task_id, node))
    rows("cancelTask", "last round abandoned", ledger.cancel_task(task_id, bench.deployer))
    rows("withdrawRemainder", "", ledger.withdraw_remainder(task_id, bench.deployer))
    # (every bond of that task was slashed: a bond comes back from a task cancelled unstarted)
    task_id, _ = bench.create_task([v0, v1, v2], quorum=2, bonds=5 * TOKEN)
    bench.bond_all(task_id, [v0, v1, v2])
    ledger.cancel_task(task_id, bench.deployer)  # no node ever joined
    rows("withdrawBond", "", ledger.withdraw_bond(task_id, v2))


def _sizes(bench: _Bench, sizes: Sequence[int], say: Callable[[str], None]) -> None:
    """finalizeRound (2 of 3 signatures) and a claim, for rounds of N revealed updates."""
    nodes = [_account(f"node-{i}") for i in range(max(sizes))]
    v = bench.validators[:3]
    for n in sizes:
        say(f"a round with {n} nodes")
        bench.give_gas(nodes[:n])
        task_id, _ = bench.create_task(v, quorum=2, fund=100 * TOKEN)
        bench.bond_all(task_id, v)
        bench.join_all(task_id, nodes[:n])
        round_, _ = bench.ledger.open_next_round(task_id, bench.aggregator)
        bench.submissions(task_id, round_, nodes[:n], f"n{n}")
        entries = [RewardEntry(a.address, (100 * TOKEN) // n) for a in nodes[:n]]
        result, tree = bench.result(task_id, round_, entries, f"n{n}")
        bench.row("finalizeRound", f"N={n}", bench.finalize(task_id, round_, result, v[:2]))
        bench.settle(task_id, round_)
        assert tree is not None
        claimer = nodes[n - 1]
        proof = tuple(tree.proof(claimer.address))
        receipt = bench.ledger.claim(
            ClaimRequest(task_id, round_, entries[-1].amount, proof), claimer
        )
        bench.row("claim", f"N={n} (proof of {len(proof)})", receipt)


def _finalization(
    bench: _Bench,
    validator_counts: Sequence[int],
    node_counts: Sequence[int],
    say: Callable[[str], None],
) -> None:
    """For k validators (all must sign) and N revealed updates: ``finalizeRound`` with k
    signatures, and ``proposeResult`` plus k ``attest`` (summed), on the same round."""
    nodes = [_account(f"node-{i}") for i in range(max(node_counts))]
    for n in node_counts:
        bench.give_gas(nodes[:n])
        for k in validator_counts:
            say(f"finalization with {k} validators, {n} nodes")
            validators = bench.validators[:k]
            task_id, _ = bench.create_task(validators, quorum=k, fund=100 * TOKEN)
            bench.bond_all(task_id, validators)
            bench.join_all(task_id, nodes[:n])
            round_, _ = bench.ledger.open_next_round(task_id, bench.aggregator)
            bench.submissions(task_id, round_, nodes[:n], f"k{k}-n{n}")
            entries = [RewardEntry(a.address, (100 * TOKEN) // n) for a in nodes[:n]]
            result, _ = bench.result(task_id, round_, entries, f"k{k}-n{n}")
            scenario = f"k={k} signatures, N={n}"
            snapshot = bench.snapshot()
            fn = bench.ledger.contract.functions.proposeResult(task_id, round_, result.as_tuple())
            total = int(bench.chain.send(fn, bench.aggregator)["gasUsed"])
            result_hash = bench.ledger.result_hash(task_id, round_, result)
            for attestation in bench.sign(task_id, round_, result, validators):
                receipt = bench.ledger.attest(
                    task_id, round_, result_hash, attestation, bench.aggregator
                )
                total += int(receipt["gasUsed"])
            bench.row("proposeResult + k attest", scenario, total)
            bench.revert(snapshot)
            bench.row(
                "finalizeRound", scenario, bench.finalize(task_id, round_, result, validators)
            )


def measure(
    chain: Chain,
    sizes: Sequence[int] = (1, 3, 10, 100),
    progress: Callable[[str], None] | None = None,
    *,
    validator_counts: Sequence[int] = VALIDATOR_COUNTS,
    finalize_nodes: Sequence[int] = FINALIZE_NODES,
) -> list[GasRow]:
    """Deploy fresh contracts on ``chain``; measure each function, then rounds of ``sizes``
    nodes, then finalization by ``validator_counts`` x ``finalize_nodes``."""
    say = progress or (lambda _msg: None)
    rows: list[GasRow] = []
    bench = _Bench(chain, rows)
    _functions(bench, say)
    _sizes(bench, sizes, say)
    _finalization(bench, validator_counts, finalize_nodes, say)
    return rows


def render_markdown(rows: Sequence[GasRow], *, network: str, command: str) -> str:
    """The committed gas report."""
    lines = [
        "# Gas report",
        "",
        f"Measured on the `{network}` chain by `{command}` "
        "(solc 0.8.37 via IR, optimizer 200 runs, EVM shanghai).",
        "Regenerate it with that command (it takes minutes: thousands of joins, commitments and",
        "reveals); `tests/chain/test_gas.py` fails when it is out of date.",
        "",
        "| function | scenario | gas |",
        "| --- | --- | ---: |",
    ]
    lines += [f"| {r.function} | {r.scenario} | {r.gas:,} |" for r in rows]
    finals = [r for r in rows if r.function == "finalizeRound" and r.scenario.startswith("N=")]
    if len(finals) >= 2:
        lo, hi = finals[0], finals[-1]
        lines += [
            "",
            f"finalizeRound at {hi.scenario} nodes costs {hi.gas / lo.gas:.3f}x "
            f"what it costs at {lo.scenario}.",
        ]
    grid = {
        (r.function, r.scenario): r.gas
        for r in rows
        if r.scenario.startswith("k=") and "signatures" in r.scenario
    }
    counts = sorted({int(s.split()[0][2:]) for _, s in grid})
    nodes = sorted({int(s.rsplit("N=", 1)[1]) for _, s in grid})
    for function in ("finalizeRound", "proposeResult + k attest"):
        if not any(f == function for f, _ in grid):
            continue
        lines += [
            "",
            f"### {function}: gas by validator signatures (k, all required) and nodes (N, "
            "revealed updates)",
            "",
            "| k \\ N | " + " | ".join(f"{n:,}" for n in nodes) + " |",
            "| ---: |" + " ---: |" * len(nodes),
        ]
        for k in counts:
            cells = [grid.get((function, f"k={k} signatures, N={n}")) for n in nodes]
            lines.append(
                f"| {k} | " + " | ".join(f"{c:,}" if c is not None else "" for c in cells) + " |"
            )
    if grid:
        lines += [
            "",
            "Each row is flat in N: the contract checks `accepted + rejected` against the",
            "round's reveal count and stores one reward root, so finalizing never reads or",
            "writes per node; each signature costs one `ecrecover` and the bookkeeping of its bit.",
        ]
    return "\n".join(lines) + "\n"
