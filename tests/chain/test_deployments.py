"""Deployment records: found by chain id, never holding keys, and checked against the chain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chain import local
from chain.deployments import (
    deploy,
    deployment_history,
    history_path,
    load_deployment,
    record_path,
    recorded,
    use_deployment,
)
from chain.network import connect, dev_account
from loraledger.errors import ChainError, ConfigError


def _record_without_code(chain_id: int) -> dict[str, object]:
    """A well-formed deployment record whose ledger address has no code on the chain."""
    return {
        "chain_id": chain_id,
        "network": "ganache",
        "ledger": "0x" + "12" * 20,
        "token": "0x" + "34" * 20,
        "deployer": "0x" + "56" * 20,
        "aggregator": "0x" + "56" * 20,
        "block": 1,
        "ledger_code_sha256": "00",
        "deployed_at": "2026-01-01T00:00:00+00:00",
        "version": 1,
    }


def test_embedded_deployment_is_kept_in_memory_only(tmp_path: Path) -> None:
    chain = connect("embedded")
    deployment = deploy(chain, dev_account(chain.network, 0), root=tmp_path)
    assert deployment.ledger_contract(chain).task_count() == 0
    assert not (tmp_path / "deployments").exists()
    with pytest.raises(ChainError, match="lives inside one process"):
        load_deployment(chain, root=tmp_path)


def test_record_is_written_per_chain_id_and_holds_no_key(
    ganache_process: local.ChainProcess, tmp_path: Path
) -> None:
    chain = connect(f"ganache:{ganache_process.port}")
    deployer = dev_account(chain.network, 0)
    deployment = deploy(
        chain, deployer, aggregator=dev_account(chain.network, 1).address, root=tmp_path
    )
    path = record_path(chain.chain_id, tmp_path)
    assert path.name == "1337.json"
    text = path.read_text()
    assert deployer.key.hex().removeprefix("0x") not in text
    assert json.loads(text)["ledger"] == deployment.ledger
    assert load_deployment(chain, root=tmp_path) == deployment


def test_missing_corrupt_and_foreign_records_give_one_clear_error(
    ganache_process: local.ChainProcess, tmp_path: Path
) -> None:
    chain = connect(f"ganache:{ganache_process.port}")
    with pytest.raises(ChainError, match="no deployment recorded for chain id 1337") as info:
        load_deployment(chain, root=tmp_path)
    assert info.value.hint is not None and "loraledger deploy" in info.value.hint
    path = record_path(1337, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ChainError, match="is corrupt"):
        load_deployment(chain, root=tmp_path)
    path.write_text(json.dumps({"ledger": "0x0"}))
    with pytest.raises(ChainError, match="is malformed"):
        load_deployment(chain, root=tmp_path)
    # a record whose address has no code on this chain (another network's deployment)
    path.write_text(json.dumps(_record_without_code(1337)))
    with pytest.raises(ChainError, match="no contract at"):
        load_deployment(chain, root=tmp_path)


def test_a_live_recorded_ledger_is_replaced_only_when_asked_and_stays_in_the_history(
    ganache_process: local.ChainProcess, tmp_path: Path
) -> None:
    chain = connect(f"ganache:{ganache_process.port}")
    deployer = dev_account(chain.network, 0)
    first = deploy(chain, deployer, root=tmp_path)
    with pytest.raises(ConfigError, match=f"LoRALedger at {first.ledger}") as info:
        deploy(chain, deployer, root=tmp_path)
    assert info.value.hint is not None and "--replace" in info.value.hint
    assert load_deployment(chain, root=tmp_path) == first  # nothing was recorded

    second = deploy(chain, deployer, replace=True, root=tmp_path)
    assert load_deployment(chain, root=tmp_path) == second
    assert [d.ledger for d in deployment_history(chain.chain_id, tmp_path)] == [
        first.ledger,
        second.ledger,
    ]
    assert history_path(chain.chain_id, first.ledger, tmp_path).is_file()

    assert use_deployment(chain, first.ledger.lower(), root=tmp_path) == first
    assert load_deployment(chain, root=tmp_path) == first
    assert recorded(chain.chain_id, tmp_path) == first
    with pytest.raises(ConfigError, match="no deployment of LoRALedger at 0x") as unknown:
        use_deployment(chain, "0x" + "ab" * 20, root=tmp_path)
    assert unknown.value.hint is not None and second.ledger in unknown.value.hint


def test_a_record_written_before_histories_is_kept_when_replaced(
    ganache_process: local.ChainProcess, tmp_path: Path
) -> None:
    chain = connect(f"ganache:{ganache_process.port}")
    deployer = dev_account(chain.network, 0)
    old = deploy(chain, deployer, root=tmp_path)
    shutil.rmtree(tmp_path / "deployments" / str(chain.chain_id))  # as an older version left it
    assert deployment_history(chain.chain_id, tmp_path) == [old]
    new = deploy(chain, deployer, replace=True, root=tmp_path)
    assert deployment_history(chain.chain_id, tmp_path) == [old, new]


def test_a_ledger_the_chain_lost_is_replaced_without_asking(
    ganache_process: local.ChainProcess, tmp_path: Path
) -> None:
    chain = connect(f"ganache:{ganache_process.port}")
    path = record_path(chain.chain_id, tmp_path)
    path.parent.mkdir(parents=True)
    gone = _record_without_code(chain.chain_id)  # the chain was reset since
    path.write_text(json.dumps(gone))
    fresh = deploy(chain, dev_account(chain.network, 0), root=tmp_path)
    assert load_deployment(chain, root=tmp_path) == fresh
    assert [d.ledger for d in deployment_history(chain.chain_id, tmp_path)] == [
        gone["ledger"],
        fresh.ledger,
    ]
    with pytest.raises(ChainError, match="the chain was reset"):
        use_deployment(chain, str(gone["ledger"]), root=tmp_path)
