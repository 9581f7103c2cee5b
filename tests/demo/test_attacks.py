"""Every attack on the pool, run as the demo runs it (real contract, store, training, three
validators, aggregation, claims, slashing and audit) on the embedded chain and on Ganache: who is
paid. Nodes share what the validators leave of each round's reward (their 10 % share).

Attacks share runs to keep the suite fast: one run holds the free riders, the copier, the
front-runner and the inflating node next to three honest nodes; one the four Sybil accounts;
one the malformed file and the attacks on the model and protocol. The lying aggregator and the
lying validator (:mod:`demo.attacks`) have a run of their own, on the embedded chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.consensus import split_round_pool
from chain import local
from chain.bindings import Ledger
from chain.events import History
from chain.network import Chain, connect
from demo.attacks import ATTACKS, parse_attacks
from demo.run import DemoConfig, DemoResult, run_demo
from experiments.incentives import IncentivesConfig, demo_config, inflate_gain, outcome
from fl_node.data import sample_examples
from fl_node.model import LoadedModel, ModelConfig, create_tiny_model, load_base_model
from ipfs import open_store
from loraledger.errors import ConfigError
from loraledger.report import RoundReport

TINY = {"task_rank": 4, "ranks": (4,), "max_length": 64, "batch_size": 2, "learning_rate": 5e-3}
SLASH = 10 * 10**18  # the demo's stake


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    corpus = [m.content for e in sample_examples() for m in e.messages]
    folder = create_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus)
    return load_base_model(ModelConfig(source=str(folder)))


@pytest.fixture(params=["embedded", pytest.param("ganache", marks=pytest.mark.ganache)])
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    if request.param == "embedded":
        yield connect("embedded")
    else:
        process: local.ChainProcess = request.getfixturevalue("ganache_process")
        yield connect(f"ganache:{process.port}")


def run(
    chain: Chain, model: LoadedModel, tmp: Path, attacks: str, rounds: int = 2, **extra: object
) -> DemoResult:
    kinds = parse_attacks(attacks) if attacks else ()
    config = DemoConfig(
        nodes=3,
        rounds=rounds,
        malicious=len(kinds),
        attacks=kinds,
        steps=3,
        strategy="fedavg",
        **TINY,
        **extra,
    )
    store = open_store(f"embedded:{tmp / 'store'}")
    return run_demo(chain, store, model, config, tmp / "out")


def earned(result: DemoResult, kind: str) -> int:
    return sum(n.earned for n in result.nodes if n.kind == kind)


def slashed(result: DemoResult, kind: str) -> int:
    return sum(n.slashed for n in result.nodes if n.kind == kind)


def rejected(result: DemoResult) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in result.rounds:
        for reason, count in r.rejected.items():
            total[reason] = total.get(reason, 0) + count
    return total


REWARD = 100 * 10**18  # the demo's reward per round
# what the nodes share: each round's reward less the validators' share
NODES_ROUND = split_round_pool(REWARD, DemoConfig().validator_share_bps, True)[0]
NODES_POOL = 2 * NODES_ROUND
BOND = DemoConfig().bond  # what the aggregator and each validator lock


@pytest.mark.slow
def test_free_riders_copies_front_runners_and_inflated_claims_earn_nothing_extra(
    chain: Chain, tiny_model: LoadedModel, tmp_path: Path
) -> None:
    result = run(chain, tiny_model, tmp_path, "inflate,zero,noise,copy,frontrun")

    assert result.audit_ok, [c for c in result.audit if not c["ok"]]
    for kind in ("zero", "noise", "copy", "frontrun"):
        assert earned(result, kind) == 0, kind
    # proven cheats lose their stake: the copy (caught whatever its bytes) and the front-runner
    # (its placeholder commitment was never revealed; the contract refused the author's update)
    assert slashed(result, "copy") == slashed(result, "frontrun") == SLASH
    assert slashed(result, "zero") == slashed(result, "noise") == 0
    frontrunner = next(n for n in result.nodes if n.kind == "frontrun")
    assert any("LedgerCommitmentMismatch" in line for line in frontrunner.log)
    reasons = rejected(result)
    assert reasons["free_rider"] >= 2 and reasons["copied_update"] == 1
    # the inflating node trained honestly: it is paid like a node of median size, no more
    honest = [n.earned for n in result.nodes if n.kind == "honest"]
    assert 0 < earned(result, "inflate") <= 1.5 * max(honest)
    assert sum(honest) + earned(result, "inflate") >= 0.99 * NODES_POOL


@pytest.mark.slow
def test_a_sybil_majority_of_near_zero_updates_cannot_push_honest_nodes_out(
    chain: Chain, tiny_model: LoadedModel, tmp_path: Path
) -> None:
    result = run(chain, tiny_model, tmp_path, "sybil,sybil,sybil,sybil")

    assert result.audit_ok
    assert "norm_outlier" not in rejected(result)  # no honest node screened out
    assert all(n.accepted_rounds == 2 for n in result.nodes if n.kind == "honest")
    assert earned(result, "honest") >= 0.95 * NODES_POOL
    assert earned(result, "sybil") <= 0.01 * NODES_POOL


@pytest.mark.slow
def test_a_malformed_file_and_protocol_cheats_are_rejected_slashed_and_the_round_finalizes(
    chain: Chain, tiny_model: LoadedModel, tmp_path: Path
) -> None:
    result = run(chain, tiny_model, tmp_path, "malformed,poison,replay,mismatch")

    assert result.audit_ok
    assert [r.round for r in result.rounds] == [1, 2]  # every round finalized
    for kind in ("malformed", "poison", "replay", "mismatch"):
        assert earned(result, kind) == 0, kind
    # slashed: the crafted file, the replay (round 2) and the mismatching reveal; the poisoned
    # update is only rejected (a broken node can send bad weights)
    assert slashed(result, "malformed") == slashed(result, "replay") == SLASH
    assert slashed(result, "mismatch") == SLASH and slashed(result, "poison") == 0
    assert earned(result, "honest") >= 0.99 * NODES_POOL


@pytest.mark.slow
def test_a_lying_aggregator_and_a_lying_validator_lose_their_bonds_and_move_no_reward(
    tiny_model: LoadedModel, tmp_path: Path
) -> None:
    chain = connect("embedded")
    # one round, the task's last: the aggregator proposes a result paying itself half of every
    # reward; the lying validator scores its crony (the last honest node) 10x up, every other
    # update 0, and signs anything
    result = run(chain, tiny_model, tmp_path, "", rounds=1, liars=True)

    assert result.audit_ok, [c for c in result.audit if not c["ok"]]
    aggregator, *validators = result.parties
    (liar,) = [v for v in validators if not v.honest]
    honest = [v for v in validators if v.honest]
    assert aggregator.role == "aggregator" and not aggregator.honest and len(honest) == 2
    ledger = Ledger(chain, result.ledger)
    history = History(ledger)
    task_id = result.task_id
    # the lie was proposed, yet the round finalized an honest validator's result, which both
    # honest validators signed
    assert any(
        p.proposer.lower() == aggregator.address.lower() for p in history.proposals(task_id, 1)
    )
    (record,) = history.finalized(task_id)
    order = [v.lower() for v in ledger.validators(task_id)]
    assert record.proposer.lower() in {v.address.lower() for v in honest}
    assert all(record.signers >> order.index(v.address.lower()) & 1 for v in honest)
    # it pays only accounts that revealed an update or validated; the aggregator earns nothing
    report = RoundReport.from_bytes(Path(result.out_dir, "reports", "round-1.json").read_bytes())
    assert report.rewards.root == record.reward_root.hex()
    revealed = {e.node.lower() for e in history.reveals(task_id, 1)}
    paid = {line.node.lower() for line in report.rewards.lines}
    assert paid <= revealed | {v.address.lower() for v in validators}
    assert aggregator.earned == 0 and aggregator.address.lower() not in paid
    # every honest node claimed its line of the honest result in full
    for node in result.nodes:
        line = report.reward_for(node.address)
        assert line is not None and node.earned == line.amount > 0
    assert sum(n.earned for n in result.nodes) >= 0.99 * NODES_ROUND
    # both liars lost their whole bond into the pool; the honest validators kept theirs
    slashes = {(s.account.lower(), s.amount) for s in history.bond_slashes(task_id)}
    assert slashes == {(aggregator.address.lower(), BOND), (liar.address.lower(), BOND)}
    assert aggregator.bond_slashed == liar.bond_slashed == BOND
    assert all(v.bond_slashed == 0 for v in honest)
    # the median ignored the lying sheet: its agreement, and so its pay, fall below the others'
    assert liar.agreement is not None and all(v.agreement is not None for v in honest)
    assert liar.agreement < min(v.agreement or 0.0 for v in honest)
    assert liar.earned < min(v.earned for v in honest)


@pytest.mark.slow
def test_an_inflated_count_earns_no_more_than_the_true_count(
    tiny_model: LoadedModel, tmp_path: Path
) -> None:
    chain = connect("embedded")
    store = open_store(f"embedded:{tmp_path / 'store'}")
    config = IncentivesConfig(honest=3, rounds=2, steps=3, attacks=("inflate",))
    results = {}
    for rule in ("new", "old"):
        for attack in ("clean+1", "inflate"):
            demo = demo_config(config, rule, attack)
            result = run_demo(chain, store, tiny_model, demo, tmp_path / f"{rule}-{attack}")
            results[(rule, attack)] = outcome(rule, attack, demo, result)

    gain = inflate_gain(results, "new")
    assert gain is not None and gain <= 1.05
    old = inflate_gain(results, "old")
    assert old is not None and old > 2  # the old rule paid the claim


def test_attack_names_are_checked() -> None:
    assert parse_attacks("zero, copy") == ("zero", "copy")
    with pytest.raises(ConfigError, match="unknown attacks"):
        parse_attacks("zero,bribe")
    assert set(ATTACKS) <= {"inflate", "zero", "noise", "sybil", "copy", "frontrun", "malformed"}
