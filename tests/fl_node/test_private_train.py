"""Example-level DP-SGD on the tiny model: true per-example gradients of the LoRA factors, the
round's privacy record, seeded determinism, empty Poisson samples, and the settings it refuses."""

from __future__ import annotations

import pytest
import torch

from fl_node.data import NodeData
from fl_node.model import LoadedModel
from fl_node.train import (
    ExampleDP,
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
from loraledger.privacy import Stretch, epsilon
from loraledger.update import PeftSpec, parse_update
from tests.fl_node.test_train import NODE, base_weights

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
