"""Deployment records: found by chain id, never holding keys, and checked against the chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain import local
from chain.deployments import deploy, load_deployment, record_path
from chain.network import connect, dev_account
from loraledger.errors import ChainError


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
    record = {
        "chain_id": 1337,
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
    path.write_text(json.dumps(record))
    with pytest.raises(ChainError, match="no contract at"):
        load_deployment(chain, root=tmp_path)
