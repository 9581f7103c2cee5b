"""``loraledger experiment ...``: every experiment end to end on the tiny model (real training,
real aggregation, the platform's update format), its files, and the refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from loraledger.errors import ConfigError
from loraledger.paths import REPO_ROOT
from scripts.experiment_cli import app

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--tiny", "--max-length", "64", "--eval-examples", "4", "--rounds", "2", "--steps", "2"]


def _run(*arguments: str) -> None:
    result = CliRunner().invoke(app, list(arguments), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)


def _results(folder: Path, experiment: str) -> dict:
    payload = json.loads((folder / "results.json").read_text())
    assert payload["experiment"] == experiment
    assert payload["command"].startswith(f"loraledger experiment {experiment} --tiny")
    markdown = (folder / "results.md").read_text()
    assert payload["command"] in markdown  # the exact command is in the table's file
    assert "## Configuration" in markdown
    for plot in payload["plots"]:
        assert (folder / plot).read_bytes().startswith(PNG)
        assert f"]({plot})" in markdown
    assert payload["plots"]
    return payload


def _check_run(run: dict, nodes: int, rounds: int) -> None:
    assert len(run["curve"]) == rounds + 1
    assert all(len(row) == nodes for row in run["curve"])
    values = [v for row in run["curve"] for v in row] + [run["mean"], run["std"], run["min"]]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert run["min"] <= run["mean"] <= run["max"]
    assert list(run["final"].values()) == run["curve"][-1]


def _check_seeded(seeded: dict, seeds: list[int], nodes: int, rounds: int) -> None:
    """Every seed's raw run is kept, and each figure is their mean with an interval."""
    assert seeded["seeds"] == seeds and list(seeded["per_seed"]) == [str(s) for s in seeds]
    for run in seeded["per_seed"].values():
        _check_run(run, nodes, rounds)
    for figure in ("mean", "std", "min", "max"):
        per_seed = [run[figure] for run in seeded["per_seed"].values()]
        summary = seeded[figure]
        assert summary["mean"] == pytest.approx(sum(per_seed) / len(per_seed))
        assert summary["n"] == len(seeds)
        if len(seeds) == 1:
            assert summary["ci_low"] is None and summary["ci_high"] is None
        else:
            assert summary["ci_low"] <= summary["mean"] <= summary["ci_high"]
    assert len(seeded["mean_curve"]) == rounds + 1


@pytest.mark.slow
def test_fl_vs_local_over_two_seeds_scores_four_approaches_on_own_and_pooled_sets(
    tmp_path: Path,
) -> None:
    out = tmp_path / "fl"
    _run(
        "fl-vs-local",
        *TINY,
        "--rounds",
        "1",
        "--nodes",
        "2",
        "--examples",
        "60",
        "--seeds",
        "0,1",
        "--pooled-examples",
        "8",
        "--personalize-steps",
        "2",
        "--out",
        str(out),
    )
    payload = _results(out, "fl-vs-local")
    assert "--seeds 0,1" in payload["command"] and "--pooled-examples 8" in payload["command"]
    assert payload["config"]["seeds"] == [0, 1]
    own, pooled = payload["results"]["own"], payload["results"]["pooled"]
    approaches = ["federated", "local", "centralized", "personalized"]
    assert list(own) == list(pooled) == approaches
    for label in ("federated", "local", "centralized"):
        _check_seeded(own[label], [0, 1], nodes=2, rounds=1)
        assert own[label]["per_seed"]["0"]["steps"] == 2 * 1 * 2  # the same total steps
    _check_seeded(own["personalized"], [0, 1], nodes=2, rounds=1)  # start, then fine-tuned
    for label in approaches:
        _check_seeded(pooled[label], [0, 1], nodes=2, rounds=1)  # base model, then final
    for seed in ("0", "1"):
        fed, local = own["federated"]["per_seed"][seed], own["local"]["per_seed"][seed]
        central = own["centralized"]["per_seed"][seed]
        personal = own["personalized"]["per_seed"][seed]
        # round 0 is the untouched base model on the same held-out sets for every approach
        assert local["curve"][0] == fed["curve"][0]
        assert central["curve"][0] == pytest.approx(fed["curve"][0], rel=1e-6)
        # personalization starts from the final global adapter, then trains 2 steps per node
        assert personal["curve"][0] == pytest.approx(fed["curve"][-1], rel=1e-6)
        assert personal["curve"][-1] != fed["curve"][-1] and personal["steps"] == 2 * 2
        # one shared model scores one number on the pooled set
        assert len(set(pooled["federated"]["per_seed"][seed]["curve"][-1])) == 1
    # the seeds are different runs, not one run twice
    fed_runs = own["federated"]["per_seed"]
    assert fed_runs["0"]["curve"] != fed_runs["1"]["curve"]
    claims = payload["results"]["claims"]
    assert set(claims["own"]) == {
        "federated_mean_below_local",
        "federated_std_below_local",
        "centralized_min_lowest",
        "personalized_mean_below_federated",
        "personalized_mean_below_local",
    }
    assert set(claims["pooled"]) == set(claims["own"]) - {"federated_std_below_local"}
    for claim in (*claims["own"].values(), *claims["pooled"].values()):
        assert isinstance(claim["holds"], bool) and isinstance(claim["intervals_separate"], bool)
    markdown = (out / "results.md").read_text()
    assert "## Eval loss across the nodes' own held-out splits" in markdown
    assert "## Eval loss on the pooled test set (8 examples" in markdown
    assert "| personalized |" in markdown and " ± " in markdown
    assert markdown.count("with the claim") == 5 + 4
    assert "significant at 95%" in markdown
    assert "On the pooled test set:" in markdown


