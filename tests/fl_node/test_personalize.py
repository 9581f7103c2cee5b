"""Personalization on the tiny model: a short local fine-tune of a trained global adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fl_node.data import DataError, Example, NodeData, train_eval_split
from fl_node.model import LoadedModel, ModelConfig, load_base_model
from fl_node.personalize import personalize
from fl_node.train import StepReport, TrainSettings, train_round
from loraledger.errors import UpdateRejected
from loraledger.update import parse_global_adapter, sha256_hex, unpack_global_adapter
from tests.fl_node.test_train import as_global, base_weights, config

TUNE = TrainSettings(max_steps=30, learning_rate=1e-2, batch_size=8, max_length=64)


@pytest.fixture
def global_bytes(tiny: LoadedModel, sample: list[Example]) -> bytes:
    """A trained global adapter of task 1 (round 1), from another topic than the node's."""
    other = train_eval_split([e for e in sample if e.label == "food"], 0.2, seed=0)
    return as_global(train_round(config(max_steps=6), tiny, other).update)


def test_personalizing_lowers_the_nodes_held_out_loss_and_keeps_the_global_settings(
    tiny: LoadedModel, ai_data: NodeData, global_bytes: bytes, tmp_path: Path
) -> None:
    before = base_weights(tiny)
    steps: list[StepReport] = []
    result = personalize(
        tiny,
        ai_data,
        global_bytes,
        sha256_hex(global_bytes),
        task_id=1,
        settings=TUNE,
        progress=steps.append,
    )

    assert [s.step for s in steps] == list(range(1, 31)) and result.steps == 30
    assert result.num_examples == len(ai_data.train)
    assert result.eval_loss_global is not None and result.eval_loss_personal is not None
    assert result.eval_loss_personal < result.eval_loss_global - 0.05
    start = parse_global_adapter(global_bytes)
    meta = result.adapter.metadata
    assert (meta.task_id, meta.round, meta.peft) == (1, 1, start.metadata.peft)
    assert meta.adapter_config == start.metadata.adapter_config
    assert result.adapter.tensors.keys() == start.tensors.keys()
    assert any(not torch.equal(result.adapter.tensors[k], start.tensors[k]) for k in start.tensors)
    assert parse_global_adapter(result.adapter_bytes).digest == result.adapter.digest
    # the base model is untouched and the personal adapter loads with plain peft
    assert all(torch.equal(base_weights(tiny)[k], before[k]) for k in before)
    from peft import PeftModel

    folder = unpack_global_adapter(result.adapter, tmp_path / "mine")
    loaded = PeftModel.from_pretrained(tiny.model, folder)
    try:
        assert loaded.peft_config["default"].r == meta.peft.rank
    finally:
        loaded.unload()


def test_the_global_loss_it_reports_is_the_global_adapters_own(
    tiny: LoadedModel, ai_data: NodeData, global_bytes: bytes
) -> None:
    # zero learning signal on the start: training from the global adapter on the node's data
    # measures the global adapter before the first step, as a round's node does
    digest = sha256_hex(global_bytes)
    tuned = personalize(tiny, ai_data, global_bytes, digest, task_id=1, settings=TUNE)
    again = train_round(config(max_steps=1), tiny, ai_data, global_bytes, digest)
    assert tuned.eval_loss_global == again.metrics.eval_loss_before
    same = personalize(tiny, ai_data, global_bytes, digest, task_id=1, settings=TUNE)
    assert same.adapter_bytes == tuned.adapter_bytes  # seeded: the same inputs, the same bytes


def test_a_start_that_is_not_the_published_adapter_is_rejected_before_training(
    tiny: LoadedModel, ai_data: NodeData, global_bytes: bytes, tiny_dir: Path
) -> None:
    steps: list[StepReport] = []
    digest = sha256_hex(global_bytes)
    tampered = global_bytes[:-4] + b"\x00\x00\x00\x00"
    with pytest.raises(UpdateRejected) as info:
        personalize(
            tiny, ai_data, tampered, digest, task_id=1, settings=TUNE, progress=steps.append
        )
    assert info.value.reason == "digest_mismatch"
    with pytest.raises(UpdateRejected) as info:
        personalize(tiny, ai_data, global_bytes, digest, task_id=2, settings=TUNE)
    assert "task" in str(info.value)
    other = load_base_model(ModelConfig(source=str(tiny_dir), model_id="someone/other-model"))
    with pytest.raises(UpdateRejected) as info:
        personalize(other, ai_data, global_bytes, digest, task_id=1, settings=TUNE)
    assert info.value.reason == "wrong_base_model"
    assert not steps


def test_data_with_nothing_to_train_on_is_a_data_error(
    tiny: LoadedModel, ai_data: NodeData, global_bytes: bytes
) -> None:
    with pytest.raises(DataError, match="max_length=4"):
        personalize(
            tiny,
            ai_data,
            global_bytes,
            sha256_hex(global_bytes),
            task_id=1,
            settings=TUNE.replace(max_length=4),
        )
