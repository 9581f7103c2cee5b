"""Example-level DP-SGD on the tiny model: true per-example gradients of the LoRA factors, the
round's privacy record, seeded determinism, empty Poisson samples, and the settings it refuses."""

from __future__ import annotations

import pytest
import torch

from fl_node.data import NodeData
from fl_node.model import LoadedModel
from fl_node.train import (
    ExampleDP,
    NodeShare,
    NodeTrainConfig,
    TrainSettings,
    attach_adapter,
    batches,
    detach_adapter,
    encode_all,
    per_example_loss,
    sample_rate,
    train_round,
)
from loraledger.errors import ConfigError
from loraledger.privacy import Stretch, TaskPrivacy, change_norm, clip_allowance, epsilon
from loraledger.update import PeftSpec, parse_global_adapter, parse_update, sha256_hex
from tests.fl_node.test_train import NODE, as_global, base_weights

PRIVATE = TrainSettings(
    max_steps=30,
    learning_rate=1e-2,
    batch_size=8,
    max_length=64,
    privacy=ExampleDP(noise_multiplier=1.0, clip_norm=1.0, noise_seed=0),  # reproducible
)


def config(settings: TrainSettings = PRIVATE) -> NodeTrainConfig:
    return NodeTrainConfig(
        task_id=1, round=1, node=NODE, peft=PeftSpec(rank=4, alpha=8.0), train=settings
    )


