"""The incentives experiment end to end on the tiny model: the report and its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.incentives import IncentivesConfig, attacks_from, demo_runner, run
from loraledger.errors import ConfigError


@pytest.mark.slow
def test_the_free_rider_takes_the_pool_under_the_old_rule_and_nothing_under_the_new(
    tmp_path: Path,
) -> None:
    config = IncentivesConfig(honest=2, rounds=1, steps=2, attacks=("zero",), seeds=(0,))
    runner = demo_runner(True, tmp_path / "work")

    report = run(config, runner, tmp_path / "out", "loraledger experiment incentives ...")

    new, old = report.data["new/zero"]["per_seed"]["0"], report.data["old/zero"]["per_seed"]["0"]
    assert new["honest_share"] >= 0.95 and new["attackers_share"] == 0
    assert old["attackers_share"] > 0.9  # 100,000 claimed examples against a few hundred
    assert new["audit_ok"] and old["audit_ok"]
    # one seed: the figure is that run's, with no interval
    assert report.data["new/zero"]["attackers_share"] == {
        "mean": 0.0,
        "n": 1,
        "ci_low": None,
        "ci_high": None,
        "confidence": 0.95,
    }
    assert any(n.startswith("met: zero: honest nodes") for n in report.notes)
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["results"]["new/zero"]["per_seed"]["0"]["attackers_share"] == 0
    assert (tmp_path / "out" / "attackers_share.png").stat().st_size > 0


def test_only_attacks_on_the_pool_are_accepted() -> None:
    assert attacks_from("inflate,sybil") == ("inflate", "sybil")
    with pytest.raises(ConfigError, match="attack the model"):
        attacks_from("poison")
