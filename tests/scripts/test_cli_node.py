"""A participant's commands end to end on Ganache: task create --model, node join, node train,
node reveal,
node status, node claim (the round is finalized in between as the aggregator would)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chain import local
from chain.deployments import load_deployment
from chain.events import History
from chain.network import connect, dev_account
from fl_node.data import sample_examples, write_jsonl
from fl_node.model import create_tiny_model
from ipfs import EmbeddedConfig, EmbeddedStore
from scripts.cli import build_command
from tests.fl_node.test_node import _publish_round
from tests.support.chain import TOKEN, LedgerEnv
from tests.support.cli import create_cli_task, run_cli


def invoke(*args: str) -> str:
    result = CliRunner().invoke(
        build_command(), list(args), catch_exceptions=False, standalone_mode=False
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_join_train_status_claim_and_personalize_from_the_command_line(
    ganache_process: local.ChainProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    network = f"ganache:{ganache_process.port}"
    store_spec = f"embedded:{tmp_path / 'store'}"
    examples = [e for e in sample_examples() if e.label == "ai"]
    model_dir = create_tiny_model(
        tmp_path / "tiny", [m.content for e in examples for m in e.messages]
    )
    data = tmp_path / "ai.jsonl"
    write_jsonl(examples, data)

    invoke("deploy", "--network", network)
    out = invoke(
        "task",
        "create",
        "--network",
        network,
        "--ipfs",
        store_spec,
        "--model",
        str(model_dir),
        "--rank",
        "4",
        "--window",
        "3600",
        "--fund",
        "500",
        "--challenge-window",
        "60",
    )
    assert "created task 1" in out
    invoke("aggregator", "bond", "--task", "1", "--network", network)
    node = ["--task", "1", "--network", network, "--ipfs", store_spec, "--account", "dev:2"]
    assert "joined task 1" in invoke("node", "join", *node)

    chain = connect(network)
    deployment = load_deployment(chain)
    ledger = deployment.ledger_contract(chain)
    ledger.open_next_round(1, dev_account(chain.network, 1))
    out = invoke(
        "node",
        "train",
        *node,
        "--data",
        str(data),
        "--model",
        str(model_dir),
        "--rank",
        "4",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--max-length",
        "64",
        "--dp-noise-multiplier",
        "1.0",
        "--dp-budget",
        "50",
    )
    assert "round 1: committed" in out and "DP epsilon" in out
    (committed,) = History(ledger, deployment.block).commits(1, 1)
    assert committed.node == dev_account(chain.network, 2).address
    assert History(ledger, deployment.block).reveals(1, 1) == []  # hidden until revealed
    out = invoke("node", "reveal", *node)  # the only member committed: the round is revealing
    assert "round 1: revealed" in out
    (submitted,) = History(ledger, deployment.block).submissions(1, 1)
    assert submitted.node == committed.node

    env = LedgerEnv(
        chain,
        deployment,
        ledger,
        deployment.token_contract(chain),
        dev_account(chain.network, 0),
        dev_account(chain.network, 1),
        [dev_account(chain.network, i) for i in range(2, 10)],
    )
    _publish_round(
        env,
        EmbeddedStore(EmbeddedConfig(root=tmp_path / "store")),
        1,
        1,
        {submitted.node: 25 * TOKEN},
        settle=False,
    )

    status = json.loads(invoke("node", "status", *node, "--json"))
    assert (status["pending"], status["rounds"][0]["verdict"]) == (str(25 * TOKEN), "accepted")
    privacy = status["privacy"]  # what the node's DP-SGD spent, from its own ledger
    assert [r["round"] for r in privacy["rounds"]] == [1] and 0 < privacy["epsilon"] < 50
    assert privacy["rounds"][0]["digest"] == submitted.digest.hex()
    assert "nothing to claim" in invoke("node", "claim", *node)  # the challenge window runs
    chain.advance_time(61)
    status = json.loads(invoke("node", "status", *node, "--json"))
    assert (status["claimable"], status["rounds"][0]["settled"]) == (str(25 * TOKEN), True)
    before = env.token.balance_of(submitted.node)
    assert "round 1: claimed 25" in invoke("node", "claim", *node)
    assert env.token.balance_of(submitted.node) == before + 25 * TOKEN
    assert "nothing to claim" in invoke("node", "claim", *node)

    # personalization: the task's initial adapter fine-tuned on this node's data, for its own
    # use; nothing is signed or sent (no account), the folder loads with plain peft
    where = ["--task", "1", "--network", network, "--ipfs", store_spec]
    tune = [*where, "--data", str(data), "--model", str(model_dir), "--steps", "3"]
    tune += ["--batch-size", "2", "--max-length", "64", "--eval-fraction", "0.2"]
    mine, head = tmp_path / "mine", chain.w3.eth.block_number
    code, out, err = run_cli(
        capsys, "node", "personalize", *tune, "--round", "0", "--out", str(mine), "--json"
    )
    assert code == 0, err
    body = json.loads(out)
    initial = History(ledger, deployment.block).task_created(1).initial_global_digest.hex()
    assert (body["round"], body["start_digest"], body["steps"]) == (0, initial, 3)
    assert body["submitted"] is False and body["digest"] != initial
    assert body["eval_examples"] > 0 and body["eval_loss_personal"] is not None
    recorded = json.loads((mine / "personalization.json").read_text())
    assert recorded == {k: v for k, v in body.items() if k != "files"}
    assert chain.w3.eth.block_number == head  # not a transaction

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), mine)
    assert loaded.peft_config["default"].r == 4

    # bad input: one error line each, nothing trained or written
    written = {p.name: p.stat().st_mtime_ns for p in mine.iterdir()}
    for args, message in [
        (["--round", "0", "--out", str(mine)], "already holds an adapter"),
        (["--round", "9", "--out", str(tmp_path / "other")], "has no round 9"),
        (["--out", str(data)], "is not a folder"),
    ]:
        code, _, err = run_cli(capsys, "node", "personalize", *tune, *args)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1 and message in errors[0], err
        assert "Traceback" not in err
    assert {p.name: p.stat().st_mtime_ns for p in mine.iterdir()} == written
    assert not (tmp_path / "other").exists()


def test_status_of_any_address_is_read_only(
    ganache_process: local.ChainProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    network = f"ganache:{ganache_process.port}"
    task = create_cli_task(network, tmp_path / "store", "--fund", "100")
    someone = dev_account(task.chain.network, 9).address
    code, out, err = run_cli(
        capsys,
        "node",
        "status",
        "--task",
        "1",
        "--network",
        network,
        "--account",
        someone,
        "--json",
    )
    assert code == 0, err
    body = json.loads(out)
    assert (body["node"], body["joined"], body["stake"]) == (someone, False, "0")
    # signing needs a key: one clear line, nothing sent
    code, _, err = run_cli(
        capsys, "node", "join", "--task", "1", "--network", network, "--account", someone
    )
    assert code == 1 and "is an address without its key" in " ".join(err.split())
    assert not task.ledger.member(1, someone).joined


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("train", ["--rank", "0"], "rank: input should be greater than or equal to 1, got 0"),
        ("run", ["--alpha", "-1"], "alpha: input should be greater than 0"),
        ("train", ["--targets", ","], "target_modules must name at least one module"),
        ("personalize", ["--lr", "-1", "--out", "mine"], "learning rate must be positive"),
        ("personalize", ["--steps", "0", "--out", "mine"], "max_steps"),
        ("train", ["--dp-budget", "3"], "which --dp-noise-multiplier switches on"),
        ("run", ["--dp-noise-multiplier", "0"], "noise multiplier must be positive"),
        ("train", ["--dp-noise-multiplier", "1", "--grad-accum", "2"], "Poisson-sampled batch"),
        ("train", ["--dp-noise-multiplier", "1", "--fedprox-mu", "0.1"], "cannot be combined"),
        ("run", ["--dp-noise-multiplier", "1", "--dp-accountant", "x"], "accountant"),
    ],
)
def test_bad_training_options_are_one_error_line_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "node", command, "--task", "1", "--data", "none.jsonl", *args)
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error:") and message in err.splitlines()[0], err
    assert not (tmp_path / "mine").exists()


@pytest.mark.slow
def test_node_train_follows_the_tasks_privacy_policy_and_refuses_less_noise(
    ganache_process: local.ChainProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    network = f"ganache:{ganache_process.port}"
    store_spec = f"embedded:{tmp_path / 'store'}"
    examples = [e for e in sample_examples() if e.label == "ai"]
    model_dir = create_tiny_model(
        tmp_path / "tiny", [m.content for e in examples for m in e.messages]
    )
    data = tmp_path / "ai.jsonl"
    write_jsonl(examples, data)
    invoke("deploy", "--network", network, "--replace")
    dp = ["--dp-mode", "example", "--dp-noise-multiplier", "1.2", "--dp-epsilon", "40"]
    where = ["--network", network, "--ipfs", store_spec]
    invoke("task", "create", *where, "--model", str(model_dir), "--rank", "4", "--fund", "100", *dp)
    invoke("aggregator", "bond", "--task", "1", "--network", network)
    node = ["--task", "1", *where, "--account", "dev:2"]
    invoke("node", "join", *node)
    chain = connect(network)
    deployment = load_deployment(chain)
    ledger = deployment.ledger_contract(chain)
    ledger.open_next_round(1, dev_account(chain.network, 1))
    train = ["node", "train", *node, "--data", str(data), "--model", str(model_dir)]
    train += ["--rank", "4", "--steps", "2", "--batch-size", "2", "--max-length", "64"]

    code, _, err = run_cli(capsys, *train, "--dp-noise-multiplier", "0.5")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "below the task's 1.2" in errors[0], err
    assert not ledger.submission(1, 1, dev_account(chain.network, 2).address).committed

    code, out, err = run_cli(capsys, *train)  # no --dp-* options: the task's own
    assert code == 0, err
    assert "task 1 requires example-level DP-SGD on each node: noise multiplier 1.2" in " ".join(
        err.split()
    )
    assert "round 1: committed" in out and "DP epsilon" in out
    status = json.loads(invoke("node", "status", *node, "--json"))
    (spent,) = status["privacy"]["rounds"]
    assert (spent["private"], spent["mode"], spent["noise_multiplier"]) == (True, "example", 1.2)
