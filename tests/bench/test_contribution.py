"""The contribution-scoring benchmark on the tiny model: its points and ratios."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.contribution import Point, measure
from fl_node.data import sample_examples
from fl_node.model import ModelConfig, create_tiny_model, load_base_model


def test_a_point_reports_the_ratio_against_the_round_and_the_cost_per_node() -> None:
    point = Point(
        4, train_seconds=8.0, verify_seconds=1.5, score_seconds=2.5, aggregate_seconds=0.5
    )
    assert point.ratio == pytest.approx(0.25)
    assert point.score_per_node == pytest.approx(0.625)
    assert point.to_json()["target_ratio"] == 0.25


@pytest.mark.slow
def test_scoring_is_measured_in_the_same_round_as_its_baseline(tmp_path: Path) -> None:
    corpus = [m.content for e in sample_examples() for m in e.messages]
    model = load_base_model(ModelConfig(source=str(create_tiny_model(tmp_path / "m", corpus))))

    points = measure([1, 3], model, steps=1, validation_examples=8, tiny=True)

    assert [p.nodes for p in points] == [1, 3]
    for p in points:
        # scoring's cost is a difference of two timings of the same sheet (with and without
        # the contribution rule): on a loaded machine a small one can come out as 0, never less
        assert p.train_seconds > 0 and p.verify_seconds > 0 and p.score_seconds >= 0
        assert 0 <= p.ratio < 10
