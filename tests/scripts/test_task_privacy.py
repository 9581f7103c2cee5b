"""A task's differential-privacy policy from the command line, on a real Ganache: ``task create
--dp-mode`` records it on chain as every participant reads it back (``History.task_created``),
node-level DP takes the least noise that meets its target over the task's rounds and refuses
too little; every mistake is one line and creates no task; ``task show`` and ``task list``
print it; ``audit rounds`` shows each round's epsilon from its report (the global adapters'
total under node-level DP, else the most an accepted update states)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from chain import local
from chain.bindings import pack_privacy, unpack_privacy
from chain.deployments import load_deployment, save_deployment
from chain.events import History
from chain.network import connect
from ipfs import EmbeddedConfig, EmbeddedStore
from loraledger.privacy import TaskPrivacy, noise_multiplier, schedule_epsilon
from tests.scripts.privacy_rounds import (
    EXAMPLE_POLICY,
    NODE_POLICY,
    Stated,
    node_round_privacy,
    private_round,
)
from tests.support.chain import build_env
from tests.support.cli import CliTask, create_cli_task, invoke, run_cli, user_error


@pytest.fixture
def network(
    ganache_process: local.ChainProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    return f"ganache:{ganache_process.port}"


def recorded(task: CliTask) -> TaskPrivacy:
    """The policy the task's ``TaskCreated`` event records: what nodes, the aggregator and
    auditors read."""
    history = History(task.ledger, load_deployment(task.chain).block)
    return history.task_created(task.task_id).params.privacy


def test_node_level_dp_takes_the_least_noise_that_meets_its_target_over_the_tasks_rounds(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ("--max-rounds", "4", "--dp-mode", "node", "--dp-epsilon", "8")
    task = create_cli_task(network, tmp_path / "store", *options, "--dp-min-nodes", "3")
    policy = recorded(task)
    assert (policy.mode, policy.min_nodes, policy.target_epsilon) == ("node", 3, 8.0)
    assert (policy.clip_norm, policy.delta, policy.accountant) == (1.0, 1e-5, "rdp")
    # its 4 rounds at 3 nodes each meet the target, and 3% less noise would not
    assert schedule_epsilon(policy, 4) <= 8.0
    less = replace(policy, noise_multiplier=policy.noise_multiplier * 0.97)
    assert schedule_epsilon(less, 4) > 8.0
    assert policy.noise_multiplier == pytest.approx(noise_multiplier(8.0, 1e-5, 1.0, 4), abs=1e-6)
    assert f"privacy: {policy.describe()}" in task.created
    assert "warning: node-level DP sums the updates with equal weights" in task.created
    assert "--strategy fedavg" in task.created

    show = json.loads(invoke("task", "show", "1", "--network", network, "--json"))
    assert show["privacy"] == policy.as_json()
    (listed,) = json.loads(invoke("task", "list", "--network", network, "--json"))
    assert listed["privacy"] == policy.as_json()
    out = invoke("task", "show", "1", "--network", network)
    assert f"privacy  {policy.describe()}" in out


def test_example_level_dp_records_the_noise_and_bounds_the_sponsor_gives(
    network: str, tmp_path: Path
) -> None:
    task = create_cli_task(
        network,
        tmp_path / "store",
        *("--dp-mode", "example", "--dp-noise-multiplier", "1.1", "--dp-epsilon", "3"),
        *("--dp-clip-norm", "0.5", "--dp-delta", "1e-6", "--dp-accountant", "prv"),
    )
    expected = TaskPrivacy("example", 1.1, 0.5, 3.0, 1e-6, "prv", 0)
    assert recorded(task) == expected
    assert "warning: node-level DP" not in task.created
    assert f"privacy: {expected.describe()}" in task.created
    show = json.loads(invoke("task", "show", "1", "--network", network, "--json"))
    assert show["privacy"] == expected.as_json()


def test_task_create_refuses_a_policy_it_cannot_keep_with_one_line_and_creates_no_task(
    network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = create_cli_task(network, tmp_path / "store")  # without --dp-mode: none required
    assert recorded(task) == TaskPrivacy()
    show = json.loads(invoke("task", "show", "1", "--network", network, "--json"))
    assert show["privacy"]["mode"] == "none"
    capsys.readouterr()
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
        "--max-rounds",
        "5",
    ]
    node = ["--dp-mode", "node", "--dp-min-nodes", "2"]
    example = ["--dp-mode", "example", "--dp-noise-multiplier", "1.1"]
    cases = {
        ("--dp-epsilon", "3"): "error: --dp-epsilon sets a privacy policy, which --dp-mode chooses",
        ("--dp-mode", "none", "--dp-min-nodes", "2", "--dp-delta", "1e-6"): (
            "error: --dp-delta, --dp-min-nodes set a privacy policy"
        ),
        ("--dp-mode", "node", "--dp-epsilon", "3"): "error: --dp-mode node needs --dp-min-nodes",
        (*node,): "error: --dp-mode node needs --dp-epsilon",
        ("--dp-mode", "example", "--dp-epsilon", "3"): (
            "error: --dp-mode example needs --dp-noise-multiplier"
        ),
        (*example, "--dp-epsilon", "3", "--dp-min-nodes", "2"): (
            "error: --dp-min-nodes is for --dp-mode node"
        ),
        (*node, "--dp-epsilon", "0"): "error: the target epsilon must be positive, got 0.0",
        (*example, "--dp-epsilon", "0"): "error: example-level DP needs a positive target epsilon",
        (*node, "--dp-epsilon", "3", "--dp-delta", "1"): "error: delta must be in (0, 1), got 1.0",
        (*example, "--dp-epsilon", "3", "--dp-delta", "1"): "error: delta must be in (0, 1)",
        (*node[:2], "--dp-min-nodes", str(2**32 + 2), "--dp-epsilon", "3"): (
            f"error: the privacy policy's minimum of {2**32 + 2} nodes is more than the chain "
            "records"
        ),
        (*example, "--dp-epsilon", "3", "--dp-clip-norm", "1e-9"): (
            "error: the privacy policy's clipping bound 1e-09 is outside what the chain records"
        ),
    }
    for options, message in cases.items():
        err = user_error(capsys, *base, *options)
        assert message in err, (options, err)

    # too little noise for the target over the task's 5 rounds: the line names the noise needed
    err = user_error(capsys, *base, *node, "--dp-epsilon", "1", "--dp-noise-multiplier", "0.5")
    assert "error: node-level DP at noise multiplier 0.5 spends epsilon" in err
    assert "over the task's 5 round(s) of 2 node(s), past --dp-epsilon 1" in err
    found = re.search(r"that target needs a noise multiplier of ([0-9.]+)", err)
    assert found is not None, err
    needed = float(found.group(1))
    assert f"hint: give --dp-noise-multiplier {found.group(1)} or more" in err
    # the number named is enough, as the chain records it, and close to the least
    enough = unpack_privacy(pack_privacy(TaskPrivacy("node", needed, 1.0, 1.0, 1e-5, "rdp", 2)))
    assert schedule_epsilon(enough, 5) <= 1.0
    assert needed == pytest.approx(noise_multiplier(1.0, 1e-5, 1.0, 5), abs=2e-4)

    assert task.ledger.task_count() == 1  # nothing was created


def test_audit_rounds_shows_each_rounds_epsilon_from_its_report(
    network: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under node-level DP the global adapters' epsilon through each round (the report's
    total); under example-level DP the most an accepted update states (a rejected one does
    not count); without a policy or a stated epsilon, no column."""
    env = build_env(connect(network))  # a fresh ledger, recorded as the chain's deployment
    save_deployment(env.deployment)
    store_dir = tmp_path / "store"
    store = EmbeddedStore(EmbeddedConfig(root=store_dir))
    a, b, c = env.nodes[:3]

    node_task = env.create_task(privacy=NODE_POLICY)
    env.join(node_task, a, b, c)
    first = node_round_privacy(NODE_POLICY, [2])
    second = node_round_privacy(NODE_POLICY, [2, 3])
    share = 4.0  # what each update states it spends alone (its noise share)
    private_round(
        env,
        store,
        node_task,
        [Stated(a, "accepted", share), Stated(b, "accepted", share)],
        first,
    )
    private_round(env, store, node_task, [Stated(n, "accepted", share) for n in (a, b, c)], second)

    example_task = env.create_task(privacy=EXAMPLE_POLICY)
    env.join(example_task, a, b, c)
    private_round(
        env,
        store,
        example_task,
        [Stated(a, "accepted", 0.8), Stated(b, "accepted", 1.25), Stated(c, "rejected", 5.0)],
    )
    private_round(
        env, store, example_task, [Stated(a, "accepted", None), Stated(b, "rejected", 2.0)]
    )

    plain_task = env.create_task()
    env.join(plain_task, a)
    private_round(env, store, plain_task, [Stated(a, "accepted", None)])

    def rounds(task_id: int, *more: str) -> str:
        code, out, err = run_cli(
            capsys,
            "audit",
            "rounds",
            str(task_id),
            *("--network", network, "--ipfs", f"embedded:{store_dir}"),
            *more,
        )
        assert code == 0, err
        return out

    body = json.loads(rounds(node_task, "--json"))
    assert body["privacy"] == NODE_POLICY.as_json()
    assert [(r["epsilon_total"], r["epsilon_max_update"]) for r in body["rounds"]] == [
        (first.total, share),
        (second.total, share),
    ]
    assert first.total < second.total
    out = rounds(node_task)
    assert f"privacy: {NODE_POLICY.describe()}" in out
    assert "epsilon (total)" in out
    assert f"{first.total:.3f}" in out and f"{second.total:.3f}" in out
    assert f"{share:.3f}" not in out

    body = json.loads(rounds(example_task, "--json"))
    assert [(r["epsilon_total"], r["epsilon_max_update"]) for r in body["rounds"]] == [
        (None, 1.25),
        (None, None),
    ]
    out = rounds(example_task)
    assert "epsilon (largest update)" in out
    # a row ends with the epsilon, the reward reserved and claimed, and the report's CID
    rows = {
        cells[0]: cells for cells in map(str.split, out.splitlines()) if cells[:1] in (["1"], ["2"])
    }
    assert (rows["1"][-4], rows["2"][-4]) == ("1.250", "-")
    assert "5.000" not in out and "0.800" not in out

    body = json.loads(rounds(plain_task, "--json"))
    assert body["privacy"]["mode"] == "none"
    assert [(r["epsilon_total"], r["epsilon_max_update"]) for r in body["rounds"]] == [(None, None)]
    out = rounds(plain_task)
    assert "epsilon" not in out and "privacy" not in out

    # a narrow terminal keeps every epsilon whole on one line
    monkeypatch.setenv("COLUMNS", "80")
    out = rounds(node_task)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert f"{first.total:.3f}" in out and f"{second.total:.3f}" in out
