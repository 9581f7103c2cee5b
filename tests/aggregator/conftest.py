"""Fixtures of the aggregation tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aggregator.client_update import ClientUpdate
from tests.aggregator.lora_builders import lora_tensors
from tests.support.chain import embedded, embedded_env, ganache_env, ganache_process  # noqa: F401
from tests.support.models import ai_data, sample, tiny, tiny_dir  # noqa: F401

UpdateFactory = Callable[..., ClientUpdate]


@pytest.fixture(scope="session")
def make_update() -> UpdateFactory:
    """``make_update(node, seed, num_examples=..., rank=..., alpha=..., **shape)``."""

    def build(
        node: str, seed: int, *, num_examples: int = 10, rank: int = 4, alpha: float = 8.0, **shape
    ) -> ClientUpdate:
        tensors = lora_tensors(seed, rank=rank, **shape)
        return ClientUpdate.in_memory(
            node, tensors, num_examples=num_examples, rank=rank, alpha=alpha
        )

    return build
