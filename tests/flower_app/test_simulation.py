"""Flower's simulation engine (Ray) running the real node, aggregator and validator against a real
anvil process and a shared store, on the tiny model: what lands on chain, what the reports say,
the rewards nodes claim once rounds settle, and an independent audit of every round."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.audit import Auditor
from chain.bindings import Ledger, Token
from chain.events import History
from chain.merkle import leaf_hash, verify
from chain.network import connect
from chain.round_state import RoundState
from chain.session import Session
from fl_node.node import claim
from flower_app.accounts import resolve_account
from flower_app.federation import FIRST_NODE_ACCOUNT, Federation, FederationPlan, audit, prepare
from flower_app.simulation import SimulationSettings, simulate
from ipfs import open_store
from loraledger.report import RoundReport
from loraledger.update import parse_update

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama on disk (through ``from_pretrained`` in every node), built once per module."""
    from fl_node.data import sample_examples
    from fl_node.model import create_tiny_model

    corpus = [m.content for e in sample_examples() for m in e.messages]
    return create_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus)


def _world(federation: Federation) -> tuple[Ledger, History]:
    chain = connect(federation.network)
    ledger = Ledger(chain, federation.ledger)
    return ledger, History(ledger, federation.from_block)


def _nodes(federation: Federation, n: int) -> list[str]:
    ledger, _ = _world(federation)
    return [
        resolve_account(f"dev:{FIRST_NODE_ACCOUNT + i}", ledger.chain.network).address
        for i in range(n)
    ]


def test_eight_simulated_nodes_with_mixed_ranks_complete_two_audited_rounds(
    tiny_model: Path, tmp_path: Path
) -> None:
    plan = FederationPlan(nodes=8, rounds=2, model=str(tiny_model), work_dir=tmp_path, ranks=(8, 4))
    with prepare(plan) as federation:
        result = simulate(
            federation, SimulationSettings(cpus=2, steps=2, batch_size=2, max_length=64, quiet=True)
        )

        ledger, history = _world(federation)
        store = open_store(federation.ipfs)
        nodes = _nodes(federation, 8)
        finalized = history.finalized(federation.task_id)
        assert [f.round for f in finalized] == [1, 2]
        assert ledger.is_complete(federation.task_id)
        pool = ledger.task(federation.task_id).reward_per_round
        for record, log in zip(finalized, result.rounds, strict=True):
            assert (record.accepted, record.rejected) == (8, 0)
            assert (log.round, len(log.replies), log.errors, log.unconfirmed) == (
                record.round,
                8,
                {},
                [],
            )
            events = history.submissions(federation.task_id, record.round)
            assert sorted(e.node for e in events) == sorted(
                nodes
            )  # every node committed and revealed, each once
            # the train replies committed to hidden updates (no CID yet); the reveal replies
            # name exactly the reveals on chain
            assert {(r.node, r.cid, r.digest) for r in log.replies} == {
                (e.node, "", e.digest.hex()) for e in events
            }
            assert {(r.node, r.cid, r.digest) for r in log.revealed} == {
                (e.node, e.cid, e.digest.hex()) for e in events
            }
            ranks = {
                e.node: parse_update(store.get_bytes(e.cid)).metadata.peft.rank for e in events
            }
            assert ranks == {
                node: (8, 4)[i % 2] for i, node in enumerate(nodes)
            }  # heterogeneous, by partition
            report = RoundReport.from_bytes(store.get_bytes(record.report_cid))
            assert [s.verdict for s in report.submissions] == ["accepted"] * 8
            assert {line.node for line in report.rewards.lines} == set(nodes)
            assert report.rewards.total == record.reward_total <= pool
            for line in report.rewards.lines:
                leaf = leaf_hash(federation.task_id, record.round, line.node, line.amount)
                assert verify(record.reward_root, leaf, [bytes.fromhex(p) for p in line.proof])
        # round 2 trained from round 1's global adapter
        assert ledger.round(federation.task_id, 2).start_digest == finalized[0].global_digest
        checks = audit(federation)
        assert checks and all(c.ok for c in checks), [c for c in checks if not c.ok]
        # every round settled (its challenge window passed): a node claims what the reports pay
        task_id = federation.task_id
        assert all(ledger.round_state(task_id, r) is RoundState.SETTLED for r in (1, 2))
        node = resolve_account(f"dev:{FIRST_NODE_ACCOUNT}", ledger.chain.network)
        reports = [RoundReport.from_bytes(store.get_bytes(f.report_cid)) for f in finalized]
        owed = [line.amount for r in reports if (line := r.reward_for(node.address))]
        token = Token(ledger.chain, ledger.task(task_id).token)
        before = token.balance_of(node.address)
        claimed = claim(Session(ledger, history, store, node), task_id)
        assert [(c.round, c.amount) for c in claimed] == [(1, owed[0]), (2, owed[1])]
        assert token.balance_of(node.address) == before + sum(owed) > before


