"""``loraledger task`` for sponsors on a real Ganache: a task names its aggregator, validators,
quorum, bonds and windows, ``task show`` prints them, ``task cancel`` returns the pool of a task
that cannot go on; every mistake is one line naming what to change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain import local
from chain.network import dev_account
from tests.aggregator.round_builders import SPEC
from tests.support.chain import BASE_MODEL, TOKEN
from tests.support.cli import create_cli_task, invoke, run_cli, user_error


@pytest.fixture
def network(
    ganache_process: local.ChainProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    return f"ganache:{ganache_process.port}"


def test_task_create_names_its_roles_bonds_and_windows_and_show_prints_them(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(
        network,
        tmp_path / "store",
        "--fund",
        "500",
        "--aggregator",
        "dev:1",
        "--validator",
        "dev:5,dev:6",
        "--validator",
        "dev:7",
        "--quorum",
        "3",
        "--aggregator-bond",
        "5",
        "--validator-bond",
        "2.5",
        "--validator-share",
        "12.5",
        "--challenge-window",
        "100",
        "--slash-window",
        "200",
        "--grace-period",
        "300",
    )
    capsys.readouterr()
    address = [dev_account(task.chain.network, i).address for i in (1, 5, 6, 7)]
    body = json.loads(invoke("task", "show", "1", "--network", network, "--json"))
    assert (body["aggregator"], body["validators"], body["quorum"]) == (
        address[0],
        address[1:],
        3,
    )
    assert (body["aggregator_bond"], body["validator_bond"]) == (
        str(5 * TOKEN),
        str(25 * TOKEN // 10),
    )
    assert (body["validator_share_bps"], body["cancelled"]) == (1250, False)
    assert (body["challenge_window"], body["slash_window"], body["grace_period"]) == (100, 200, 300)
    assert all(b["posted"] is False for b in body["bonds"].values()) and len(body["bonds"]) == 4
    assert body["rounds"] == []
    # without the store holding the initial adapter, the model is unknown (and says why)
    assert "error" in body["model"] and "base_model" not in body["model"]

    ipfs = f"embedded:{tmp_path / 'store'}"
    body = json.loads(invoke("task", "show", "1", "--network", network, "--ipfs", ipfs, "--json"))
    # what a joining node loads, from the initial adapter checked against the chain
    assert (body["model"]["base_model"], body["model"]["hash_matches"]) == (BASE_MODEL, True)
    assert (body["model"]["peft"]["method"], body["model"]["peft"]["rank"]) == ("lora", SPEC.rank)
    assert "num_virtual_tokens" not in body["model"]["peft"]

    out = invoke("task", "show", "1", "--network", network, "--ipfs", ipfs)
    for text in ("roles", "validator 2", address[3], "2.5 LLT", "12.5%", "300 s", "not posted"):
        assert text in out, text
    assert f"base model  {BASE_MODEL}" in out and f"lora rank {SPEC.rank}" in out


def test_task_create_on_a_local_chain_defaults_to_one_validator_and_warns(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(network, tmp_path / "store", "--fund", "100")
    body = json.loads(invoke("task", "show", "1", "--network", network, "--json"))
    aggregator = dev_account(task.chain.network, 1).address
    assert (body["aggregator"], body["validators"], body["quorum"]) == (aggregator, [aggregator], 1)
    assert f"warning: one validator ({aggregator}) is trusted alone" in task.created


def test_task_create_refuses_bad_roles_with_one_line_naming_the_option(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_cli_task(network, tmp_path / "store", "--validator", "dev:5")
    base = [
        "task",
        "create",
        "--network",
        network,
        "--base-model",
        "tiny",
        "--initial-cid",
        "bafy-init",
        "--initial-digest",
        "ab" * 32,
        "--validator",
        "dev:5,dev:6,dev:7",
    ]
    cases = {
        ("--quorum", "1"): "error: --quorum 1 is not a majority of the task's 3 validator(s)",
        ("--quorum", "4"): "error: --quorum 4 is not a majority",
        ("--validator-share", "60"): "error: --validator-share 60%: validators get at most 50%",
        ("--validator-share", "1.234"): "error: --validator-share 1.234: a percentage from 0",
        ("--validator-share", "lots"): "error: --validator-share must be a percentage",
        ("--aggregator", "0x1234"): "error: --aggregator takes an address (0x and 40 hex",
        ("--validator", "dev:x"): "error: --validator takes dev:N with a number N, got 'dev:x'",
        ("--validator", "dev:5"): "cannot take that role",  # the same validator twice
        ("--aggregator-bond", "-1"): "error: amount must not be negative",
        ("--challenge-window", "0"): "error: --challenge-window, --slash-window and --grace-period",
    }
    for extra, message in cases.items():
        err = user_error(capsys, *base, *extra)
        assert message in err, (extra, err)
    # nothing was created by any of them
    out = invoke("task", "list", "--network", network, "--json")
    assert len(json.loads(out)) == 1


def test_task_cancel_returns_the_pool_of_a_task_that_cannot_go_on(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(network, tmp_path / "store", "--fund", "500", "--validator", "dev:5")
    capsys.readouterr()
    sponsor = dev_account(task.chain.network, 0).address
    before = task.ledger.task(1)
    assert "LedgerNotSponsor(taskId=1" in user_error(
        capsys, "task", "cancel", "1", "--network", network, "--account", "dev:3"
    )
    assert "error: LedgerUnknownTask(taskId=9)" in user_error(
        capsys, "task", "cancel", "9", "--network", network
    )
    # no node ever joined: nothing can go on
    out = invoke("task", "cancel", "1", "--network", network)
    assert "cancelled task 1" in out
    assert f"withdrew 500 LLT to {sponsor}" in out
    after = task.ledger.task(1)
    assert after.cancelled and after.withdrawn == before.funded == 500 * TOKEN
    again = invoke("task", "cancel", "1", "--network", network)
    assert "already cancelled" in again and "nothing left to withdraw" in again


def test_task_cancel_refuses_a_task_that_can_go_on_and_one_with_a_round_in_flight(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(
        network, tmp_path / "store", "--fund", "500", "--max-rounds", "2", "--validator", "dev:5"
    )
    invoke("aggregator", "bond", *task.args())
    invoke("node", "join", *task.args(2))
    capsys.readouterr()
    err = user_error(capsys, "task", "cancel", "1", "--network", network)
    assert "error: task 1 can still go on, so it cannot be cancelled now" in err
    assert "hint: a task is cancelled when it cannot go on" in err

    invoke("aggregator", "open", *task.args())
    err = user_error(capsys, "task", "cancel", "1", "--network", network)
    assert "error: task 1 has round 1 in flight (open)" in err
    assert "loraledger round abandon --task 1 --round 1" in err
    assert not task.ledger.task(1).cancelled


def test_a_task_is_named_by_its_argument_or_by_task_alike(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_cli_task(network, tmp_path / "store", "--fund", "500", "--validator", "dev:5")
    shown = invoke("task", "show", "1", "--network", network, "--json")
    assert invoke("task", "show", "--task", "1", "--network", network, "--json") == shown
    assert invoke("task", "show", "-t", "1", "-n", network, "--json") == shown
    rounds = invoke("audit", "rounds", "1", "--network", network, "--json")
    assert invoke("audit", "rounds", "-t", "1", "--network", network, "--json") == rounds
    for command in (
        ["task", "show"],
        ["task", "cancel"],
        ["task", "withdraw"],
        ["audit", "rounds"],
    ):
        code, _, err = run_cli(capsys, *command, "--network", network)
        assert code == 2 and "which task? give its id: TASK or --task N" in err
        code, _, err = run_cli(capsys, *command, "1", "--task", "2", "--network", network)
        assert code == 2 and "two tasks given: TASK 1 and --task 2" in err
    assert invoke("task", "show", "1", "--task", "1", "--network", network, "--json") == shown
