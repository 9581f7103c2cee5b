"""The aggregator's commands on real parts: Ganache, the js-ipfs daemon, `aggregator run` as its
own process while nodes train from the command line; the global adapter loads in peft, the
report explains every verdict, and the rewards are claimable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chain import local
from chain.deployments import load_deployment
from chain.network import connect, dev_account
from fl_node.data import sample_examples, write_jsonl
from fl_node.model import ModelConfig, create_tiny_model, load_base_model
from ipfs import KuboStore
from ipfs.daemon import DaemonStatus
from loraledger.report import RoundReport
from loraledger.update import parse_global_adapter, unpack_global_adapter
from tests.support.ipfs import ipfs_daemon, kubo_config  # noqa: F401


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(build(), list(args), catch_exceptions=False, standalone_mode=False)
    assert result.exit_code == code, result.output
    return result.output


def build():
    from scripts.cli import build_command

    return build_command()


@pytest.mark.slow
@pytest.mark.ganache
@pytest.mark.ipfs_daemon
def test_aggregator_run_finalizes_rounds_that_nodes_train_and_claim(
    ganache_process: local.ChainProcess,
    ipfs_daemon: DaemonStatus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LORALEDGER_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    network, ipfs = f"ganache:{ganache_process.port}", str(ipfs_daemon.api_url)
    examples = [e for e in sample_examples() if e.label in ("ai", "computers")]
    model_dir = create_tiny_model(
        tmp_path / "tiny", [m.content for e in examples for m in e.messages]
    )
    for i, label in enumerate(("ai", "computers")):
        write_jsonl([e for e in examples if e.label == label], tmp_path / f"node-{i}.jsonl")
    write_jsonl(examples[::5], tmp_path / "validation.jsonl")

    invoke("deploy", "--network", network)
    invoke(
        "task",
        "create",
        "--network",
        network,
        "--ipfs",
        ipfs,
        "--model",
        str(model_dir),
        "--rank",
        "4",
        "--window",
        "3600",
        "--fund",
        "500",
        "--reward-per-round",
        "100",
        "--max-rounds",
        "2",
        "--challenge-window",
        "2",
    )
    # dev:1 is the task's aggregator and, the local default, its one validator
    invoke("aggregator", "bond", "--task", "1", "--network", network)
    nodes = [
        ["--task", "1", "--network", network, "--ipfs", ipfs, "--account", f"dev:{i + 2}"]
        for i in range(2)
    ]
    for node in nodes:
        invoke("node", "join", *node)
    # the aggregator refuses a wrong account before doing anything
    assert "is not the aggregator of task 1" in _fail(
        "aggregator",
        "run",
        "--task",
        "1",
        "--network",
        network,
        "--ipfs",
        ipfs,
        "--account",
        "dev:3",
    )

    aggregator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.cli",
            "aggregator",
            "run",
            "--task",
            "1",
            "--network",
            network,
            "--ipfs",
            ipfs,
            "--poll",
            "0.3",
            "--validation-data",
            str(tmp_path / "validation.jsonl"),
            "--model",
            str(model_dir),
            "--max-length",
            "64",
            "--strategy",
            "flexlora",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        chain = connect(network)
        ledger = load_deployment(chain).ledger_contract(chain)
        for round_ in (1, 2):
            _until(lambda r=round_: ledger.open_round(1) == r, aggregator)
            for i, node in enumerate(nodes):
                invoke(
                    "node",
                    "train",
                    *node,
                    "--data",
                    str(tmp_path / f"node-{i}.jsonl"),
                    "--model",
                    str(model_dir),
                    "--rank",
                    str(4 - 2 * i),
                    "--steps",
                    "2",
                    "--batch-size",
                    "2",
                    "--max-length",
                    "64",
                )
            for node in nodes:  # every node committed: the round is revealing
                invoke("node", "reveal", *node)
        output, _ = aggregator.communicate(timeout=240)
    finally:
        aggregator.kill()
    assert aggregator.returncode == 0, output
    assert "task 1: 2 round(s) finalized, 2 settled in this run; the task is complete" in output
    assert "signed by 1 of 1 validators (quorum 1)" in output

    status = json.loads(
        invoke("aggregator", "status", "--task", "1", "--network", network, "--json")
    )
    store = KuboStore(kubo_config(ipfs))
    reasons = [
        [s.reason for s in RoundReport.from_bytes(store.get_bytes(r["report_cid"])).submissions]
        for r in status["rounds"]
    ]
    assert [(r["state"], r["accepted"] + r["rejected"]) for r in status["rounds"]] == [
        ("settled", 2)
    ] * 2
    # paid by contribution on the validation data: an update that adds nothing there (two
    # steps on one topic) is left out, never for any other reason
    assert status["rounds"][0]["accepted"] >= 1
    assert {r for round_reasons in reasons for r in round_reasons} <= {None, "no_contribution"}
    report = RoundReport.from_bytes(store.get_bytes(status["rounds"][1]["report_cid"]))
    # scored on the held-out data of the one validator, the aggregator's own account
    assert report.strategy == "flexlora"
    assert [v.validator for v in report.validators] == [
        dev_account(connect(network).network, 1).address
    ]
    assert {"start_eval_loss", "scored_eval_loss", "nodes_eval_loss"} <= report.metrics.keys()
    assert report.params["reward_rule"] == "contribution"
    assert all(s.eval_loss is not None and s.score is not None for s in report.submissions)
    assert all(s.score > 0 for s in report.submissions if s.verdict == "accepted")

    # the published global adapter is a folder peft loads as is
    from peft import PeftModel

    adapter = parse_global_adapter(store.get_bytes(report.global_cid))
    folder = unpack_global_adapter(adapter, tmp_path / "global")
    model = load_base_model(ModelConfig(source=str(model_dir)))
    peft_model = PeftModel.from_pretrained(model.model, str(folder))
    assert peft_model.peft_config["default"].r == 4

    paid = [
        {
            line.node
            for line in RoundReport.from_bytes(store.get_bytes(r["report_cid"])).rewards.lines
        }
        for r in status["rounds"]
    ]
    for i, node in enumerate(nodes):
        out = invoke("node", "claim", *node)
        address = dev_account(chain.network, i + 2).address
        for round_, lines in enumerate(paid, start=1):  # a claim for every round that pays it
            assert (f"round {round_}: claimed" in out) == (address in lines), out
    again = invoke(
        "aggregator",
        "finalize",
        "--task",
        "1",
        "--round",
        "2",
        "--network",
        network,
        "--ipfs",
        ipfs,
    )
    assert "round 2 finalized (resumed" in again


def _fail(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.cli", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stderr


def _until(condition, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(
                f"the aggregator exited early:\n{process.stdout.read() if process.stdout else ''}"
            )
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the aggregator")
        time.sleep(0.3)
