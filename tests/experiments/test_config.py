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