def test_a_node_that_drops_out_does_not_block_the_round_and_is_not_paid(
    tiny_model: Path, tmp_path: Path
) -> None:
    # the window outlasts the two others' training (1 step) on a loaded machine
    plan = FederationPlan(
        nodes=3, rounds=1, model=str(tiny_model), work_dir=tmp_path, ranks=(4,), window=45
    )
    with prepare(plan) as federation:
        result = simulate(
            federation,
            SimulationSettings(
                cpus=2, steps=1, batch_size=2, max_length=64, drop_out=(2,), quiet=True
            ),
        )

        ledger, history = _world(federation)
        store = open_store(federation.ipfs)
        nodes = _nodes(federation, 3)
        dropped = nodes[2]
        assert ledger.member(federation.task_id, dropped).joined  # it joined, then never submitted
        (record,) = history.finalized(federation.task_id)
        info = ledger.round(federation.task_id, 1)
        assert (info.submissions, record.accepted, record.rejected) == (2, 2, 0)
        assert not ledger.submission(federation.task_id, 1, dropped).exists
        # the round closed at its window, not before (not every joined node had submitted)
        finalized_at = ledger.chain.w3.eth.get_block(record.block)["timestamp"]
        assert finalized_at > info.deadline
        (log,) = result.rounds
        assert len(log.replies) == 2 and len(log.errors) == 1
        assert "configured to drop out of round 1" in next(iter(log.errors.values()))
        report = RoundReport.from_bytes(store.get_bytes(record.report_cid))
        assert {line.node for line in report.rewards.lines} == set(nodes[:2])
        assert (
            report.reward_for(dropped) is None and report.rewards.total == record.reward_total > 0
        )
        auditor = Auditor(ledger, History(ledger, federation.from_block), store)
        checks = auditor.verify(federation.task_id)
        assert checks and all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_the_benchmarks_plain_flower_baseline_trains_and_aggregates_every_node(
    tiny_model: Path, tmp_path: Path
) -> None:
    from flower_app.bench import run_baseline
    from loraledger.update import parse_global_adapter

    plan = FederationPlan(nodes=2, rounds=2, model=str(tiny_model), work_dir=tmp_path, ranks=(8, 4))
    initial, log = run_baseline(
        plan, SimulationSettings(cpus=2, steps=2, batch_size=2, max_length=64, quiet=True)
    )

    assert [(r.round, r.nodes) for r in log.rounds] == [(1, 2), (2, 2)]
    start, final = parse_global_adapter(initial), parse_global_adapter(log.final_adapter)
    assert (final.metadata.round, final.metadata.num_updates, final.metadata.peft.rank) == (2, 2, 8)
    # LoRA starts with B = 0: two rounds of training moved it
    assert any(not start.tensors[k].equal(final.tensors[k]) for k in start.tensors if "lora_B" in k)
