"""Experiment configuration: bad settings are refused, naming the value."""

from __future__ import annotations

import pytest

from experiments.config import ExperimentConfig
from loraledger.errors import ConfigError


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"nodes": 0}, "nodes must be positive, got 0"),
        ({"learning_rate": -1.0}, "learning rate must be positive, got -1.0"),
        ({"split": "random"}, "split must be iid, label or dirichlet, got 'random'"),
        ({"nodes": 4, "examples": 5}, "5 examples cannot give 4 nodes"),
    ],
)
def test_config_rejects_bad_settings_naming_them(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig(**settings)


def test_pooled_test_set_shares_no_example_with_any_node_and_is_seeded() -> None:
    from experiments.config import split_data

    config = ExperimentConfig(nodes=3, examples=200, pooled_examples=24, seeds=(1,))
    split = split_data(config)
    assert len(split.pooled) == len(set(split.pooled)) == 24
    node_examples = {e for data in split.nodes for e in (*data.train, *data.eval)}
    assert not node_examples & set(split.pooled)  # not even a repeated Q/A pair
    # the pooled set spans several nodes' topics, not one node's
    assert len({e.label for e in split.pooled}) > 1
    assert split_data(config).pooled == split.pooled
    assert split_data(config.for_seed(2)).pooled != split.pooled


def test_seeds_must_be_distinct_and_a_run_uses_its_one_seed() -> None:
    config = ExperimentConfig(seeds=(3, 5))
    assert config.seed == 3 and config.for_seed(5).seeds == (5,)
    with pytest.raises(ConfigError, match="seeds must be distinct"):
        ExperimentConfig(seeds=(1, 1))
