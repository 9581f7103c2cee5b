"""A task's published global adapters, fetched by what the chain recorded: one real demo round
(tiny model, embedded chain and store), exported and loaded back with plain peft."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from peft import PeftModel, get_peft_model_state_dict
from transformers import AutoModelForCausalLM

from aggregator.inputs import load_published_adapter
from chain.bindings import Ledger
from chain.errors import ContractRevert
from chain.events import History
from chain.network import connect
from demo.run import DemoConfig, DemoResult, run_demo
from fl_node.data import sample_examples
from fl_node.model import ModelConfig, create_tiny_model, load_base_model
from ipfs import ContentStore, EmbeddedConfig, EmbeddedStore, open_store
from loraledger.errors import ConfigError, StorageError
from loraledger.update import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, unpack_global_adapter


@dataclass
class Played:
    ledger: Ledger
    history: History
    store: ContentStore
    result: DemoResult
    model_folder: Path


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    """One finalized and settled round of two nodes on the tiny model."""
    tmp = tmp_path_factory.mktemp("published")
    corpus = [m.content for e in sample_examples() for m in e.messages]
    folder = create_tiny_model(tmp / "tiny", corpus)
    model = load_base_model(ModelConfig(source=str(folder)))
    chain = connect("embedded")
    store = open_store(f"embedded:{tmp / 'store'}")
    config = DemoConfig(
        nodes=2,
        rounds=1,
        steps=1,
        strategy="fedavg",
        task_rank=4,
        ranks=(4,),
        max_length=64,
        batch_size=2,
        validation_examples=4,
        node_eval_examples=4,
    )
    result = run_demo(chain, store, model, config, tmp / "out")
    ledger = Ledger(chain, result.ledger)
    yield Played(ledger, History(ledger), store, result, folder)


def test_the_latest_adapter_is_the_last_rounds_and_plain_peft_loads_it(
    played: Played, tmp_path: Path
) -> None:
    task_id = played.result.task_id
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


def test_round_zero_is_the_tasks_initial_adapter(played: Played) -> None:
    task_id = played.result.task_id
    initial = load_published_adapter(played.ledger, played.history, played.store, task_id, 0)
    created = played.history.task_created(task_id)
    assert (initial.round, initial.cid) == (0, created.initial_global_cid)
    assert initial.adapter.metadata.round == 0
    latest = load_published_adapter(played.ledger, played.history, played.store, task_id)
    assert initial.adapter.digest != latest.adapter.digest


@pytest.mark.parametrize("round_", [2, -1])
def test_a_round_that_never_opened_is_one_clear_error(played: Played, round_: int) -> None:
    with pytest.raises(ConfigError, match=f"has no round {round_}: it opened 1 round"):
        load_published_adapter(
            played.ledger, played.history, played.store, played.result.task_id, round_
        )


def test_an_unknown_task_reverts_with_its_name(played: Played) -> None:
    with pytest.raises(ContractRevert, match="LedgerUnknownTask"):
        load_published_adapter(played.ledger, played.history, played.store, 99)


def test_a_store_without_the_content_is_a_storage_error(played: Played, tmp_path: Path) -> None:
    empty = EmbeddedStore(EmbeddedConfig(root=tmp_path / "empty"))
    with pytest.raises(StorageError):
        load_published_adapter(played.ledger, played.history, empty, played.result.task_id)


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
