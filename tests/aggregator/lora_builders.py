"""Builders for the aggregation tests: random peft-shaped LoRA updates.

A plain module (not conftest) so test modules can import it by a name no other directory uses.
"""

from __future__ import annotations

import torch


def lora_tensors(
    seed: int,
    *,
    rank: int = 4,
    modules: tuple[tuple[str, int, int], ...] = (("q_proj", 12, 10), ("v_proj", 8, 10)),
    layers: int = 2,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """A peft LoRA state dict: ``lora_A`` ``[rank, in]``, ``lora_B`` ``[out, rank]``."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(layers):
        for name, out_features, in_features in modules:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{name}"
            tensors[f"{prefix}.lora_A.weight"] = (
                torch.randn(rank, in_features, generator=generator, dtype=torch.float64) * scale
            ).to(dtype)
            tensors[f"{prefix}.lora_B.weight"] = (
                torch.randn(out_features, rank, generator=generator, dtype=torch.float64) * scale
            ).to(dtype)
    return tensors


def addr(i: int) -> str:
    """A node address that sorts like ``i``."""
    return f"0x{i:040x}"
