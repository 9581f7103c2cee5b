"""Aggregates are peft LoRA state dicts: they load into a real (tiny) Llama with peft."""

from __future__ import annotations

import numpy as np
import torch
from peft import (
    LoraConfig,
    PeftModel,
    get_peft_model,
    get_peft_model_state_dict,
    set_peft_model_state_dict,
)
from transformers import LlamaConfig, LlamaForCausalLM

from aggregator.client_update import ClientUpdate
from aggregator.flexlora import RankTarget, flexlora
from aggregator.strategies import fedavg
from tests.aggregator.lora_builders import addr

MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]


def _base() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    return LlamaForCausalLM(config).eval()


def _peft(rank: int, alpha: float):
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=MODULES, lora_dropout=0.0)
    return get_peft_model(_base(), config)


def _node_update(node: str, seed: int, rank: int, alpha: float, examples: int) -> ClientUpdate:
    """A node's adapter: peft's own state dict, with B made non-zero as training would."""
    model = _peft(rank, alpha)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    return ClientUpdate.in_memory(node, state, num_examples=examples, rank=rank, alpha=alpha)


def _merged_delta(model, module: str) -> np.ndarray:
    """The weight change peft applies to one module, read back from the merged model."""
    base = dict(_base().named_parameters())[f"model.{module}.weight"]
    merged = dict(model.merge_and_unload().named_parameters())[f"model.{module}.weight"]
    return (merged - base).detach().double().numpy()


def test_fedavg_of_peft_adapters_loads_back_into_peft_and_saves_as_a_peft_folder(tmp_path):
    updates = [_node_update(addr(i), i, 4, 8.0, 10 * (i + 1)) for i in range(3)]
    result = fedavg(updates)
    model = _peft(4, 8.0)
    outcome = set_peft_model_state_dict(model, result.tensors)
    assert not [k for k in outcome.missing_keys if "lora_" in k]
    assert not outcome.unexpected_keys
    model.save_pretrained(tmp_path / "global")
    reloaded = PeftModel.from_pretrained(_base(), tmp_path / "global")
    tokens = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(tokens).logits, model(tokens).logits)
    reloaded_state = get_peft_model_state_dict(reloaded)
    for key, value in result.tensors.items():
        torch.testing.assert_close(reloaded_state[key], value)


def test_flexlora_adapter_applies_the_truncated_full_delta_inside_peft():
    updates = [
        _node_update(addr(0), 0, 2, 4.0, 10),
        _node_update(addr(1), 1, 4, 16.0, 20),
        _node_update(addr(2), 2, 8, 8.0, 30),
    ]
    target = RankTarget(4, 8.0)
    adapter = flexlora(updates, [target]).adapters[target]
    model = _peft(target.rank, target.alpha)
    set_peft_model_state_dict(model, adapter)
    module = "layers.1.self_attn.v_proj"
    total = sum(u.num_examples for u in updates)
    full = 0
    for update in updates:
        tensors = update.load()
        b = tensors[f"base_model.model.model.{module}.lora_B.weight"].double().numpy()
        a = tensors[f"base_model.model.model.{module}.lora_A.weight"].double().numpy()
        full = full + update.num_examples / total * update.scaling * b @ a
    u, s, vh = np.linalg.svd(full, full_matrices=False)
    expected = (u[:, :4] * s[:4]) @ vh[:4]
    np.testing.assert_allclose(_merged_delta(model, module), expected, atol=1e-4)
