from __future__ import annotations

import numpy as np
import pytest
import torch

from aggregator.server_opt import FedAdam, FedAvgM, FedYogi, load_state, save_state
from loraledger.errors import ConfigError, StorageError
from tests.aggregator.lora_builders import lora_tensors


def _numpy_rounds(name: str, x0: dict, aggregates: list[dict], **hp) -> dict[str, np.ndarray]:
    """Independent reference: the paper's update rules, element-wise in float64 numpy."""
    x = {k: v.double().numpy().copy() for k, v in x0.items()}
    m = {k: np.zeros_like(v) for k, v in x.items()}
    v = {
        k: (np.zeros_like(x[k]) if name == "fedavgm" else np.full_like(x[k], hp.get("tau", 0) ** 2))
        for k in x
    }
    for aggregate in aggregates:
        for key in x:
            d = aggregate[key].double().numpy() - x[key]
            if name == "fedavgm":
                v[key] = hp["momentum"] * v[key] + d
                x[key] = x[key] + hp["server_lr"] * v[key]
                continue
            m[key] = hp["beta1"] * m[key] + (1 - hp["beta1"]) * d
            if name == "fedadam":
                v[key] = hp["beta2"] * v[key] + (1 - hp["beta2"]) * d**2
            else:
                v[key] = v[key] - (1 - hp["beta2"]) * d**2 * np.sign(v[key] - d**2)
            x[key] = x[key] + hp["server_lr"] * m[key] / (np.sqrt(v[key]) + hp["tau"])
    return x


OPTIMIZERS = [
    (FedAvgM, {"server_lr": 0.7, "momentum": 0.9}),
    (FedAdam, {"server_lr": 0.05, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}),
    (FedYogi, {"server_lr": 0.05, "beta1": 0.8, "beta2": 0.95, "tau": 1e-2}),
]


@pytest.mark.parametrize(("optimizer_class", "hyperparameters"), OPTIMIZERS)
def test_three_rounds_equal_a_numpy_reference(optimizer_class, hyperparameters):
    optimizer = optimizer_class(**hyperparameters)
    x = lora_tensors(0)
    aggregates = [lora_tensors(seed) for seed in (1, 2, 3)]
    state = None
    current = x
    for aggregate in aggregates:
        current, state = optimizer.step(current, aggregate, state)
    expected = _numpy_rounds(optimizer.name, x, aggregates, **hyperparameters)
    assert state.step == 3
    for key, value in expected.items():
        np.testing.assert_allclose(current[key].numpy(), value, rtol=1e-4, atol=1e-5)


def test_fedavgm_without_momentum_and_unit_rate_returns_the_aggregate():
    x, aggregate = lora_tensors(0), lora_tensors(1)
    new_global, _ = FedAvgM(server_lr=1.0, momentum=0.0).step(x, aggregate)
    for key in x:
        torch.testing.assert_close(new_global[key], aggregate[key])


@pytest.mark.parametrize(("optimizer_class", "hyperparameters"), OPTIMIZERS)
def test_saved_state_resumes_to_the_same_bits_as_an_uninterrupted_run(
    tmp_path, optimizer_class, hyperparameters
):
    optimizer = optimizer_class(**hyperparameters)
    x, first, second = lora_tensors(0), lora_tensors(1), lora_tensors(2)
    after_one, state = optimizer.step(x, first)
    uninterrupted, _ = optimizer.step(after_one, second, state)
    path = tmp_path / "state.safetensors"
    save_state(state, optimizer, path)
    assert path.read_bytes()[8:].lstrip().startswith(b"{")  # safetensors header, not a pickle
    resumed_state = load_state(path, optimizer)
    assert resumed_state.step == 1
    resumed, _ = optimizer.step(after_one, second, resumed_state)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in x)


def test_load_state_refuses_another_optimizer_or_other_settings(tmp_path):
    path = tmp_path / "state.safetensors"
    _, state = FedAdam().step(lora_tensors(0), lora_tensors(1))
    save_state(state, FedAdam(), path)
    with pytest.raises(ConfigError, match="holds fedadam state, not fedyogi"):
        load_state(path, FedYogi())
    with pytest.raises(ConfigError, match="was written with"):
        load_state(path, FedAdam(server_lr=0.5))
    with pytest.raises(ConfigError, match="state belongs to fedadam, not fedyogi"):
        FedYogi().step(lora_tensors(0), lora_tensors(1), state)


def test_load_state_refuses_a_file_that_is_not_a_state(tmp_path):
    path = tmp_path / "state.safetensors"
    path.write_bytes(b"not safetensors at all")
    with pytest.raises(StorageError, match="cannot read server optimizer state"):
        load_state(path, FedAdam())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FedAvgM(momentum=1.0), r"fedavgm momentum must be in \[0, 1\), got 1.0"),
        (lambda: FedAdam(server_lr=0.0), "fedadam server_lr must be positive, got 0.0"),
        (lambda: FedYogi(beta2=1.5), r"fedyogi beta2 must be in \[0, 1\), got 1.5"),
        (lambda: FedAdam(tau=float("inf")), "fedadam tau must be finite, got inf"),
    ],
)
def test_optimizer_settings_are_validated_naming_the_value(build, message):
    with pytest.raises(ConfigError, match=message):
        build()
