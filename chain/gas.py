"""Gas used by each contract function, and by a round as the federation grows.

Finalizing posts one Merkle root whatever the number of nodes, so its gas is flat in N;
a claim verifies a proof of ceil(log2 N) hashes, so it grows with log N. ``measure`` runs both
scenarios on a chain (the embedded one by default) and returns rows a report can print.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

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
from chain.merkle import RewardEntry, RewardTree
from chain.network import Chain, dev_account

logger = logging.getLogger(__name__)

TOKEN = 10**18


@dataclass(frozen=True)
class GasRow:
    function: str
    scenario: str
    gas: int


def _digest(label: str) -> bytes:
    return keccak(text=label)


def _node_accounts(count: int) -> list[LocalAccount]:
    return [Account.from_key(keccak(text=f"loraledger-gas-node-{i}")) for i in range(count)]


def measure(
    chain: Chain,
    sizes: Sequence[int] = (1, 3, 10, 100),
    progress: Callable[[str], None] | None = None,
) -> list[GasRow]:
    """Deploy fresh contracts on ``chain``; measure each function, then rounds of ``sizes``."""
    say = progress or (lambda _msg: None)
    admin, aggregator, node = (dev_account(chain.network, i) for i in range(3))
    rows: list[GasRow] = []
    token_art, ledger_art = load_artifact("LedgerToken"), load_artifact("LoRALedger")
    receipt = chain.deploy(token_art.abi, token_art.bytecode, [admin.address, 10**9 * TOKEN], admin)
    rows.append(GasRow("deploy LedgerToken", "", int(receipt["gasUsed"])))
    token = Token(chain, str(receipt["contractAddress"]))
    receipt = chain.deploy(
        ledger_art.abi, ledger_art.bytecode, [admin.address, aggregator.address], admin
    )
    rows.append(GasRow("deploy LoRALedger", "", int(receipt["gasUsed"])))
    ledger = Ledger(chain, str(receipt["contractAddress"]))

    def params(min_stake: int, max_rounds: int, window: int = 600) -> TaskParams:
        return TaskParams(
            base_model_hash("gas"),
            "bafy-init",
            _digest("init"),
            token.address,
            100 * TOKEN,
            min_stake,
            window,
            max_rounds,
            reveal_window=window,
        )

    def commit(task_id: int, round_: int, account: LocalAccount, label: str) -> Any:
        salt = _digest("salt-" + label)
        commitment = commitment_hash(task_id, round_, account.address, _digest(label), 100, salt)
        return ledger.commit_update(task_id, round_, commitment, account)

    def reveal(task_id: int, round_: int, account: LocalAccount, label: str) -> Any:
        salt = _digest("salt-" + label)
        return ledger.reveal_update(
            task_id, round_, "bafy" + "x" * 55, _digest(label), 100, salt, account
        )

    def row(function: str, scenario: str, receipt: object) -> None:
        rows.append(GasRow(function, scenario, int(receipt["gasUsed"])))  # type: ignore[index]

    say("per-function costs")
    token.transfer(node.address, 1000 * TOKEN, admin)
    task_id, receipt = ledger.create_task(params(10 * TOKEN, 4), admin)
    row("createTask", "", receipt)
    token.approve(ledger.address, 10**6 * TOKEN, admin)
    row("fundTask", "first deposit", ledger.fund_task(task_id, 1000 * TOKEN, admin))
    token.approve(ledger.address, 10 * TOKEN, node)
    row("join", "with stake", ledger.join(task_id, node))
    requests = []
    for i in range(3):  # three rounds, so two are left for claimBatch; the first is measured
        round_, opened = ledger.open_next_round(task_id, aggregator)
        committed = commit(task_id, round_, node, f"u{i}")  # the only node: commits end
        revealed = reveal(task_id, round_, node, f"u{i}")
        tree = RewardTree(task_id, round_, [RewardEntry(node.address, 10 * TOKEN)])
        result = Finalization(
            "bafy" + "g" * 55, _digest(f"g{i}"), "bafy" + "r" * 55, 1, 0, tree.root, tree.total
        )
        finalized = ledger.finalize_round(task_id, round_, result, aggregator)
        if i == 0:
            row("openRound", "", opened)
            row("commitUpdate", "", committed)
            row("revealUpdate", "59-char CID", revealed)
            row("finalizeRound", "1 node", finalized)
        requests.append(ClaimRequest(task_id, round_, 10 * TOKEN, tuple(tree.proof(node.address))))
    row("claim", "1-entry table", ledger.claim(requests[0], node))
    row("claimBatch", "2 rounds", ledger.claim_batch(requests[1:], node))
    row(
        "slash",
        "59-char evidence CID",
        ledger.slash(task_id, 1, node.address, TOKEN, 1, "bafy" + "e" * 55, aggregator),
    )
    row("leave", "stake returned", ledger.leave(task_id, node))
    round_, _ = ledger.open_next_round(task_id, aggregator)
    chain.advance_time(601)  # nothing committed: the round closes with its commit window
    ledger.finalize_round(
        task_id, round_, Finalization("g", _digest("last"), "r", 0, 0, b"\x00" * 32, 0), aggregator
    )
    row("withdrawRemainder", "", ledger.withdraw_remainder(task_id, admin))

    nodes = _node_accounts(max(sizes))
    funded = 0
    for n in sizes:
        say(f"a round with {n} nodes")
        for account in nodes[funded:n]:  # gas money for the synthetic nodes
            tx = {
                "to": account.address,
                "value": 10**18,
                "gas": 21000,
                "chainId": chain.chain_id,
                "nonce": chain.w3.eth.get_transaction_count(admin.address, "pending"),
                "gasPrice": chain.w3.eth.gas_price,
            }
            chain.send_raw(
                admin.sign_transaction(cast("dict[str, Any]", tx)).raw_transaction, "fund gas"
            )
        funded = max(funded, n)
        # a window of a week: N joins and commitments take minutes on a slow (embedded) chain,
        # and the window's length changes no measured gas
        task_id, _ = ledger.create_task(params(0, 1, window=7 * 24 * 3600), admin)
        ledger.fund_task(task_id, 100 * TOKEN, admin)
        for account in nodes[:n]:
            ledger.join(task_id, account)
        round_, _ = ledger.open_next_round(task_id, aggregator)
        for i, account in enumerate(nodes[:n]):  # the last commitment ends the commit phase
            commit(task_id, round_, account, f"n{n}-{i}")
        for i, account in enumerate(nodes[:n]):
            reveal(task_id, round_, account, f"n{n}-{i}")
        entries = [RewardEntry(a.address, (100 * TOKEN) // n) for a in nodes[:n]]
        tree = RewardTree(task_id, round_, entries)
        result = Finalization(
            "bafy" + "g" * 55, _digest(f"g-n{n}"), "bafy" + "r" * 55, n, 0, tree.root, tree.total
        )
        row("finalizeRound", f"N={n}", ledger.finalize_round(task_id, round_, result, aggregator))
        claimer = nodes[n - 1]
        proof = tuple(tree.proof(claimer.address))
        receipt = ledger.claim(ClaimRequest(task_id, round_, entries[-1].amount, proof), claimer)
        row("claim", f"N={n} (proof of {len(proof)})", receipt)
    return rows


def render_markdown(rows: Sequence[GasRow], *, network: str, command: str) -> str:
    """The committed gas report."""
    lines = [
        "# Gas report",
        "",
        f"Measured on the `{network}` chain by `{command}` "
        "(solc 0.8.37, optimizer 200 runs, EVM shanghai).",
        "Regenerate it with that command; `tests/chain/test_gas.py` fails when it is out of date.",
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
    return "\n".join(lines) + "\n"
