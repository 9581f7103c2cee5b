"""The privacy experiment: ROC maths on hand-made scores, noise multipliers that spend their
epsilon, a DP run on the tiny model whose noise really changes the global adapter, and the
command line's refusals."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.config import ExperimentConfig
from experiments.privacy import (
    Condition,
    PrivacySettings,
    Roc,
    attack_scores,
    conditions,
    epsilons_from,
    noise_seed,
    private_config,
    roc,
)
from fl_node.train import privacy_record
from loraledger.errors import ConfigError
from loraledger.privacy import Stretch, epsilon

# --------------------------------------------------------------------------- ROC maths


def test_perfect_separation_gives_auc_1_and_full_tpr_at_every_fpr() -> None:
    curve = roc([0.9, 0.8, 0.7], [0.3, 0.2, 0.1, 0.0])
    assert curve.auc == 1.0
    assert curve.tpr_at(0.0) == 1.0 and curve.tpr_at(0.01) == 1.0
    assert curve.advantage == 1.0
    inverted = roc([0.3, 0.2], [0.9, 0.8])  # members always score lower: the worst attack
    assert inverted.auc == 0.0 and inverted.tpr_at(0.01) == 0.0 and inverted.advantage == 0.0


def test_identical_distributions_give_auc_near_one_half() -> None:
    same = roc([0.5] * 10, [0.5] * 10)  # one tied threshold: the diagonal
    assert same.auc == 0.5 and same.advantage == 0.0
    assert same.fpr == (0.0, 1.0) and same.tpr == (0.0, 1.0)
    draw = random.Random(7)
    members = [draw.gauss(0, 1) for _ in range(4000)]
    others = [draw.gauss(0, 1) for _ in range(4000)]
    curve = roc(members, others)
    assert curve.auc == pytest.approx(0.5, abs=0.02)
    assert curve.tpr_at(0.10) == pytest.approx(0.10, abs=0.02)
    assert curve.advantage < 0.05


def test_a_small_case_worked_by_hand() -> None:
    # members 0.9, 0.6; non-members 0.7, 0.2. Pairs member > non-member: (0.9, 0.7),
    # (0.9, 0.2), (0.6, 0.2) of 4 -> AUC 3/4. Thresholds 0.9, 0.7, 0.6, 0.2 give
    # (FPR, TPR) = (0, 1/2), (1/2, 1/2), (1/2, 1), (1, 1).
    curve = roc([0.9, 0.6], [0.7, 0.2])
    assert curve == Roc((0.0, 0.0, 0.5, 0.5, 1.0), (0.0, 0.5, 0.5, 1.0, 1.0), 0.75)
    assert curve.tpr_at(0.01) == 0.5 and curve.tpr_at(0.10) == 0.5 and curve.tpr_at(0.5) == 1.0
    assert curve.advantage == 0.5
    # ties count a half: members 1, 1 vs non-members 1, 0 -> (0.5 + 1 + 0.5 + 1) / 4
    tied = roc([1.0, 1.0], [1.0, 0.0])
    assert tied.auc == 0.75 and tied.fpr == (0.0, 0.5, 1.0) and tied.tpr == (0.0, 1.0, 1.0)


def test_roc_refuses_empty_or_non_finite_scores() -> None:
    with pytest.raises(ConfigError):
        roc([], [0.1])
    with pytest.raises(ConfigError):
        roc([math.nan], [0.1])


def test_attack_scores_are_minus_loss_and_the_drop_from_the_base_model() -> None:
    assert attack_scores("loss", [1.0, 2.5], [3.0, 3.0]) == [-1.0, -2.5]
    assert attack_scores("reference", [1.0, 2.5], [3.0, 2.0]) == [2.0, -0.5]
    with pytest.raises(ConfigError):
        attack_scores("lira", [1.0], [1.0])


# --------------------------------------------------------------------------- settings


def _tiny(**changes: object) -> ExperimentConfig:
    base: dict[str, object] = {
        "model": "tiny",
        "nodes": 2,
        "rounds": 2,
        "steps": 2,
        "max_length": 64,
        "split": "iid",
        "examples": 200,
        "seeds": (0,),
    }
    return ExperimentConfig(**{**base, **changes})


def test_each_noise_multiplier_spends_its_epsilon_over_the_nodes_whole_participation() -> None:
    config = _tiny(rounds=3, steps=5, batch_size=4)
    settings = PrivacySettings(epsilons=(8.0, 1.0, 3.0), members=16)
    runs = conditions(config, settings, settings.members)
    assert [c.target for c in runs] == [1.0, 3.0, 8.0, None]  # most private first, then no DP
    sigmas = [c.noise_multiplier for c in runs[:-1]]
    assert all(s is not None for s in sigmas)
    assert sigmas == sorted(sigmas, reverse=True)  # less epsilon, more noise
    for condition in runs[:-1]:
        target, sigma = condition.target, condition.noise_multiplier
        assert target is not None and sigma is not None
        assert condition.sample_rate == 4 / 16 and condition.steps == 15
        spent = epsilon([Stretch(sigma, 4 / 16, 15)], settings.delta, "rdp")
        assert spent <= target * 1.0001 and spent >= target - 0.05
        assert condition.spent == pytest.approx(spent)
        # what a node's rounds record in their updates composes to the same epsilon
        dp_config = private_config(config, settings, condition)
        round_settings = dp_config.train_settings(config.steps, 1000)
        record = privacy_record(round_settings, settings.members, config.steps)
        assert record is not None and record.noise_multiplier == sigma
        per_round = [Stretch(sigma, record.sample_rate, record.steps)] * config.rounds
        assert epsilon(per_round, settings.delta, "rdp") == pytest.approx(spent, rel=1e-6)
    assert runs[-1].noise_multiplier is None
    assert private_config(config, settings, runs[-1]).train_settings(2, 0).privacy is None


def test_noise_seeds_are_fixed_per_seed_node_and_round() -> None:
    config = _tiny()
    settings = PrivacySettings(epsilons=(3.0,), members=8)
    private = private_config(config, settings, conditions(config, settings, 8)[0])
    seeds = {
        (s, r, i): private.for_seed(s).train_settings(2, s + 1000 * r + i).privacy
        for s in (0, 1)
        for r in (1, 2)
        for i in (0, 1)
    }
    noise = {key: dp.noise_seed for key, dp in seeds.items() if dp is not None}
    assert len(noise) == 8 and len(set(noise.values())) == 8  # distinct per (seed, round, node)
    # seed 1's node 0 and seed 0's node 1 share a training seed (1001) but not a noise seed
    assert noise[(1, 1, 0)] != noise[(0, 1, 1)]
    assert noise[(0, 1, 1)] == noise_seed(0, 1001)  # and it is the same on every call


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,3", "every epsilon must be positive"),
        ("-1", "every epsilon must be positive"),
        ("", "at least one target epsilon"),
        ("1,x", "comma-separated numbers"),
        ("inf", "every epsilon must be positive and finite"),
        ("3,3", "distinct"),
    ],
)
def test_bad_epsilons_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        epsilons_from(text)


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, 2.0])
def test_a_delta_outside_0_1_is_refused(delta: float) -> None:
    with pytest.raises(ConfigError, match=r"delta must be in \(0, 1\)"):
        PrivacySettings(delta=delta)


# --------------------------------------------------------------------------- runs


@pytest.mark.slow
def test_fixed_noise_seeds_make_a_dp_run_reproducible_and_the_noise_changes_it(
    tmp_path: Path,
) -> None:
    from experiments.aggregation import homogeneous
    from experiments.config import load_model, participants
    from experiments.privacy import membership_split
    from experiments.runner import run_federated

    config = _tiny(eval_examples=6)
    settings = PrivacySettings(epsilons=(1.0,), members=6)
    model = load_model(config, tmp_path)
    shards, _ = membership_split(model, config, settings.members)
    members = participants(config, shards)
    assert all(len(m.data.train) == len(m.data.eval) == 6 for m in members)
    trained = {e for m in members for e in m.data.train}
    assert not trained & {e for m in members for e in m.data.eval}  # no member held out
    private, clear = conditions(config, settings, settings.members)
    fedavg = homogeneous("fedavg")

    def final(condition: Condition) -> bytes:
        run_config = private_config(config, settings, condition)
        return run_federated("x", model, run_config, members, fedavg).adapters[0]

    first, again, without = final(private), final(private), final(clear)
    assert first == again  # same noise seeds: the same global adapter
    assert first != without  # DP-SGD's clipping and noise changed what was learnt


@pytest.mark.slow
def test_a_run_writes_finite_figures_for_every_epsilon_and_its_dp_runs_used_noise(
    tmp_path: Path,
) -> None:
    from experiments import privacy

    config = _tiny(seeds=(0, 1), pooled_examples=8)
    settings = PrivacySettings(epsilons=(1.0, 8.0), members=6)
    out = tmp_path / "out"
    report = privacy.run(config, settings, out, "loraledger experiment privacy --tiny")
    assert {p.name for p in out.iterdir()} == {"results.md", "results.json", "privacy_utility.png"}
    md = (out / "results.md").read_text()
    assert "loraledger experiment privacy --tiny" in md
    assert "| epsilon | noise multiplier | eval loss | attack | AUC | TPR@1% FPR |" in md
    assert len(report.tables[0].rows) == 3 * 2  # (1, 8, no DP) x (loss, reference)

    def no_nan(text: str) -> float:
        raise AssertionError(f"{text} in results.json")

    data = json.loads((out / "results.json").read_text(), parse_constant=no_nan)["results"]
    keys = [c["key"] for c in data["conditions"]]
    assert keys == ["1", "8", "no DP"]
    for condition in data["conditions"]:
        assert math.isfinite(condition["eval_loss"]["mean"])
        assert math.isfinite(condition["pooled_loss"]["mean"])
        for attack in ("loss", "reference"):
            figures = condition["attacks"][attack]
            for name in ("auc", "tpr_1", "tpr_10", "advantage"):
                assert 0.0 <= figures[name]["mean"] <= 1.0
                assert figures[name]["n"] == 2 and figures[name]["ci_low"] is not None
    one, eight, clear = data["conditions"]
    assert one["noise_multiplier"] > eight["noise_multiplier"] > 0
    assert clear["noise_multiplier"] is None and clear["spent_epsilon"] is None
    assert one["spent_epsilon"] <= 1.0001 and eight["spent_epsilon"] <= 8.0008
    for seed in ("0", "1"):
        runs = data["per_seed"][seed]["conditions"]
        digests = {key: runs[key]["global_adapter_sha256"] for key in keys}
        assert len(set(digests.values())) == 3  # each DP run's noise gave another adapter
        for key in keys:
            losses = runs[key]["example_losses"]
            assert len(losses["members"]) == len(losses["nonmembers"]) == 2 * 6


# --------------------------------------------------------------------------- the command


def _loraledger(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", "experiment", "privacy", "--tiny", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--epsilons", "0"), "error: every epsilon must be positive and finite, got 0"),
        (("--epsilons", ","), "error: --epsilons needs at least one target epsilon, got ','"),
        (("--delta", "1"), "error: delta must be in (0, 1), got 1"),
    ],
)
def test_the_command_refuses_bad_input_with_one_error_line(
    tmp_path: Path, arguments: tuple[str, ...], message: str
) -> None:
    completed = _loraledger(tmp_path, *arguments, "--out", str(tmp_path / "out"))
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert lines == [message], completed.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_the_command_is_declared_with_its_options() -> None:
    from typer.testing import CliRunner

    from scripts.experiment_cli import app

    result = CliRunner().invoke(app, ["privacy", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--epsilons", "--delta", "--members", "--seeds", "--out", "--model"):
        assert option in result.output
    assert "Membership inference" in result.output
