"""``loraledger audit`` as a second person runs it: its own process, with only the deployment
record, the chain RPC (a real Ganache) and the store. Rounds are run by the aggregator CLI on
synthetic update-format adapters that nodes commit on chain; a corrupted update turns the
exit code to 1 with the round and the check named."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from chain import local
from chain.bindings import commitment_hash
from chain.deployments import load_deployment
from chain.network import connect, dev_account
from ipfs import EmbeddedConfig, EmbeddedStore
from loraledger.update import (
    FORMAT_VERSION,
    GlobalAdapterMetadata,
    build_global_adapter,
    build_update,
    peft_adapter_config,
)
from tests.aggregator.lora_builders import lora_tensors
from tests.aggregator.round_builders import SPEC, update_metadata
from tests.support.chain import BASE_MODEL


def invoke(*args: str) -> str:
    from scripts.cli import build_command

    result = CliRunner().invoke(
        build_command(), list(args), catch_exceptions=False, standalone_mode=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def audit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``loraledger audit ...`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", "audit", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.ganache
def test_audit_verify_passes_on_rounds_the_aggregator_cli_ran_and_fails_on_a_corrupted_update(
    ganache_process: local.ChainProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, store_dir = tmp_path / "home", tmp_path / "store"
    monkeypatch.setenv("LORALEDGER_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "250")
    network, ipfs = f"ganache:{ganache_process.port}", f"embedded:{store_dir}"
    env = {**os.environ, "LORALEDGER_HOME": str(home), "COLUMNS": "250"}
    store = EmbeddedStore(EmbeddedConfig(root=store_dir))

    invoke("deploy", "--network", network)
    chain = connect(network)
    ledger = load_deployment(chain).ledger_contract(chain)
    task_id = ledger.task_count() + 1
    start = lora_tensors(0, rank=SPEC.rank, scale=0.1)
    adapter = build_global_adapter(
        start,
        GlobalAdapterMetadata(
            format_version=FORMAT_VERSION,
            task_id=task_id,
            round=0,
            base_model=BASE_MODEL,
            peft=SPEC,
            adapter_config=peft_adapter_config(SPEC, BASE_MODEL),
        ),
    )
    invoke(
        "task",
        "create",
        "--network",
        network,
        "--base-model",
        BASE_MODEL,
        "--initial-cid",
        store.put_bytes(adapter),
        "--initial-digest",
        hashlib.sha256(adapter).hexdigest(),
        "--window",
        "3600",
        "--fund",
        "500",
        "--reward-per-round",
        "100",
        "--max-rounds",
        "2",
        "--challenge-window",
        "60",
    )
    # the aggregator is the task's one validator (the local default): it signs in-process
    invoke("aggregator", "bond", "--task", str(task_id), "--network", network)
    nodes = [dev_account(chain.network, i) for i in (2, 3, 4)]
    for i in range(3):
        invoke(
            "node",
            "join",
            "--task",
            str(task_id),
            "--network",
            network,
            "--account",
            f"dev:{i + 2}",
        )

    cids = []
    for round_ in (1, 2):
        invoke("aggregator", "open", "--task", str(task_id), "--network", network)
        reveals = []
        for i, node in enumerate(nodes):
            g = torch.Generator().manual_seed(10 * round_ + i)
            scale = 100.0 if (round_, i) == (2, 2) else 1.0  # a norm outlier in round 2
            tensors = {
                k: v + scale * 0.05 * torch.randn(v.shape, generator=g) for k, v in start.items()
            }
            data = build_update(
                tensors, update_metadata(task_id, round_, node.address, 10 * (i + 1))
            )
            cid = store.put_bytes(data)
            cids.append(cid)
            digest, salt = hashlib.sha256(data).digest(), hashlib.sha256(cid.encode()).digest()
            commitment = commitment_hash(task_id, round_, node.address, digest, 10 * (i + 1), salt)
            ledger.commit_update(task_id, round_, commitment, node)
            reveals.append((cid, digest, 10 * (i + 1), salt, node))
        for cid, digest, examples, salt, node in reveals:  # every node committed: revealing
            ledger.reveal_update(task_id, round_, cid, digest, examples, salt, node)
        invoke(
            "aggregator",
            "finalize",
            "--task",
            str(task_id),
            "--network",
            network,
            "--ipfs",
            ipfs,
            "--strategy",
            "fedadam",
        )
        chain.advance_time(61)  # past the challenge window: the round settles
        invoke("aggregator", "settle", "--task", str(task_id), "--network", network, "--ipfs", ipfs)
    invoke(
        "node",
        "claim",
        "--task",
        str(task_id),
        "--network",
        network,
        "--ipfs",
        ipfs,
        "--account",
        "dev:2",
    )

    verified = audit(
        "verify", str(task_id), "--network", network, "--ipfs", ipfs, "--json", env=env
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    body = json.loads(verified.stdout)
    assert body["ok"] is True and body["tolerance"] == {"atol": 1e-5, "rtol": 1e-4}
    assert {(c["round"], c["name"]) for c in body["checks"] if c["status"] == "pass"} == {
        (r, name)
        for r in (1, 2)
        for name in (
            "report",
            "submissions",
            "updates",
            "aggregate",
            "rewards",
            "slashes",
            "claims",
            "validators",
            "signatures",
        )
    } | {(None, "ledger")}

    human = audit("verify", str(task_id), "--network", network, "--ipfs", ipfs, env=env)
    assert human.returncode == 0 and f"task {task_id}: all 19 checks hold" in human.stdout
    assert "re-aggregated with fedadam in float32: bit-identical" in human.stdout.replace("\n", " ")
    wide = audit(
        "verify",
        str(task_id),
        "--network",
        network,
        "--ipfs",
        ipfs,
        "--dtype",
        "float64",
        "--json",
        env=env,
    )
    assert wide.returncode == 0, wide.stdout + wide.stderr
    aggregate = [c["detail"] for c in json.loads(wide.stdout)["checks"] if c["name"] == "aggregate"]
    assert len(aggregate) == 2 and all("in float64: largest difference" in d for d in aggregate)
    odd = audit(
        "verify", str(task_id), "--network", network, "--ipfs", ipfs, "--dtype", "float16", env=env
    )
    assert odd.returncode == 2 and "'float16' is not one of float32, float64" in odd.stderr

    rounds = audit("rounds", str(task_id), "--network", network, "--ipfs", ipfs, "--json", env=env)
    assert rounds.returncode == 0, rounds.stderr
    table = json.loads(rounds.stdout)["rounds"]
    assert [
        (r["round"], r["submitted"], r["accepted"], r["rejected"], r["reasons"]) for r in table
    ] == [(1, 3, 3, 0, {}), (2, 3, 2, 1, {"norm_outlier": 1})]
    assert all(r["report_cid"] and int(r["reward_total"]) > 0 for r in table)
    assert (
        int(table[0]["claimed"]) > 0 and int(table[1]["claimed"]) > 0
    )  # dev:2 claimed both rounds
    text = audit("rounds", str(task_id), "--network", network, "--ipfs", ipfs, env=env).stdout
    assert "norm_outlier x1" in text and "finalized" in text

    detail = json.loads(
        audit(
            "round", str(task_id), "2", "--network", network, "--ipfs", ipfs, "--json", env=env
        ).stdout
    )
    rows = {s["node"]: s for s in detail["submissions"]}
    assert (
        rows[nodes[2].address]["verdict"] == "rejected"
        and rows[nodes[2].address]["reason"] == "norm_outlier"
    )
    assert rows[nodes[0].address]["claimed"] is True and rows[nodes[1].address]["claimed"] is False
    assert int(rows[nodes[1].address]["reward"]) > 0 and int(rows[nodes[2].address]["reward"]) == 0
    text = audit("round", str(task_id), "2", "--network", network, "--ipfs", ipfs, env=env).stdout
    assert nodes[2].address in text and "norm_outlier" in text

    # an accepted update of round 1 damaged in the store: exit 1, round and check named
    blob = store_dir / "objects" / cids[0][-3:-1] / cids[0]
    blob.write_bytes(blob.read_bytes()[:-8] + b"tampered")
    failed = audit("verify", str(task_id), "--network", network, "--ipfs", ipfs, env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"FAIL round 1 updates: {nodes[0].address}: re-derived unavailable" in failed.stdout
    assert f"cannot fetch {cids[0]}" in failed.stdout
    assert "the report says accepted" in failed.stdout
    assert "round 2" not in failed.stdout.split("FAIL", 1)[1]
    missing = audit("verify", str(task_id), "9", "--network", network, "--ipfs", ipfs, env=env)
    assert (
        missing.returncode == 1
        and "has no round 9" in missing.stderr
        and "traceback" not in missing.stderr.lower()
    )