@pytest.mark.slow
def test_one_seed_reports_no_interval_and_seed_still_works(tmp_path: Path) -> None:
    out = tmp_path / "fl"
    _run(
        "fl-vs-local",
        *TINY,
        "--rounds",
        "1",
        "--nodes",
        "2",
        "--examples",
        "40",
        "--seed",
        "3",
        "--pooled-examples",
        "4",
        "--personalize-steps",
        "0",
        "--out",
        str(out),
    )
    payload = _results(out, "fl-vs-local")
    assert "--seeds 3" in payload["command"]
    own = payload["results"]["own"]
    _check_seeded(own["federated"], [3], nodes=2, rounds=1)
    # no fine-tune: each node keeps the global adapter
    personal = own["personalized"]["per_seed"]["3"]
    assert personal["final"] == own["federated"]["per_seed"]["3"]["final"]
    markdown = (out / "results.md").read_text()
    assert "(no CI: 1 seed)" in markdown and " ± " not in markdown
    assert "one seed: no interval, significance unknown" in markdown


@pytest.mark.slow
def test_nodes_experiment_runs_every_node_count_over_the_same_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = REPO_ROOT / "docs" / "results" / "nodes" / "results.json"
    before = committed.read_bytes()
    monkeypatch.chdir(tmp_path)  # no --out: results/nodes/ here, the committed figures untouched
    _run("nodes", *TINY, "--counts", "2,3", "--examples", "60", "--rounds", "1")
    out = tmp_path / "results" / "nodes"
    assert committed.read_bytes() == before
    results = _results(out, "nodes")["results"]
    assert set(results) == {"2", "3"}
    for n in (2, 3):
        _check_seeded(results[str(n)], [0], nodes=n, rounds=1)
    # the same examples, split over more nodes: fewer per node
    assert results["3"]["train_examples_per_node"] < results["2"]["train_examples_per_node"]


@pytest.mark.slow
def test_ranks_experiment_compares_flexlora_zero_padding_and_smallest_rank(tmp_path: Path) -> None:
    out = tmp_path / "ranks"
    _run(
        "ranks",
        *TINY,
        "--ranks",
        "2,4",
        "--nodes",
        "2",
        "--examples",
        "60",
        "--seeds",
        "0,1",
        "--out",
        str(out),
    )
    payload = _results(out, "ranks")
    assert payload["config"]["rank_per_node"] == [2, 4]
    results = payload["results"]
    assert set(results) == {"FlexLoRA", "zero-padding", "all at rank 2"}
    for run in results.values():
        _check_seeded(run, [0, 1], nodes=2, rounds=2)
    # different aggregation of the same first-round updates gives different global models
    for seed in ("0", "1"):
        flex = results["FlexLoRA"]["per_seed"][seed]
        padded = results["zero-padding"]["per_seed"][seed]
        assert flex["curve"][-1] != padded["curve"][-1]


@pytest.mark.slow
def test_robustness_poisoned_node_hurts_fedavg_and_the_median_resists(tmp_path: Path) -> None:
    out = tmp_path / "robust"
    _run(
        "robustness",
        *TINY,
        "--nodes",
        "5",
        "--poisoned",
        "0,1",
        "--examples",
        "100",
        "--rounds",
        "1",
        "--attack",
        "sign-flip",
        "--attack-factor",
        "100",
        "--out",
        str(out),
    )
    results = _results(out, "robustness")["results"]
    assert len(results) == 5 * 2
    for key, run in results.items():
        honest = 5 - int(key.split("/")[1])
        _check_seeded(run, [0], nodes=honest, rounds=1)
    fedavg_1 = results["fedavg/1"]["per_seed"]["0"]
    fedavg_0 = results["fedavg/0"]["per_seed"]["0"]
    honest_nodes = fedavg_1["nodes"]
    assert "node-04" not in honest_nodes  # the last node is the poisoned one
    clean = sum(fedavg_0["final"][n] for n in honest_nodes) / len(honest_nodes)
    assert fedavg_1["mean"] > clean  # the poison hurts the honest nodes under FedAvg
    assert results["median/1"]["mean"]["mean"] < results["fedavg/1"]["mean"]["mean"]


def test_quantization_refuses_clearly_without_cuda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    result = CliRunner().invoke(app, ["quantization", "--tiny", "--out", str(tmp_path / "q")])
    assert isinstance(result.exception, ConfigError)
    assert "needs a CUDA GPU" in str(result.exception)
    assert not (tmp_path / "q").exists()