def test_opacus_gives_each_examples_own_gradient_of_the_lora_factors(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    from opacus import GradSampleModule

    encoded = encode_all(tiny.tokenizer, ai_data.train[:3], 64)
    pad = tiny.tokenizer.pad_token_id
    torch.manual_seed(0)
    peft_model = attach_adapter(tiny, PeftSpec(rank=4, alpha=8.0))
    try:
        for p in peft_model.parameters():  # B = 0 at init: give the factors real gradients
            if p.requires_grad:
                p.data.normal_(0, 0.1)
        params = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
        wrapped = GradSampleModule(peft_model, loss_reduction="mean")
        batch = next(batches(encoded, 3, pad, None))
        out = wrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        per_example_loss(out.logits, batch["labels"]).mean().backward()
        sampled = {n: p.grad_sample.clone() for n, p in params.items()}
        wrapped._close()
        for i, example in enumerate(encoded):  # each example alone, without hooks
            peft_model.zero_grad(set_to_none=True)
            alone = next(batches([example], 1, pad, None))
            out = peft_model(input_ids=alone["input_ids"], attention_mask=alone["attention_mask"])
            per_example_loss(out.logits, alone["labels"]).sum().backward()
            for name, p in params.items():
                assert p.grad is not None
                torch.testing.assert_close(sampled[name][i], p.grad, rtol=1e-4, atol=1e-6)
    finally:
        detach_adapter(peft_model, tiny)


def test_a_private_round_records_what_it_spent_and_learns_less_than_a_clear_one(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    before = base_weights(tiny)
    private = train_round(config(), tiny, ai_data)
    clear = train_round(config(PRIVATE.replace(privacy=None)), tiny, ai_data)

    record = parse_update(private.update).metadata.metrics.privacy
    assert record is not None and clear.metrics.privacy is None
    rate = 8 / len(ai_data.train)
    assert record.sample_rate == pytest.approx(rate) == sample_rate(PRIVATE, len(ai_data.train))
    assert (record.noise_multiplier, record.clip_norm, record.steps) == (1.0, 1.0, 30)
    assert record.epsilon == pytest.approx(epsilon([Stretch(1.0, rate, 30)], 1e-5, "rdp"))
    m, c = private.metrics, clear.metrics
    assert m.eval_loss_before == c.eval_loss_before
    assert m.eval_loss_after is not None and c.eval_loss_after is not None
    assert c.eval_loss_after < m.eval_loss_after < m.eval_loss_before  # learns, but less
    # a fixed noise seed gives the same bytes (tests only); without one the samples and the
    # noise are secret, drawn afresh: the same inputs give another update
    assert train_round(config(), tiny, ai_data).digest == private.digest
    secret = PRIVATE.replace(privacy=ExampleDP(noise_multiplier=1.0, clip_norm=1.0))
    first, second = (train_round(config(secret), tiny, ai_data) for _ in range(2))
    assert len({first.digest, second.digest, private.digest}) == 3
    # the base model is as it was, the hooks are gone
    assert all(torch.equal(base_weights(tiny)[k], before[k]) for k in before)
    assert not any(hasattr(p, "grad_sample") for p in tiny.model.parameters())
    assert not any("lora" in name for name, _ in tiny.model.named_modules())


def test_more_noise_spends_less_and_empty_samples_still_take_a_noisy_step(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    quiet = ExampleDP(noise_multiplier=4.0, clip_norm=1.0, noise_seed=0)
    # batch 1 over ~84 examples: about a third of the Poisson samples are empty
    sparse = PRIVATE.replace(batch_size=1, max_steps=12, privacy=quiet)
    result = train_round(config(sparse), tiny, ai_data)
    record = result.metrics.privacy
    assert record is not None and record.steps == 12
    noisy = train_round(config(PRIVATE.replace(batch_size=1, max_steps=12)), tiny, ai_data)
    assert noisy.metrics.privacy is not None and record.epsilon < noisy.metrics.privacy.epsilon
    tensors = parse_update(result.update).tensors
    assert all(t.abs().sum() > 0 for name, t in tensors.items() if "lora_B" in name)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grad_accum": 2}, "one Poisson-sampled batch per step"),
        ({"fedprox_mu": 0.1}, "cannot be combined with DP-SGD"),
        ({"gradient_checkpointing": True}, "gradient checkpointing"),
    ],
)
def test_settings_dp_sgd_cannot_honour_are_refused(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        PRIVATE.replace(**changes)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"noise_multiplier": 0.0}, "noise multiplier must be positive"),
        ({"noise_multiplier": float("nan")}, "noise multiplier must be positive"),
        ({"noise_multiplier": 1.0, "clip_norm": -1.0}, "clip norm must be positive"),
        ({"noise_multiplier": 1.0, "delta": 1.0}, "delta must be in (0, 1)"),
        ({"noise_multiplier": 1.0, "epsilon_budget": 0.0}, "epsilon budget must be positive"),
        ({"noise_multiplier": 1.0, "accountant": "gdp"}, "accountant"),
    ],
)
def test_impossible_privacy_settings_are_one_config_error(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        ExampleDP.model_validate(fields)
    assert message in str(info.value)


# ----------------------------------------------------------------- node-level noise shares

SHARE_POLICY = TaskPrivacy("node", 1.0, 0.05, 8.0, 1e-5, "rdp", 4)


def _start(tiny: LoadedModel, ai_data: NodeData) -> tuple[bytes, str]:
    clear = train_round(config(PRIVATE.replace(privacy=None, max_steps=4)), tiny, ai_data)
    start = as_global(clear.update)
    return start, sha256_hex(start)


def test_a_node_share_clips_the_change_and_adds_the_policys_noise(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    start, digest = _start(tiny, ai_data)
    start_tensors = parse_global_adapter(start).tensors
    clear_settings = PRIVATE.replace(privacy=None, max_steps=10)
    clear = parse_update(
        train_round(config(clear_settings), tiny, ai_data, start, digest).update
    ).tensors
    assert change_norm(clear, start_tensors) > 0.5  # far past the bound: clipping must bite

    quiet = TaskPrivacy("node", 1e-6, 0.05, 8.0, 1e-5, "rdp", 4)  # noise ~0: the clip alone
    share = NodeShare(policy=quiet, noise_seed=3)
    clipped = parse_update(
        train_round(
            config(clear_settings.replace(node_share=share)), tiny, ai_data, start, digest
        ).update
    )
    assert change_norm(clipped.tensors, start_tensors) == pytest.approx(0.05, rel=1e-3)
    # the clipped change points the way the clear one did
    flat = torch.cat([(clipped.tensors[k] - start_tensors[k]).flatten() for k in sorted(clear)])
    ref = torch.cat([(clear[k] - start_tensors[k]).flatten() for k in sorted(clear)])
    assert float(torch.nn.functional.cosine_similarity(flat, ref, dim=0)) > 0.999

    noisy = train_round(
        config(clear_settings.replace(node_share=NodeShare(policy=SHARE_POLICY, noise_seed=3))),
        tiny,
        ai_data,
        start,
        digest,
    )
    parsed = parse_update(noisy.update)
    weights = sum(t.numel() for t in parsed.tensors.values())
    std = SHARE_POLICY.share_multiplier * SHARE_POLICY.clip_norm  # 0.5 x 0.05 per weight
    norm = change_norm(parsed.tensors, start_tensors)
    assert norm == pytest.approx(std * weights**0.5, rel=0.05)  # the noise dominates
    assert norm < clip_allowance(SHARE_POLICY, weights)
    record = parsed.metadata.metrics.privacy
    assert record is not None and record.mode == "node"
    assert (record.noise_multiplier, record.clip_norm) == (0.5, 0.05)
    assert record.epsilon == pytest.approx(epsilon([Stretch(0.5, 1.0, 1)], 1e-5, "rdp"))
    assert parsed.metadata.epsilon == record.epsilon
    # the eval loss it reports is the noised adapter's: what it publishes
    assert noisy.metrics.eval_loss_after != pytest.approx(
        train_round(config(clear_settings), tiny, ai_data, start, digest).metrics.eval_loss_after
    )


def test_a_node_shares_noise_is_secret_unless_a_seed_is_fixed(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    start, digest = _start(tiny, ai_data)
    settings = PRIVATE.replace(privacy=None, max_steps=2)

    def digest_with(seed: int | None) -> str:
        share = NodeShare(policy=SHARE_POLICY, noise_seed=seed)
        return train_round(
            config(settings.replace(node_share=share)), tiny, ai_data, start, digest
        ).digest

    assert digest_with(5) == digest_with(5)
    assert digest_with(None) != digest_with(None)


def test_a_node_share_needs_the_start_adapter_its_shape_and_no_dp_sgd(
    tiny: LoadedModel, ai_data: NodeData
) -> None:
    share = NodeShare(policy=SHARE_POLICY)
    settings = PRIVATE.replace(privacy=None, node_share=share)
    with pytest.raises(ConfigError, match="start adapter"):
        train_round(config(settings), tiny, ai_data)
    start, digest = _start(tiny, ai_data)
    other_rank = NodeTrainConfig(
        task_id=1, round=1, node=NODE, peft=PeftSpec(rank=2, alpha=8.0), train=settings
    )
    with pytest.raises(ConfigError, match="rank and alpha"):
        train_round(other_rank, tiny, ai_data, start, digest)
    with pytest.raises(ConfigError, match="not both"):
        PRIVATE.replace(node_share=share)
    with pytest.raises(ConfigError, match="node-level policy"):
        NodeShare(policy=TaskPrivacy("example", 1.0, 1.0, 3.0, 1e-5))
