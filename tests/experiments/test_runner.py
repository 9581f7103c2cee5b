"""The experiment runner on the tiny model: reusing a training gives exactly its results."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import ExperimentConfig


@pytest.mark.slow
def test_a_reused_training_gives_exactly_the_results_of_training_again(tmp_path: Path) -> None:
    from experiments.aggregation import homogeneous
    from experiments.config import load_model, node_shards, participants
    from experiments.runner import TrainingCache, run_federated

    config = ExperimentConfig(
        model="tiny", nodes=2, rounds=2, steps=2, max_length=64, eval_examples=4, examples=40
    )
    model = load_model(config, tmp_path)
    members = participants(config, node_shards(config))
    fresh = run_federated("fresh", model, config, members, homogeneous("fedavg"))
    cache = TrainingCache()
    first = run_federated("first", model, config, members, homogeneous("fedavg"), cache=cache)
    assert cache.hits == 0 and len(cache.entries) == 2 * 2
    again = run_federated("again", model, config, members, homogeneous("fedavg"), cache=cache)
    assert cache.hits == 2 * 2  # every training of the same global adapters is reused
    assert fresh.curve == first.curve == again.curve
    # another strategy shares round 1 only: its round-2 global adapter differs
    other = run_federated("median", model, config, members, homogeneous("median"), cache=cache)
    assert cache.hits == 2 * 2 + 2 and len(cache.entries) == 2 * 2 + 2
    assert other.curve[0] == fresh.curve[0] and other.curve[1] != fresh.curve[1]


@pytest.mark.slow
def test_personalization_starts_from_the_final_global_adapter(tmp_path: Path) -> None:
    from experiments.aggregation import homogeneous
    from experiments.config import load_model, node_shards, participants
    from experiments.runner import run_federated, run_personalized

    config = ExperimentConfig(
        model="tiny", nodes=2, rounds=1, steps=2, max_length=64, eval_examples=4, examples=40
    )
    model = load_model(config, tmp_path)
    members = participants(config, node_shards(config))
    fedavg = homogeneous("fedavg")
    federated = run_federated("federated", model, config, members, fedavg)

    kept = run_personalized(model, config, members, federated, fedavg, steps=0)
    assert kept.final == federated.final  # no fine-tune: each node keeps the global adapter
    assert kept.adapters == federated.adapters and kept.steps == 0

    tuned = run_personalized(model, config, members, federated, fedavg, steps=2)
    # each node's fine-tune measured the global adapter before training: it started there
    assert tuned.curve[0] == pytest.approx(federated.final, rel=1e-6)
    assert tuned.steps == 2 * 2 and tuned.last_round == config.rounds + 1
    assert tuned.final != federated.final  # and really trained on the node's own data
    assert len(set(tuned.adapters)) == 2  # one adapter per node, not a shared one
    assert all(a not in federated.adapters for a in tuned.adapters)
