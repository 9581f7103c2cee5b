"""``loraledger validator`` and the aggregator's side of the quorum, on a real Ganache: a
validator in its own process bonds, posts its score sheet and signs the result the aggregator
proposes; ``validator status`` shows it; after the challenge window it claims its share, and
after the slash window takes its bond back. Wrong accounts and options are one clear line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chain import local
from chain.round_state import RoundState
from tests.support.chain import TOKEN
from tests.support.cli import create_cli_task, invoke, run_cli, user_error

RUN_ONCE = ("--rounds", "1", "--poll", "0.3")


@pytest.fixture
def network(
    ganache_process: local.ChainProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    return f"ganache:{ganache_process.port}"


@pytest.mark.slow
def test_a_validator_process_scores_signs_claims_its_share_and_takes_its_bond_back(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(
        network,
        tmp_path / "store",
        "--fund",
        "500",
        "--max-rounds",
        "1",
        "--validator",
        "dev:5",
        "--validator-bond",
        "2",
        "--validator-share",
        "10",
        "--challenge-window",
        "600",
        "--slash-window",
        "600",
    )
    validator = task.account(5).address
    out = invoke("validator", "bond", *task.args(5))
    assert f"{validator} posted its bond for task 1: 2 LLT locked" in out
    assert "already posted its bond for task 1: 2 LLT held" in invoke(
        "validator", "bond", *task.args(5)
    )
    assert "posted its bond for task 1: 0 LLT locked (the task asks none)" in invoke(
        "aggregator", "bond", *task.args()
    )
    for node in (2, 3):
        invoke("node", "join", *task.args(node))
    invoke("aggregator", "open", *task.args())
    task.submit(1, [2, 3])

    env = {**os.environ, "COLUMNS": "250"}
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "validator", "run", *task.args(5), *RUN_ONCE],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        out = invoke(
            "aggregator",
            "finalize",
            *task.args(),
            "--sheet-timeout",
            "120",
            "--quorum-timeout",
            "120",
        )
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert "no --validation-data" in output  # its sheet has verdicts, no scores
    assert "task 1: 1 round(s) seen finalized while validating" in output
    assert "round 1 finalized: 2 accepted, 0 rejected" in out
    assert "signed by 1 of 1 validators (quorum 1)" in out
    assert validator in out  # the validators' table: its sheet and pay

    status = json.loads(invoke("validator", "status", *task.args(5), "--json"))
    (row,) = status["rounds"]
    assert (row["state"], row["sheet_posted"], row["signed"]) == ("finalized", True, True)
    assert status["bond"] == {"posted": True, "slashed": False, "amount": str(2 * TOKEN)}
    share = int(row["reward"])
    assert share == 10 * TOKEN  # 10% of the round's 100, to its one validator
    assert status["pending"] == str(share) and status["claimable"] == "0"

    out = invoke("validator", "claim", *task.args(5))
    assert "nothing to claim" in out and "10 LLT more once the challenge windows" in out
    info = task.ledger.round(1, 1)
    task.advance_past(info.finalized_at + 600)
    assert "round 1 of task 1 settled" in invoke("aggregator", "settle", *task.args())
    assert task.ledger.round_state(1, 1) is RoundState.SETTLED
    out = invoke("validator", "claim", *task.args(5))
    assert "round 1: claimed 10" in out
    text = invoke("validator", "status", *task.args(5))
    assert "bond 2 LLT" in text and "settled" in text and "posted" in text

    err = user_error(capsys, "validator", "withdraw-bond", *task.args(5))
    assert re.search(
        rf"error: the bond of {validator} in task 1 is locked until "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in \d+ (s|min)\)",
        err,
    )
    task.advance_past(info.finalized_at + 600 + 600)
    out = invoke("validator", "withdraw-bond", *task.args(5))
    assert f"returned the bond of 2 LLT to {validator}" in out
    err = user_error(capsys, "validator", "withdraw-bond", *task.args(5))
    assert "holds no bond in task 1" in err


def test_validator_and_aggregator_commands_refuse_wrong_accounts_and_options(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(network, tmp_path / "store", "--fund", "500", "--validator", "dev:5")
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text('{"instruction": "hi", "output": "hello"}\n')

    err = user_error(capsys, "validator", "bond", *task.args(3))
    assert f"error: {task.account(3).address} is not a validator of task 1" in err
    assert "loraledger task show 1" in err
    err = user_error(capsys, "validator", "run", *task.args(5))
    assert "has not posted its bond for task 1" in err and "validator bond --task 1" in err
    err = user_error(capsys, "validator", "run", *task.args(5), "--model", "smollm2")
    assert "error: --model is used with --validation-data" in err
    err = user_error(capsys, "validator", "status", "--task", "9", "--network", task.network)
    assert "error: LedgerUnknownTask(taskId=9)" in err
    err = user_error(capsys, "validator", "withdraw-bond", *task.args(5))
    assert "holds no bond in task 1 (never posted, or withdrawn already)" in err
    invoke("validator", "bond", *task.args(5))
    err = user_error(capsys, "validator", "withdraw-bond", *task.args(5))
    assert "error: task 1 is still running (0 of 3 rounds ended)" in err

    err = user_error(capsys, "aggregator", "open", *task.args(5))
    assert f"error: {task.account(5).address} is not the aggregator of task 1" in err
    err = user_error(capsys, "aggregator", "open", *task.args())
    assert "has not posted its bond for task 1" in err and "aggregator bond --task 1" in err
    err = user_error(
        capsys,
        "aggregator",
        "run",
        *task.args(),
        "--validation-data",
        str(heldout),
        "--model",
        "smollm2",
    )
    assert "error: --validation-data: the aggregator" in err
    assert "is not one of the validators of task 1" in err
    assert "loraledger validator run --task 1" in err
    # a strategy that does not exist: a usage error while parsing, before any chain call
    code, _, err = run_cli(capsys, "aggregator", "finalize", *task.args(), "--strategy", "nope")
    assert code == 2 and "'nope' is not a strategy" in " ".join(err.split()), err
    assert "Traceback" not in err
