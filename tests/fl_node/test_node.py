"""The node protocol on the embedded chain and an embedded store, with a real (tiny) model."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chain import errors
from chain.bindings import Finalization
from chain.events import History
from chain.merkle import RewardEntry, RewardTree
from chain.round_state import RoundState
from chain.session import Session
from fl_node import node as node_mod
from fl_node.data import NodeData
from fl_node.model import LoadedModel
from fl_node.node import (
    RoundUnavailable,
    SubmittedUpdate,
    claim,
    join,
    leave,
    reveal_round,
    status,
    submit_round,
    withdraw_stake,
)
from fl_node.train import ExampleDP, NodeShare, TrainSettings
from ipfs import ContentStore, EmbeddedConfig, EmbeddedStore, KuboConfig, KuboStore, compute_cid
from ipfs.daemon import DaemonConfig
from ipfs.daemon import start as start_daemon
from ipfs.daemon import stop as stop_daemon
from loraledger.display import chain_time
from loraledger.errors import ChainError, StorageError, UpdateRejected
from loraledger.privacy import NO_PRIVACY, Stretch, TaskPrivacy, change_norm, epsilon
from loraledger.report import RewardLine, RewardTable, RoundReport, SubmissionVerdict
from loraledger.update import Expected, PeftSpec, parse_global_adapter, parse_update
from sponsor.task import initial_global_adapter
from tests.support.chain import TOKEN, LedgerEnv, reverts
from tests.support.faults import disk_full_after
from tests.support.ipfs import free_port

SPEC = PeftSpec(rank=4, alpha=8.0)
SETTINGS = TrainSettings(max_steps=2, batch_size=2, max_length=64)


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(EmbeddedConfig(root=tmp_path / "store"))


def _task(
    env: LedgerEnv,
    store: ContentStore,
    model: LoadedModel,
    *,
    digest: bytes | None = None,
    max_rounds: int = 3,
    seed: int = 0,
    privacy: TaskPrivacy = NO_PRIVACY,
) -> int:
    task_id = env.ledger.task_count() + 1
    adapter = initial_global_adapter(model, SPEC, task_id, seed=seed)
    cid = store.put_bytes(adapter)
    created = env.create_task(
        initial_global_cid=cid,
        initial_global_digest=digest or hashlib.sha256(adapter).digest(),
        submission_window=3600,
        max_rounds=max_rounds,
        privacy=privacy,
    )
    assert created == task_id
    return task_id


def _session(env: LedgerEnv, store: EmbeddedStore, tmp_path: Path, i: int = 0) -> Session:
    return Session(
        env.ledger, History(env.ledger), store, env.nodes[i], state_root=tmp_path / "journal"
    )


@contextmanager
def killed_before_committing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The node dies after journalling its update and before its commit is sent."""

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed between journalling and committing")

    with monkeypatch.context() as patched:
        patched.setattr(node_mod, "_commit", crash)
        yield


def _journalled_update(tmp_path: Path, task_id: int, round_: int) -> bytes:
    found = (tmp_path / "journal").rglob(f"round-{round_}.safetensors")
    (path,) = [p for p in found if p.parent.name == f"task-{task_id}"]
    return path.read_bytes()


def test_node_commits_hidden_then_pins_and_reveals_an_update_the_contract_accepts(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny)
    session = _session(env, store, tmp_path)
    assert join(session, task_id).joined
    round_, _ = env.ledger.open_next_round(task_id, env.aggregator)

    submitted = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)

    # committed: only the hash is on chain; the update is neither pinned nor announced
    on_chain = env.ledger.submission(task_id, round_, session.address)
    assert on_chain.committed and not on_chain.revealed and on_chain.digest == b"\x00" * 32
    assert submitted.cid is None and not submitted.revealed
    update = _journalled_update(tmp_path, task_id, round_)
    assert hashlib.sha256(update).hexdigest() == submitted.digest
    assert not store.has(compute_cid(update))
    assert History(env.ledger).reveals(task_id, round_) == []
    # the privacy ledger lists the round as trained without DP; no epsilon is claimed
    assert node_mod.privacy_spent(session, task_id) == (
        node_mod.SpentRound(round_, submitted.digest, None),
    )
    assert status(session, task_id).epsilon is None
    with pytest.raises(RoundUnavailable, match="already committed"):
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)

    revealed = reveal_round(session, task_id)  # the only member committed: REVEALING

    assert revealed.revealed and revealed.cid == compute_cid(update)
    on_chain = env.ledger.submission(task_id, round_, session.address)
    assert (on_chain.digest.hex(), on_chain.num_examples) == (
        submitted.digest,
        submitted.num_examples,
    )
    (event,) = History(env.ledger).reveals(task_id, round_)
    assert (event.cid, event.node) == (revealed.cid, session.address)
    pinned = store.get_bytes(event.cid)
    parsed = parse_update(pinned, Expected(task_id=task_id, round=round_, base_model=tiny.model_id))
    assert parsed.metadata.node == session.address and parsed.metadata.peft.rank == 4
    with pytest.raises(RoundUnavailable, match="already revealed"):
        reveal_round(session, task_id)


