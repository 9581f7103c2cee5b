"""A task's published global adapters, fetched by what the chain recorded: one real demo round
(tiny model, embedded chain and store), exported and loaded back with plain peft."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from peft import PeftModel, get_peft_model_state_dict
from transformers import AutoModelForCausalLM

from aggregator.inputs import load_published_adapter
from chain.errors import ContractRevert
from ipfs import EmbeddedConfig, EmbeddedStore
from loraledger.errors import ConfigError, StorageError
from loraledger.update import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, unpack_global_adapter
from tests.support.demo import PlayedDemo, play_tiny_demo


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> PlayedDemo:
    """One finalized and settled round of two nodes on the tiny model."""
    # enough training and held-out data that the updates score above zero and are merged
    return play_tiny_demo(
        tmp_path_factory.mktemp("published"), nodes=2, rounds=1, steps=3, validation_examples=16
    )


def test_the_latest_adapter_is_the_last_rounds_and_plain_peft_loads_it(
    played: PlayedDemo, tmp_path: Path
) -> None:
    task_id = played.task_id
    latest = load_published_adapter(played.ledger, played.history, played.store, task_id)
    assert (latest.round, latest.settled) == (1, True)
    (finalized,) = played.history.finalized(task_id)
    assert latest.cid == finalized.global_cid
    assert bytes.fromhex(latest.adapter.digest.removeprefix("0x")) == finalized.global_digest
    explicit = load_published_adapter(played.ledger, played.history, played.store, task_id, 1)
    assert (explicit.round, explicit.cid, explicit.adapter.digest) == (
        1,
        latest.cid,
        latest.adapter.digest,
    )

    folder = unpack_global_adapter(latest.adapter, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME]
    )
    # nothing of LoRA Ledger from here on: transformers and peft as any user has them
    base = AutoModelForCausalLM.from_pretrained(played.model_folder)
    model = PeftModel.from_pretrained(base, folder)
    state = get_peft_model_state_dict(model)
    assert set(state) == set(latest.adapter.tensors)
    for key, value in latest.adapter.tensors.items():
        torch.testing.assert_close(state[key], value.to(state[key].dtype))
    assert any(value.abs().sum() > 0 for key, value in state.items() if "lora_B" in key)


def test_round_zero_is_the_tasks_initial_adapter(played: PlayedDemo) -> None:
    task_id = played.task_id
    initial = load_published_adapter(played.ledger, played.history, played.store, task_id, 0)
    created = played.history.task_created(task_id)
    assert (initial.round, initial.cid) == (0, created.initial_global_cid)
    assert initial.adapter.metadata.round == 0
    latest = load_published_adapter(played.ledger, played.history, played.store, task_id)
    assert initial.adapter.digest != latest.adapter.digest


@pytest.mark.parametrize("round_", [2, -1])
def test_a_round_that_never_opened_is_one_clear_error(played: PlayedDemo, round_: int) -> None:
    with pytest.raises(ConfigError, match=f"has no round {round_}: it opened 1 round"):
        load_published_adapter(played.ledger, played.history, played.store, played.task_id, round_)


def test_an_unknown_task_reverts_with_its_name(played: PlayedDemo) -> None:
    with pytest.raises(ContractRevert, match="LedgerUnknownTask"):
        load_published_adapter(played.ledger, played.history, played.store, 99)


def test_a_store_without_the_content_is_a_storage_error(played: PlayedDemo, tmp_path: Path) -> None:
    empty = EmbeddedStore(EmbeddedConfig(root=tmp_path / "empty"))
    with pytest.raises(StorageError):
        load_published_adapter(played.ledger, played.history, empty, played.task_id)


def test_export_keeps_an_existing_adapter_folder_unless_forced(tmp_path: Path) -> None:
    from scripts.cli import build_command

    out = tmp_path / "adapter"
    out.mkdir()
    (out / ADAPTER_CONFIG_NAME).write_text("{}")
    runner = CliRunner()
    result = runner.invoke(
        build_command(), ["adapter", "export", "1", "--out", str(out)], standalone_mode=False
    )
    assert isinstance(result.exception, ConfigError)
    assert "already holds an adapter" in str(result.exception)
    assert (out / ADAPTER_CONFIG_NAME).read_text() == "{}"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = runner.invoke(
        build_command(), ["adapter", "export", "1", "--out", str(a_file)], standalone_mode=False
    )
    assert isinstance(result.exception, ConfigError) and "not a folder" in str(result.exception)
