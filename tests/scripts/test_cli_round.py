"""What anyone can do to a round from the command line, on a real Ganache: abandon one nobody
finalized in time (which unlocks a leaving node's stake: ``node leave``/``node withdraw``), and
challenge a finalized one that pays an account that took no part (its proposer's and signers'
bonds are slashed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aggregator.round import RoundSettings
from chain import local
from chain.events import History
from chain.round_state import RoundState
from chain.session import Session
from demo.attacks import LyingAggregator, LyingValidator
from tests.support.chain import TOKEN
from tests.support.cli import create_cli_task, invoke, run_cli, user_error


@pytest.fixture
def network(
    ganache_process: local.ChainProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    return f"ganache:{ganache_process.port}"


def test_round_abandon_waits_for_the_grace_period_then_unlocks_a_leaving_nodes_stake(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(
        network,
        tmp_path / "store",
        "--fund",
        "500",
        "--window",
        "60",
        "--reveal-window",
        "60",
        "--grace-period",
        "300",
        "--validator",
        "dev:5",
    )
    invoke("aggregator", "bond", *task.args())
    for node in (2, 3, 4):
        invoke("node", "join", *task.args(node))
    invoke("aggregator", "open", *task.args())
    task.commit(1, [2])  # dev:2 commits and never reveals; nobody finalizes the round

    out = invoke("node", "leave", *task.args(2))
    assert "is leaving task 1" in out and "its stake of 10" in out
    err = user_error(capsys, "node", "withdraw", *task.args(2))
    assert "error: the stake of" in err and "in task 1" in err
    assert "abandoned" in err  # the hint says what unlocks it
    out = invoke("node", "leave", *task.args(3))  # committed nowhere: paid back at once
    assert "left task 1; stake 10 LLT returned" in out

    err = user_error(capsys, "round", "abandon", "--task", "1", "--network", network)
    assert re.search(
        r"error: round 1 of task 1 can be abandoned from \d{4}-\d\d-\d\d [\d:]{8} UTC \(in ",
        err,
    )
    info = task.ledger.round(1, 1)
    task.advance_past(info.reveal_deadline + 300)
    out = invoke("round", "abandon", "--task", "1", "--round", "1", "--network", network)
    assert "abandoned round 1 of task 1" in out
    assert "the stakes of the 1 node(s) that committed in it are no longer locked" in out
    assert "the aggregator may open round 2" in out
    assert task.ledger.round_state(1, 1) is RoundState.ABANDONED

    out = invoke("node", "withdraw", *task.args(2))
    assert "left task 1; stake 10 LLT returned" in out
    assert task.ledger.member(1, task.account(2).address).stake == 0

    out = invoke("task", "show", "1", "--network", network, "--json")
    assert json.loads(out)["rounds"][0]["state"] == "abandoned"
    err = user_error(
        capsys, "round", "abandon", "--task", "1", "--round", "1", "--network", network
    )
    assert "error: round 1 of task 1 is abandoned: only an open, revealing or closed round" in err
    assert "error: LedgerUnknownTask(taskId=9)" in user_error(
        capsys, "round", "abandon", "--task", "9", "--network", network
    )
    err = user_error(capsys, "node", "withdraw", *task.args(4))
    assert "has not left task 1" in err and "node leave --task 1" in err


def test_challenge_voids_a_round_that_pays_an_account_that_took_no_part(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(
        network,
        tmp_path / "store",
        "--fund",
        "500",
        "--validator",
        "dev:5",
        "--aggregator-bond",
        "5",
        "--validator-bond",
        "3",
        "--challenge-window",
        "3600",
        "--max-rounds",
        "1",  # the lying aggregator lies in the task's last round
    )
    invoke("aggregator", "bond", *task.args())
    invoke("validator", "bond", *task.args(5))
    for node in (2, 3):
        invoke("node", "join", *task.args(node))
    invoke("aggregator", "open", *task.args())
    task.submit(1, [2, 3])

    # the aggregator pays itself and its accomplice signs anything and challenges nothing (the
    # quorum is 1)
    history = History(task.ledger, 0)
    settings = RoundSettings()
    accomplice = LyingValidator(
        Session(task.ledger, history, task.store, task.account(5), tmp_path / "v"),
        1,
        None,
        settings,
    )
    liar = LyingAggregator(
        Session(task.ledger, history, task.store, task.account(1), tmp_path / "a"),
        1,
        settings,
        validators=[accomplice],
        sheet_timeout=0.0,
        quorum_timeout=30.0,
    )
    liar.finalize(1)
    assert task.ledger.round_state(1, 1) is RoundState.FINALIZED
    aggregator = task.account(1).address
    capsys.readouterr()

    code, out, _ = run_cli(capsys, "challenge", *task.args()[:6], "--dry-run", "--json")
    assert code == 0
    (found,) = json.loads(out)["challenges"]
    assert (found["round"], found["account"], found["sent"]) == (1, aggregator, False)
    out = invoke("challenge", *task.args(), "--round", "1", "--dry-run")
    assert aggregator in out and "dry run: nothing sent" in out
    assert task.ledger.round_state(1, 1) is RoundState.FINALIZED

    out = invoke("challenge", *task.args(0), "--round", "1")
    assert "round 1 of task 1 voided: closed again (epoch 1)" in out
    assert task.ledger.round_state(1, 1) is RoundState.CLOSED
    for account in (aggregator, task.account(5).address):
        bond = task.ledger.bond_of(1, account)
        assert bond.slashed and bond.amount == 0, account
    assert task.ledger.task(1).funded == (500 + 5 + 3) * TOKEN  # into the pool

    err = user_error(capsys, "challenge", *task.args(0), "--round", "1")
    assert "error: round 1 of task 1 is closed: only a finalized round can be challenged" in err
    out = invoke("challenge", *task.args(0))
    assert "no round of task 1 is in its challenge window" in out
    assert "error: LedgerUnknownTask(taskId=9)" in user_error(
        capsys, "challenge", "--task", "9", "--network", network, "--dry-run"
    )


def test_finalizing_a_round_nobody_revealed_in_asks_for_allow_empty_and_says_what_it_did(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(
        network,
        tmp_path / "store",
        "--fund",
        "500",
        "--reward-per-round",
        "100",
        "--max-rounds",
        "2",
        "--window",
        "60",
        "--reveal-window",
        "60",
    )
    invoke("aggregator", "bond", *task.args())
    invoke("node", "join", *task.args(3))
    code, out, err = run_cli(capsys, "aggregator", "open", *task.args())
    assert code == 0 and "opened round 1 of task 1" in out
    # every write names its transaction (on stderr: stdout stays the command's output)
    (sent,) = re.findall(r"^openRound: (0x[0-9a-f]{64}) in block (\d+), gas ([\d,]+)$", err, re.M)
    receipt = task.chain.w3.eth.get_transaction_receipt(sent[0])
    assert receipt["status"] == 1 and receipt["blockNumber"] == int(sent[1])
    assert receipt["gasUsed"] == int(sent[2].replace(",", ""))
    task.advance_past(task.ledger.round(1, 1).reveal_deadline)

    err = user_error(capsys, "aggregator", "finalize", *task.args())
    assert err.startswith(
        "error: round 1 of task 1 has no revealed update: finalizing it pays nothing, keeps the "
        "adapter's weights and uses up round 1 of 2\n"
    )
    assert "`loraledger aggregator finalize --task 1 --allow-empty --network" in err
    assert "`loraledger round abandon --task 1 --network" in err
    assert task.ledger.round_state(1, 1) is RoundState.CLOSED  # nothing was sent

    out = invoke("aggregator", "finalize", *task.args(), "--allow-empty")
    assert "round 1 finalized: 0 accepted, 0 rejected, 0 LLT to pay" in out
    assert "no update was revealed in this round: the global adapter keeps its weights" in out
    assert task.ledger.round_state(1, 1) is RoundState.FINALIZED
    # a decided round is never refused: repeating the command reports it
    again = invoke("aggregator", "finalize", *task.args())
    assert "round 1 finalized (resumed" in again
