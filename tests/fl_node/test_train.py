"""One training round on real models: loss, update bytes, global adapters, rejections."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_node.data import DataError, Example, NodeData, train_eval_split
from fl_node.model import LoadedModel, ModelConfig, load_base_model
from fl_node.train import (
    NodeTrainConfig,
    StepReport,
    TrainSettings,
    rerank_lora,
    total_steps,
    train_round,
)
from loraledger.errors import ConfigError, UpdateRejected
from loraledger.update import (
    FORMAT_VERSION,
    Expected,
    GlobalAdapterMetadata,
    PeftSpec,
    build_global_adapter,
    pack_adapter_folder,
    parse_global_adapter,
    parse_update,
    peft_adapter_config,
    sha256_hex,
    unpack_global_adapter,
)

NODE = "0x00000000000000000000000000000000000000aa"
FAST = TrainSettings(max_steps=8, learning_rate=1e-2, batch_size=8, max_length=64)


def config(rank: int = 4, alpha: float = 8.0, **train: object) -> NodeTrainConfig:
    return NodeTrainConfig(
        task_id=1,
        round=1,
        node=NODE,
        peft=PeftSpec(rank=rank, alpha=alpha),
        train=FAST.replace(**train),
        max_rank=8,
    )


def as_global(update: bytes, round: int = 1) -> bytes:
    """What the aggregator publishes after one update: the same tensors as a global adapter."""
    parsed = parse_update(update)
    meta = parsed.metadata
    return build_global_adapter(
        parsed.tensors,
        GlobalAdapterMetadata(
            format_version=FORMAT_VERSION,
            task_id=meta.task_id,
            round=round,
            base_model=meta.base_model,
            peft=meta.peft,
            adapter_config=peft_adapter_config(meta.peft, meta.base_model),
            num_updates=1,
        ),
    )


def base_weights(loaded: LoadedModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in loaded.model.state_dict().items()}


# --------------------------------------------------------------------------- training


def test_a_round_lowers_train_and_held_out_loss_on_the_tiny_model(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    reports: list[StepReport] = []
    result = train_round(config(max_steps=30), tiny, ai_data, progress=reports.append)
    metrics = result.metrics
    assert [r.step for r in reports] == list(range(1, 31)) and reports[-1].total_steps == 30
    assert metrics.steps == 30 and metrics.train_tokens == reports[-1].tokens > 0
    assert metrics.eval_loss_after < metrics.eval_loss_before - 0.05
    assert sum(result.losses[-5:]) / 5 < sum(result.losses[:5]) / 5 - 0.05


def test_update_carries_the_trained_adapter_and_complete_metadata(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    result = train_round(config(), tiny, ai_data)
    assert result.digest == sha256_hex(result.update)
    parsed = parse_update(
        result.update,
        Expected(task_id=1, round=1, base_model=tiny.model_id, max_rank=8, digest=result.digest),
    )
    meta = parsed.metadata
    assert (meta.node, meta.peft.rank, meta.num_examples) == (NODE, 4, len(ai_data.train))
    assert meta.metrics.eval_loss_before is not None and meta.metrics.eval_loss_after is not None
    assert {"loraledger", "torch", "transformers", "peft"} <= meta.software.keys()
    layers = tiny.model.config.num_hidden_layers
    assert len(parsed.tensors) == layers * 4 * 2  # q/k/v/o x A/B
    assert any(
        name.endswith("lora_B.weight") and t.abs().sum() > 0 for name, t in parsed.tensors.items()
    )


def test_same_seed_and_data_give_a_bit_identical_update(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    first = train_round(config(), tiny, ai_data)
    second = train_round(config(), tiny, ai_data)
    assert first.update == second.update and first.digest == second.digest
    assert train_round(config(seed=1), tiny, ai_data).digest != first.digest


def test_a_round_leaves_the_base_model_as_it_was(tiny: LoadedModel, ai_data: NodeData) -> None:
    before = base_weights(tiny)
    train_round(config(), tiny, ai_data)
    after = base_weights(tiny)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert not any("lora" in name for name, _ in tiny.model.named_modules())


def test_epochs_and_gradient_accumulation_set_the_number_of_steps(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    settings_ = TrainSettings(epochs=2, batch_size=8, grad_accum=2, max_length=64)
    expected = total_steps(settings_, len(ai_data.train))
    assert expected == math.ceil(len(ai_data.train) / 8)  # 2 epochs of batches, 2 batches a step
    cfg = NodeTrainConfig(task_id=1, round=1, node=NODE, peft=PeftSpec(rank=2), train=settings_)
    assert train_round(cfg, tiny, ai_data).metrics.steps == expected


def test_fedprox_keeps_the_update_closer_to_the_global_adapter(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    start = train_round(config(), tiny, ai_data)
    global_bytes = as_global(start.update)
    anchor = parse_global_adapter(global_bytes).tensors

    def drift(mu: float) -> float:
        result = train_round(
            config(fedprox_mu=mu, max_steps=10).replace(round=2),
            tiny,
            ai_data,
            global_bytes,
            sha256_hex(global_bytes),
        )
        tensors = parse_update(result.update).tensors
        return sum(float((tensors[k] - anchor[k]).pow(2).sum()) for k in anchor)

    assert drift(100.0) < 0.5 * drift(0.0)


@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning"])
def test_prompt_and_prefix_tuning_produce_valid_updates_that_resume(
    tiny: LoadedModel, ai_data: NodeData, method: str
) -> None:
    spec = PeftSpec(method=method, num_virtual_tokens=4)
    cfg = NodeTrainConfig(task_id=1, round=1, node=NODE, peft=spec, train=FAST)
    result = train_round(cfg, tiny, ai_data)
    parsed = parse_update(result.update)
    assert parsed.metadata.peft.method == method
    assert list(parsed.tensors) == ["prompt_embeddings"]
    global_bytes = as_global(result.update)
    again = train_round(cfg.replace(round=2), tiny, ai_data, global_bytes, sha256_hex(global_bytes))
    assert again.metrics.eval_loss_before == pytest.approx(result.metrics.eval_loss_after, rel=1e-5)


# --------------------------------------------------------------------------- global adapters


def test_next_round_starts_exactly_where_the_global_adapter_left_off(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    first = train_round(config(), tiny, ai_data)
    global_bytes = as_global(first.update)
    second = train_round(
        config().replace(round=2),
        tiny,
        ai_data,
        global_bytes,
        expected_digest="0x" + sha256_hex(global_bytes),
    )
    assert second.metrics.eval_loss_before == pytest.approx(first.metrics.eval_loss_after, rel=1e-6)
    assert parse_update(second.update).metadata.round == 2


def test_saved_pinned_fetched_and_loaded_adapter_is_bit_identical(
    tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    from peft import PeftModel, get_peft_model_state_dict

    from ipfs import EmbeddedConfig, EmbeddedStore

    trained = parse_update(train_round(config(), tiny, ai_data).update).tensors
    pinned = as_global(train_round(config(), tiny, ai_data).update)
    store = EmbeddedStore(EmbeddedConfig(root=tmp_path / "store"))
    cid = store.put_bytes(pinned)
    store.pin(cid)
    fetched = parse_global_adapter(store.get_bytes(cid), Expected(digest=sha256_hex(pinned)))
    folder = unpack_global_adapter(fetched, tmp_path / "global")
    model = PeftModel.from_pretrained(tiny.model, str(folder))
    loaded = get_peft_model_state_dict(model)
    assert loaded.keys() == trained.keys()
    for name, tensor in trained.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name].view(torch.uint8), tensor.view(torch.uint8))


def test_global_adapter_with_wrong_digest_is_rejected_before_training(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    global_bytes = as_global(train_round(config(), tiny, ai_data).update)
    tampered = global_bytes[:-4] + b"\x00\x00\x00\x00"
    steps: list[StepReport] = []
    with pytest.raises(UpdateRejected) as info:
        train_round(
            config(), tiny, ai_data, tampered, sha256_hex(global_bytes), progress=steps.append
        )
    assert info.value.reason == "digest_mismatch" and not steps


def test_global_adapter_for_another_base_model_is_rejected(
    tiny: LoadedModel, ai_data: NodeData, tiny_dir: Path
) -> None:
    global_bytes = as_global(train_round(config(), tiny, ai_data).update)
    other = load_base_model(ModelConfig(source=str(tiny_dir), model_id="someone/other-model"))
    with pytest.raises(UpdateRejected) as info:
        train_round(config(), other, ai_data, global_bytes, sha256_hex(global_bytes))
    assert info.value.reason == "wrong_base_model"
    assert "other-model" in str(info.value)


def test_global_adapter_without_its_digest_is_a_config_error(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    global_bytes = as_global(train_round(config(), tiny, ai_data).update)
    with pytest.raises(ConfigError, match="without its expected digest"):
        train_round(config(), tiny, ai_data, global_bytes, None)


def test_node_with_a_smaller_rank_starts_from_the_best_low_rank_approximation(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    global_bytes = as_global(
        train_round(config(rank=8, alpha=16.0, max_steps=20), tiny, ai_data).update
    )
    full = train_round(
        config(rank=8, alpha=16.0).replace(round=2),
        tiny,
        ai_data,
        global_bytes,
        sha256_hex(global_bytes),
    )
    small = train_round(
        config(rank=2, alpha=4.0).replace(round=2),
        tiny,
        ai_data,
        global_bytes,
        sha256_hex(global_bytes),
    )
    assert parse_update(small.update).metadata.peft.rank == 2
    fresh = train_round(config(rank=2, alpha=4.0), tiny, ai_data)
    # the rank-2 start keeps most of what the rank-8 global adapter learned
    gained = fresh.metrics.eval_loss_before - full.metrics.eval_loss_before
    kept = fresh.metrics.eval_loss_before - small.metrics.eval_loss_before
    assert gained > 0 and kept > 0.3 * gained


@settings(max_examples=25, deadline=None)
@given(
    global_rank=st.integers(1, 8),
    node_rank=st.integers(1, 8),
    alpha=st.floats(0.5, 32),
    seed=st.integers(0, 1000),
)
def test_rerank_gives_the_optimal_rank_r_delta(
    global_rank: int, node_rank: int, alpha: float, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    name_a, name_b = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"
    a, b = (
        torch.randn(global_rank, 12, generator=generator),
        torch.randn(10, global_rank, generator=generator),
    )
    source = PeftSpec(rank=global_rank, alpha=alpha)
    target = PeftSpec(rank=node_rank, alpha=2.0 * node_rank)
    local = {
        name_a: torch.randn(node_rank, 12, generator=generator),
        name_b: torch.zeros(10, node_rank),
    }
    out = rerank_lora({name_a: a, name_b: b}, source, target, local)
    assert out[name_a].shape == (node_rank, 12) and out[name_b].shape == (10, node_rank)
    delta = source.scaling * b @ a
    approx = target.scaling * out[name_b] @ out[name_a]
    singular = torch.linalg.svdvals(delta)
    best_error = float(singular[node_rank:].pow(2).sum().sqrt())
    assert float((delta - approx).norm()) == pytest.approx(
        best_error, abs=1e-3 * float(singular[0]) + 1e-5
    )


# --------------------------------------------------------------------------- bad settings


def test_rank_above_the_task_maximum_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rank 16 exceeds the task's maximum 8"):
        config(rank=16)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"max_steps": 0}, "max_steps must be positive"),
        ({"learning_rate": 0.0}, "learning rate must be positive"),
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"fedprox_mu": -1.0}, "fedprox_mu"),
        ({"max_length": 1}, "max_length"),
        ({"epochs": float("nan")}, "epochs"),
    ],
)
def test_invalid_training_settings_name_the_bad_value(
    changes: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainSettings(**changes)


def test_unknown_target_module_is_a_config_error(tiny: LoadedModel, ai_data: NodeData) -> None:
    cfg = config().replace(peft=PeftSpec(target_modules=("query_key_value",)))
    with pytest.raises(ConfigError, match="query_key_value"):
        train_round(cfg, tiny, ai_data)


def test_examples_whose_replies_do_not_fit_max_length_are_a_data_error(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    with pytest.raises(DataError, match="max_length=4"):
        train_round(config(max_length=4), tiny, ai_data)


# --------------------------------------------------------------------------- real pretrained model


@pytest.mark.slow
def test_a_few_steps_lower_smollm2_loss_on_a_topic_shard(
    smollm2_dir: Path, sample: list[Example]
) -> None:
    loaded = load_base_model(ModelConfig(source=str(smollm2_dir)))
    data = train_eval_split([e for e in sample if e.label == "ai"], 0.1, seed=0)
    data = NodeData(train=data.train, eval=data.eval[:8])
    cfg = NodeTrainConfig(
        task_id=1,
        round=1,
        node=NODE,
        peft=PeftSpec(rank=8, alpha=16),
        train=TrainSettings(max_steps=6, learning_rate=2e-3, batch_size=4, max_length=96),
    )
    result = train_round(cfg, loaded, data)
    metrics = result.metrics
    assert metrics.eval_loss_after < metrics.eval_loss_before
    assert result.losses[-1] < result.losses[0]
    assert parse_update(result.update, Expected(base_model="HuggingFaceTB/SmolLM2-135M-Instruct"))


def test_gradient_checkpointing_gives_the_same_update_and_is_switched_off_after(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    plain = parse_update(train_round(config(), tiny, ai_data).update).tensors
    checkpointed = parse_update(
        train_round(config(gradient_checkpointing=True), tiny, ai_data).update
    ).tensors
    assert all(torch.allclose(plain[k], checkpointed[k], atol=1e-5) for k in plain)
    assert not tiny.model.is_activation_checkpointing


@pytest.mark.slow
def test_qlora_4bit_model_trains_a_round_on_cpu(tiny_dir: Path, ai_data: NodeData) -> None:
    quantized = load_base_model(ModelConfig(source=str(tiny_dir), quantization="4bit"))
    result = train_round(config(max_steps=2), quantized, ai_data)
    parsed = parse_update(result.update, Expected(base_model="loraledger/tiny-llama"))
    assert {t.dtype for t in parsed.tensors.values()} == {torch.float32}
    assert result.metrics.steps == 2


def test_adapter_folder_saved_by_peft_packs_to_a_loadable_global_adapter(
    tiny: LoadedModel, ai_data: NodeData, tmp_path: Path
) -> None:
    from peft import PeftModel

    update = train_round(config(), tiny, ai_data).update
    trained = parse_update(update)
    unpack_global_adapter(parse_global_adapter(as_global(update)), tmp_path / "unpacked")
    model = PeftModel.from_pretrained(tiny.model, str(tmp_path / "unpacked"))
    model.save_pretrained(tmp_path / "saved")  # peft's own adapter_config.json and weights
    model.unload()
    packed = pack_adapter_folder(tmp_path / "saved", task_id=1, round=2, base_model=tiny.model_id)
    adapter = parse_global_adapter(packed, Expected(task_id=1, base_model=tiny.model_id))
    assert adapter.metadata.peft.shape_settings() == trained.metadata.peft.shape_settings()
    assert all(torch.equal(adapter.tensors[k], t) for k, t in trained.tensors.items())
    again = train_round(config().replace(round=2), tiny, ai_data, packed, sha256_hex(packed))
    assert again.metrics.eval_loss_before == pytest.approx(trained.metadata.metrics.eval_loss_after)


@pytest.mark.parametrize("target_rank", [2, 4])
def test_components_the_global_delta_does_not_use_stay_trainable(target_rank: int) -> None:
    """A fresh global adapter (B = 0) or a zero-padded one must not hand the node A = 0 and
    B = 0 together: neither factor would ever get a gradient (a saddle point)."""
    name_a, name_b = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"
    source = PeftSpec(rank=4, alpha=8.0)
    target = PeftSpec(rank=target_rank, alpha=2.0 * target_rank)
    g = torch.Generator().manual_seed(0)
    local = {name_a: torch.randn(target_rank, 6, generator=g), name_b: torch.zeros(5, target_rank)}
    # component 0 is used, components 1.. are zero-padded (A row and B column both zero)
    a = torch.zeros(4, 6)
    b = torch.zeros(5, 4)
    a[0], b[:, 0] = torch.randn(6, generator=g), torch.randn(5, generator=g)
    out = rerank_lora({name_a: a, name_b: b}, source, target, local)
    delta = target.scaling * out[name_b] @ out[name_a]
    torch.testing.assert_close(delta, source.scaling * b @ a, rtol=1e-4, atol=1e-5)
    assert bool((out[name_a][1:].abs().sum(1) > 0).all())  # unused rows: the node's fresh A
    torch.testing.assert_close(out[name_a][1:], local[name_a][1:])
    # a fully zero global delta (a fresh adapter re-ranked) keeps every fresh A row
    zero = rerank_lora(
        {name_a: torch.zeros(4, 6), name_b: torch.zeros(5, 4)}, source, target, local
    )
    torch.testing.assert_close(zero[name_a], local[name_a])
    assert not zero[name_b].any()