def test_reveal_round_waits_for_the_commit_phase_and_refuses_nodes_that_did_not_commit(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny)
    session, other = _session(env, store, tmp_path), _session(env, store, tmp_path, 1)
    join(session, task_id)
    join(other, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    with pytest.raises(RoundUnavailable, match="did not commit"):
        reveal_round(session, task_id)
    submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    with pytest.raises(RoundUnavailable, match=r"reveal window of round 1 .* opens after"):
        reveal_round(session, task_id)  # the other member may still commit
    env.end_commit_phase(task_id, 1)
    assert reveal_round(session, task_id).revealed


def test_no_open_round_closed_window_and_unjoined_node_fail_clearly(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    with pytest.raises(RoundUnavailable, match="no round of task"):
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    env.ledger.open_next_round(task_id, env.aggregator)
    with pytest.raises(ChainError, match="has not joined"):
        submit_round(
            _session(env, store, tmp_path, 1), task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS
        )
    env.chain.advance_time(3700)
    with pytest.raises(RoundUnavailable, match=r"window of round 1 .* closed") as info:
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    assert info.value.hint == "the node takes part in the next round"
    with pytest.raises(RoundUnavailable, match="did not commit"):
        reveal_round(session, task_id, 1)


def test_a_window_the_next_block_would_miss_is_refused_before_training(
    embedded: LedgerEnv,
    store: EmbeddedStore,
    tiny: LoadedModel,
    ai_data: NodeData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On an idle dev chain the last block's time stands still: the round still looks open
    while the commitment would land in a block after the deadline (and revert after training)."""
    env = embedded
    task_id = _task(env, store, tiny)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    deadline = env.ledger.round(task_id, 1).deadline
    assert env.ledger.round_state(task_id, 1) is RoundState.OPEN
    clock = SimpleNamespace(time=lambda: deadline + 5.0, sleep=time.sleep, monotonic=time.monotonic)
    monkeypatch.setattr("fl_node.node.time", clock)  # the wall clock, 5 s past the deadline
    with pytest.raises(RoundUnavailable, match="the next block comes 5 s after it") as info:
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    assert re.search(
        rf"closed at {re.escape(chain_time(deadline))}: the next block", str(info.value)
    )
    assert not list((tmp_path / "journal").rglob("*.safetensors"))  # nothing was trained
    assert not env.ledger.submission(task_id, 1, env.nodes[0].address).committed


def test_a_global_adapter_whose_digest_does_not_match_the_chain_is_refused(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny, digest=hashlib.sha256(b"another adapter").digest())
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    with pytest.raises(UpdateRejected, match="digest"):
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    assert not env.ledger.submission(task_id, 1, session.address).exists


def test_a_node_killed_before_committing_resumes_without_training_again(
    embedded: LedgerEnv,
    store: EmbeddedStore,
    tiny: LoadedModel,
    ai_data: NodeData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = embedded
    task_id = _task(env, store, tiny)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)

    with killed_before_committing(monkeypatch), pytest.raises(KeyboardInterrupt):
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    assert not env.ledger.submission(task_id, 1, session.address).committed

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the resumed node trained again")

    monkeypatch.setattr(node_mod, "train_round", no_training)

    resumed = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    assert resumed.resumed
    assert env.ledger.submission(task_id, 1, session.address).committed
    assert reveal_round(session, task_id).digest == resumed.digest
    assert env.ledger.submission(task_id, 1, session.address).digest.hex() == resumed.digest


def test_a_journal_trained_from_a_start_the_chain_no_longer_has_is_set_aside_not_committed(
    embedded: LedgerEnv,
    store: EmbeddedStore,
    tiny: LoadedModel,
    ai_data: NodeData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed between journalling and committing; then a reorganisation replaces what the round
    starts from (here: the task itself, created again with another initial adapter under the
    same id). The same task id and round number must not resume the stale update."""
    env = embedded
    before = env.snapshot()
    task_id = _task(env, store, tiny, seed=0)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    first_start = env.ledger.round(task_id, 1).start_digest

    with killed_before_committing(monkeypatch), pytest.raises(KeyboardInterrupt):
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    stale = hashlib.sha256(_journalled_update(tmp_path, task_id, 1)).hexdigest()

    env.revert(before)  # the task's creation, the join and the round are gone
    assert _task(env, store, tiny, seed=1) == task_id  # the same id, another start
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    assert env.ledger.round(task_id, 1).start_digest != first_start
    trained: list[int] = []
    real_train = node_mod.train_round

    def counted(*args: Any, **kwargs: Any) -> Any:
        trained.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(node_mod, "train_round", counted)

    submitted = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)

    assert not submitted.resumed and trained == [1]  # trained again, from the new start
    assert submitted.digest != stale
    assert env.ledger.submission(task_id, 1, session.address).committed
    # the stale journal and its update are kept aside for a person to look at
    (aside,) = (tmp_path / "journal").rglob("round-1.stale-*.safetensors")
    assert hashlib.sha256(aside.read_bytes()).hexdigest() == stale
    assert reveal_round(session, task_id).digest == submitted.digest


def test_a_full_disk_while_training_or_pinning_is_one_error_and_the_node_resumes(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)

    # the update cannot be journalled: nothing is committed, nothing is left half-written
    with disk_full_after(4096), pytest.raises(StorageError, match="cannot write"):
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    assert not env.ledger.submission(task_id, 1, session.address).committed
    assert not [p for p in (tmp_path / "journal").rglob("*") if p.is_file()]
    submitted = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)

    # the store cannot take the update when revealing: the journal (with its salt) is intact
    (journal,) = (tmp_path / "journal").rglob("round-1.json")
    before = journal.read_bytes()
    with disk_full_after(4096), pytest.raises(StorageError, match="cannot write to store"):
        reveal_round(session, task_id)
    assert journal.read_bytes() == before
    assert not env.ledger.submission(task_id, 1, session.address).revealed
    revealed = reveal_round(session, task_id)  # room again: resumes from the journal
    assert revealed.revealed and revealed.digest == submitted.digest
    assert env.ledger.submission(task_id, 1, session.address).revealed


@pytest.mark.slow
@pytest.mark.ipfs_daemon
def test_node_run_waits_out_an_ipfs_daemon_killed_and_restarted_before_its_reveal(
    embedded: LedgerEnv,
    tiny: LoadedModel,
    ai_data: NodeData,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The node's IPFS daemon is killed (-9, its repo lock left behind) after the node
    committed; `node run` waits for it with one line per try, and reveals once it is back."""
    config = DaemonConfig(state_dir=tmp_path / "ipfs", api_port=free_port())
    daemon = start_daemon(config)
    assert daemon.api_url is not None and daemon.pid is not None
    kubo = KuboStore(KuboConfig(api_url=daemon.api_url, retries=1, backoff_s=0.1))
    try:
        env = embedded
        task_id = _task(env, kubo, tiny)
        session = Session(
            env.ledger, History(env.ledger), kubo, env.nodes[0], state_root=tmp_path / "journal"
        )
        join(session, task_id)
        env.ledger.open_next_round(task_id, env.aggregator)
        submitted = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
        os.kill(daemon.pid, signal.SIGKILL)  # the only member committed: the round reveals now
        restart = threading.Timer(1.0, lambda: start_daemon(config))
        restart.start()

        def train_one() -> node_mod.SubmittedUpdate:
            raise AssertionError("committed already: nothing to train")

        with caplog.at_level(logging.WARNING, logger="chain.recovery"):
            done = node_mod.run(session, task_id, train_one, poll_seconds=0.05, max_rounds=1)
        restart.join()
        assert [(d.round, d.revealed, d.digest) for d in done] == [(1, True, submitted.digest)]
        assert env.ledger.submission(task_id, 1, session.address).revealed
        assert kubo.has(str(done[0].cid))
        waits = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
        assert waits and all(daemon.api_url.rsplit(":", 1)[0] in w for w in waits)
    finally:
        kubo.close()
        stop_daemon(config)


def test_a_node_killed_between_commit_and_reveal_reveals_after_a_restart_and_is_paid(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny)
    node, peer = env.nodes[0], env.nodes[1]
    session = _session(env, store, tmp_path)
    join(session, task_id)
    join(_session(env, store, tmp_path, 1), task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    submitted = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    env.submit(task_id, 1, peer)
    del session  # killed: only the journal under the state folder survives

    restarted = _session(env, store, tmp_path)  # a fresh process on the same state folder
    assert restarted.address == node.address
    revealed = reveal_round(restarted, task_id)
    assert (revealed.digest, revealed.revealed) == (submitted.digest, True)
    env.reveal_all(task_id, 1)
    _publish_round(env, store, task_id, 1, {node.address: 40 * TOKEN, peer.address: 10 * TOKEN})
    balance = env.token.balance_of(node.address)
    assert [(c.round, c.amount) for c in claim(restarted, task_id)] == [(1, 40 * TOKEN)]
    assert env.token.balance_of(node.address) == balance + 40 * TOKEN


def _publish_round(
    env: LedgerEnv,
    store: EmbeddedStore,
    task_id: int,
    round_: int,
    winners: dict[str, int],
    *,
    tamper: bool = False,
    settle: bool = True,
) -> None:
    """What the aggregator and the validators do at the end of a round, written out with the
    shared report format: the report pinned, the result signed by a quorum of validators and
    finalized; with ``settle``, the challenge window then passes (rewards become claimable)."""
    env.reveal_all(task_id, round_)
    tree = RewardTree(task_id, round_, [RewardEntry(n, a) for n, a in winners.items()])
    submissions = History(env.ledger).submissions(task_id, round_)
    lines = []
    for entry in tree.entries:
        proof = [p.hex() for p in tree.proof(entry.node)]
        if tamper:
            proof = ["00" * 32 for _ in proof] or ["00" * 32]
        lines.append(RewardLine(node=entry.node, amount=entry.amount, proof=tuple(proof)))
    report = RoundReport(
        task_id=task_id,
        round=round_,
        base_model="tiny",
        start_digest=env.ledger.round(task_id, round_).start_digest.hex(),
        global_cid="bafy-next",
        global_digest=hashlib.sha256(b"next").hexdigest(),
        strategy="fedavg",
        submissions=tuple(
            SubmissionVerdict(
                node=s.node,
                cid=s.cid,
                digest=s.digest.hex(),
                num_examples=s.num_examples,
                verdict="accepted",
                weight=1.0,
                quality=1.0,
            )
            for s in submissions
        ),
        rewards=RewardTable(
            rule="examples",
            pool=100 * TOKEN,
            total=tree.total,
            root=tree.root.hex(),
            lines=tuple(lines),
        ),
    )
    report_cid = store.put_bytes(report.to_bytes())
    result = Finalization(
        "bafy-next",
        hashlib.sha256(b"next").digest(),
        report_cid,
        len(submissions),
        0,
        tree.root,
        tree.total,
    )
    attestations = env.sign(task_id, round_, result)
    env.ledger.finalize_round(task_id, round_, result, attestations, env.aggregator)
    if settle:
        env.settle(task_id, round_)


def test_claim_waits_for_settling_then_pays_every_round_once_and_refuses_a_tampered_report(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    reveal_round(session, task_id)
    _publish_round(
        env, store, task_id, 1, {session.address: 40 * TOKEN, env.nodes[5].address: 1}, settle=False
    )

    # finalized, but challengeable until its window passes: nothing is claimed, nothing is lost
    pending = status(session, task_id)
    assert (pending.pending, pending.claimable) == (40 * TOKEN, 0)
    balance = env.token.balance_of(session.address)
    assert claim(session, task_id) == []
    assert env.token.balance_of(session.address) == balance
    assert not env.ledger.has_claimed(task_id, 1, session.address)

    env.settle(task_id, 1)
    before_status = status(session, task_id)
    assert before_status.claimable == 40 * TOKEN and before_status.rounds[0].verdict == "accepted"
    balance = env.token.balance_of(session.address)
    claimed = claim(session, task_id)
    assert [(c.round, c.amount) for c in claimed] == [(1, 40 * TOKEN)]
    assert env.token.balance_of(session.address) == balance + 40 * TOKEN
    assert claim(session, task_id) == []
    after = status(session, task_id)
    assert (after.claimable, after.claimed) == (0, 40 * TOKEN)

    env.ledger.open_next_round(task_id, env.aggregator)
    env.submit(task_id, 2, session.account)
    _publish_round(env, store, task_id, 2, {session.address: 30 * TOKEN}, tamper=True)
    with pytest.raises(StorageError, match="does not match the reward root"):
        claim(session, task_id)
    assert not env.ledger.has_claimed(task_id, 2, session.address)


def test_run_skips_a_missed_window_and_takes_part_in_the_next_round(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny, max_rounds=2)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    env.chain.advance_time(3700)  # round 1's window passes before the node starts
    ticks = []

    def aggregator_between_polls() -> bool:
        """Plays the aggregator and the validators: after the node's first look, finalize and
        settle round 1 and open round 2; once the node has committed to and revealed in round 2,
        finalize and settle it."""
        ticks.append(len(ticks))
        open_round = env.ledger.open_round(task_id)
        if (
            len(ticks) == 2 and open_round == 1
        ):  # nobody submitted: the global adapter stays as it was
            created = History(env.ledger).task_created(task_id)
            result = Finalization(
                created.initial_global_cid,
                created.initial_global_digest,
                "bafy-report",
                0,
                0,
                b"\x00" * 32,
                0,
            )
            attestations = env.sign(task_id, 1, result)
            env.ledger.finalize_round(task_id, 1, result, attestations, env.aggregator)
            env.settle(task_id, 1)  # the next round opens once this one is settled
            env.ledger.open_next_round(task_id, env.aggregator)
        elif open_round == 2 and env.ledger.submission(task_id, 2, session.address).exists:
            env.finalize(task_id, 2, {session.address: TOKEN}, settle=True)
        return len(ticks) > 10

    def train_one() -> node_mod.SubmittedUpdate:
        return submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)

    done = node_mod.run(
        session, task_id, train_one, poll_seconds=0, should_stop=aggregator_between_polls
    )
    assert [(s.round, s.revealed) for s in done] == [(2, True)]
    assert not env.ledger.submission(task_id, 1, session.address).exists
    assert env.ledger.is_complete(task_id)


def test_a_node_that_joined_during_an_open_round_commits_only_from_the_next_one(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny, max_rounds=2)
    peer = env.nodes[1]
    env.join(task_id, peer)
    env.open(task_id)  # round 1 waits for the peer's commitment
    session = _session(env, store, tmp_path)
    join(session, task_id)  # during round 1
    assert env.ledger.member(task_id, session.address).joined_round == 1
    attempts: list[int] = []

    def fake_train_one() -> SubmittedUpdate:
        """Fake training (no model): commits a labelled digest for the open round."""
        round_ = env.ledger.open_round(task_id)
        attempts.append(round_)
        committed = env.commit(task_id, round_, session.signer)
        return SubmittedUpdate(task_id, round_, None, committed.digest.hex(), 10, None, None, False)

    def aggregator_between_polls() -> bool:
        """After the node's first look at round 1: the peer commits, round 1 is finalized and
        settled, round 2 opens. Stops once the node committed in round 2."""
        if env.ledger.submission(task_id, 2, session.address).committed:
            return True
        if (
            env.ledger.open_round(task_id) == 1
            and not env.ledger.submission(task_id, 1, peer.address).committed
        ):
            env.commit(task_id, 1, peer)
            return False
        if env.ledger.open_round(task_id) == 1:
            env.finalize(task_id, 1, {peer.address: TOKEN}, settle=True)
            env.open(task_id)
        return False

    heard: list[str] = []
    done = node_mod.run(
        session,
        task_id,
        fake_train_one,
        poll_seconds=0,
        should_stop=aggregator_between_polls,
        on_wait=heard.append,
    )

    assert attempts == [2] and [d.round for d in done] == [2]
    # what it waited for, said while it waited: round 1 was not its own
    assert heard[0].startswith(
        "joined during round 1, takes part from the next; round 1: 0 of 1 commitments "
        "revealed; the reveal window closes at "
    )
    assert not env.ledger.submission(task_id, 1, session.address).exists
    assert env.ledger.submission(task_id, 2, session.address).committed


def test_a_leaving_node_gets_its_stake_back_only_after_the_slash_window_of_its_last_round(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, tmp_path: Path
) -> None:
    env = embedded
    task_id = _task(env, store, tiny)
    session, idle = _session(env, store, tmp_path), _session(env, store, tmp_path, 1)
    join(session, task_id)
    join(idle, task_id)
    stake = env.ledger.task(task_id).min_stake
    round_ = env.open(task_id)
    env.commit(task_id, round_, session.signer)
    env.commit(task_id, round_, idle.signer)
    env.finalize(task_id, round_, {session.address: TOKEN, idle.address: TOKEN}, settle=True)
    assert env.ledger.member(task_id, session.address).last_commit_round == round_

    # a node that committed in no round leaves with its stake at once
    fresh = _session(env, store, tmp_path, 2)
    join(fresh, task_id)
    balance = env.token.balance_of(fresh.address)
    assert not leave(fresh, task_id).joined
    assert env.token.balance_of(fresh.address) == balance + stake

    # the settled round can still slash the leaving node: its stake stays locked until then
    balance = env.token.balance_of(session.address)
    left = leave(session, task_id)
    assert left.joined and left.leaving and left.stake == stake
    assert env.ledger.task(task_id).active_nodes == 1  # it no longer counts towards rounds
    info, task = env.ledger.round(task_id, round_), env.ledger.task(task_id)
    unlocks_at = info.finalized_at + task.challenge_window + task.slash_window + 1
    with reverts(
        errors.LedgerStakeLocked, taskId=task_id, node=session.address, unlocksAt=unlocks_at
    ):
        withdraw_stake(session, task_id)
    assert env.token.balance_of(session.address) == balance

    env.end_slash_window(task_id, round_)
    member = withdraw_stake(session, task_id)
    assert not member.joined and member.stake == 0
    assert env.token.balance_of(session.address) == balance + stake


def test_with_confirmations_a_node_trains_only_once_the_rounds_opening_is_deep_enough(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    """``--confirmations 2``: the node does not train (nor commit) for a round whose opening
    has fewer than 2 blocks on top of it; a reorganisation could still replace what it starts
    from. Once it is deep enough, it trains and commits."""
    env = embedded
    task_id = _task(env, store, tiny)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    env.chain.confirmations = 2
    try:
        with pytest.raises(RoundUnavailable, match=r"2 confirmations \(block \d+: 0 deep\)"):
            submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
        env.chain.advance_time(1)  # one block on top
        with pytest.raises(RoundUnavailable, match="1 deep"):
            submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
        assert not list((tmp_path / "journal").rglob("*.safetensors"))  # nothing trained
        env.chain.advance_time(1)
        submitted = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    finally:
        env.chain.confirmations = 0
    assert submitted.round == 1
    assert env.ledger.submission(task_id, 1, env.nodes[0].address).committed


def test_with_confirmations_a_node_claims_a_settled_round_only_once_its_finalization_is_deep(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    """A reorganisation could still replace a shallow finalization's reward root: with
    ``--confirmations N`` the claim waits for N blocks on top of it (nothing sent before)."""
    env = embedded
    task_id = _task(env, store, tiny)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    reveal_round(session, task_id)
    _publish_round(env, store, task_id, 1, {session.address: 40 * TOKEN})
    (finalized,) = History(env.ledger).finalized(task_id)
    depth = env.chain.depth(finalized.block)
    nonce = env.chain.w3.eth.get_transaction_count(session.address)
    env.chain.confirmations = depth + 2
    try:
        assert claim(session, task_id) == []
        assert env.chain.w3.eth.get_transaction_count(session.address) == nonce  # nothing sent
        env.chain.advance_time(1)
        env.chain.advance_time(1)
        assert [(c.round, c.amount) for c in claim(session, task_id)] == [(1, 40 * TOKEN)]
    finally:
        env.chain.confirmations = 0
    assert env.ledger.has_claimed(task_id, 1, session.address)


def _finalize_unchanged(env: LedgerEnv, session: Session, task_id: int, round_: int) -> None:
    """The node reveals; the round is finalized and settled keeping the initial adapter (its
    one update rejected), and the next round opens."""
    reveal_round(session, task_id, round_)
    env.close(task_id, round_)
    created = History(env.ledger).task_created(task_id)
    unchanged = (created.initial_global_cid, created.initial_global_digest, "bafy-report")
    result = Finalization(*unchanged, 0, 1, b"\x00" * 32, 0)
    attestations = env.sign(task_id, round_, result)
    env.ledger.finalize_round(task_id, round_, result, attestations, env.aggregator)
    env.settle(task_id, round_)
    env.ledger.open_next_round(task_id, env.aggregator)


def test_a_private_node_keeps_its_epsilon_and_refuses_a_round_past_its_budget(
    embedded: LedgerEnv,
    store: EmbeddedStore,
    tiny: LoadedModel,
    ai_data: NodeData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = embedded
    task_id = _task(env, store, tiny, max_rounds=4)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    dp = ExampleDP(noise_multiplier=1.0, clip_norm=1.0)
    private = SETTINGS.replace(privacy=dp)

    first = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=private)
    (spent,) = node_mod.privacy_spent(session, task_id)
    assert (spent.round, spent.digest) == (1, first.digest)
    update = parse_update(_journalled_update(tmp_path, task_id, 1))
    assert spent.record == update.metadata.metrics.privacy
    one = status(session, task_id).epsilon
    assert one is not None and one == pytest.approx(spent.record.epsilon)
    _finalize_unchanged(env, session, task_id, 1)

    # round 2 would compose past the budget: trained, refused, nothing kept
    r = spent.record
    both = epsilon([Stretch(r.noise_multiplier, r.sample_rate, 2 * r.steps)], r.delta)
    tight = private.replace(privacy=dp.replace(epsilon_budget=(one + both) / 2))
    with pytest.raises(node_mod.PrivacyBudgetExceeded, match="over its budget"):
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=tight)
    assert not env.ledger.submission(task_id, 2, session.address).committed
    assert not list((tmp_path / "journal").rglob("round-2.json"))
    assert len(node_mod.privacy_spent(session, task_id)) == 1

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a node with no budget left trained")

    # a budget already spent: refused before any training
    with monkeypatch.context() as patched:
        patched.setattr(node_mod, "train_round", no_training)
        spent_budget = private.replace(privacy=dp.replace(epsilon_budget=one))
        with pytest.raises(node_mod.PrivacyBudgetExceeded, match="trains no more rounds"):
            submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=spent_budget)

    # room for it: killed before committing, resumed, counted once
    roomy = private.replace(privacy=dp.replace(epsilon_budget=one * 3))
    with killed_before_committing(monkeypatch), pytest.raises(KeyboardInterrupt):
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=roomy)
    resumed = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=roomy)
    assert resumed.resumed and env.ledger.submission(task_id, 2, session.address).committed
    rounds = node_mod.privacy_spent(session, task_id)
    assert [(s.round, s.digest) for s in rounds] == [(1, first.digest), (2, resumed.digest)]
    two = status(session, task_id).epsilon
    assert two == pytest.approx(both)  # composed by the accountant, not added
    _finalize_unchanged(env, session, task_id, 2)

    # a round committed without DP: nothing bounds what it released, and no budget holds after
    clear = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    assert clear.epsilon is None
    assert node_mod.privacy_spent(session, task_id)[-1] == node_mod.SpentRound(
        3, clear.digest, None
    )
    assert status(session, task_id).epsilon == math.inf
    _finalize_unchanged(env, session, task_id, 3)
    with pytest.raises(node_mod.PrivacyBudgetExceeded, match=r"round\(s\) 3 .* without DP-SGD"):
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=roomy)
    assert not env.ledger.submission(task_id, 4, session.address).committed


def test_a_node_killed_between_its_journal_and_its_privacy_ledger_records_the_round_on_resume(
    embedded: LedgerEnv,
    store: EmbeddedStore,
    tiny: LoadedModel,
    ai_data: NodeData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = embedded
    task_id = _task(env, store, tiny)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    private = SETTINGS.replace(privacy=ExampleDP(noise_multiplier=1.0))

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed after journalling, before the privacy ledger")

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(node_mod, "_record_spent", killed)
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=private)
    assert node_mod.privacy_spent(session, task_id) == ()
    resumed = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=private)
    assert resumed.resumed and resumed.epsilon is not None
    (spent,) = node_mod.privacy_spent(session, task_id)
    assert (spent.round, spent.digest) == (1, resumed.digest)
    assert spent.record is not None and spent.record.epsilon == resumed.epsilon


def test_a_node_trains_as_its_tasks_privacy_policy_requires_or_refuses_before_training(
    embedded: LedgerEnv,
    store: EmbeddedStore,
    tiny: LoadedModel,
    ai_data: NodeData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = embedded
    example = TaskPrivacy("example", 1.3, 0.5, 6.0, 1e-6, "rdp")
    task_id = _task(env, store, tiny, privacy=example)
    session = _session(env, store, tmp_path)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a node trained against its task's privacy policy")

    with monkeypatch.context() as patched:  # its own settings must meet the task's
        patched.setattr(node_mod, "train_round", no_training)
        weaker = SETTINGS.replace(privacy=ExampleDP(noise_multiplier=1.0, delta=1e-6))
        with pytest.raises(node_mod.PrivacyPolicyUnmet, match=r"below the task's 1\.3"):
            submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=weaker)
        other_delta = SETTINGS.replace(privacy=ExampleDP(noise_multiplier=2.0))
        with pytest.raises(node_mod.PrivacyPolicyUnmet, match="delta 1e-06"):
            submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=other_delta)

    # no DP settings of its own: it trains with the task's, its budget the task's target
    submitted = submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    record = parse_update(_journalled_update(tmp_path, task_id, 1)).metadata.metrics.privacy
    assert record is not None and record.mode == "example"
    assert (record.noise_multiplier, record.clip_norm, record.delta) == (1.3, 0.5, 1e-6)
    assert submitted.epsilon == record.epsilon
    settings = node_mod.as_policy_requires(SETTINGS, example)
    assert settings.privacy is not None and settings.privacy.epsilon_budget == 6.0
    own = SETTINGS.replace(privacy=ExampleDP(noise_multiplier=2.0, delta=1e-6, epsilon_budget=9))
    stricter = node_mod.as_policy_requires(own, example)
    assert stricter.privacy is not None and stricter.privacy.epsilon_budget == 6.0  # the smaller

    # node-level: the node adds its noise share to its clipped update, and takes no DP-SGD
    node_level = TaskPrivacy("node", 1.0, 0.02, 20.0, 1e-5, "rdp", 4)
    task_id = _task(env, store, tiny, privacy=node_level, seed=1)
    join(session, task_id)
    env.ledger.open_next_round(task_id, env.aggregator)
    with pytest.raises(node_mod.PrivacyPolicyUnmet, match="not combined"):
        private = SETTINGS.replace(privacy=ExampleDP(noise_multiplier=1.0))
        submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=private)
    submit_round(session, task_id, tiny, ai_data, peft=SPEC, settings=SETTINGS)
    update = parse_update(_journalled_update(tmp_path, task_id, 1))
    record = update.metadata.metrics.privacy
    assert record is not None and record.mode == "node"
    assert record.noise_multiplier == pytest.approx(0.5)  # 1 / sqrt(4 nodes)
    start = parse_global_adapter(
        store.get_bytes(History(env.ledger).task_created(task_id).initial_global_cid)
    ).tensors
    weights = sum(t.numel() for t in update.tensors.values())
    assert change_norm(update.tensors, start) == pytest.approx(0.01 * weights**0.5, rel=0.05)
    with pytest.raises(node_mod.PrivacyPolicyUnmet, match="no node-level DP"):
        node_mod.as_policy_requires(
            SETTINGS.replace(node_share=NodeShare(policy=node_level)), NO_PRIVACY
        )
