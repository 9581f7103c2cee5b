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


@pytest.mark.slow
def test_fl_vs_local_trains_three_ways_and_writes_tables_json_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "fl"
    _run("fl-vs-local", *TINY, "--nodes", "3", "--examples", "90", "--out", str(out))
    payload = _results(out, "fl-vs-local")
    results = payload["results"]
    for label in ("federated", "local", "centralized"):
        _check_run(results[label], nodes=3, rounds=2)
        assert results[label]["steps"] == 3 * 2 * 2  # the same total optimizer steps
    # round 0 is the untouched base model on the same held-out sets: identical for all three
    base = results["federated"]["curve"][0]
    assert results["local"]["curve"][0] == base
    assert results["centralized"]["curve"][0] == pytest.approx(base, rel=1e-6)
    # training moved every approach away from the base model
    assert results["federated"]["curve"][-1] != base
    assert set(results["claims"]) == {
        "federated_mean_below_local",
        "federated_std_below_local",
        "centralized_min_lowest",
    }
    markdown = (out / "results.md").read_text()
    assert "| federated |" in markdown and "| centralized |" in markdown
    assert markdown.count("with the claim") == 3


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
        _check_run(results[str(n)], nodes=n, rounds=1)
    # the same examples, split over more nodes: fewer per node
    assert results["3"]["train_examples_per_node"] < results["2"]["train_examples_per_node"]


@pytest.mark.slow
def test_ranks_experiment_compares_flexlora_zero_padding_and_smallest_rank(tmp_path: Path) -> None:
    out = tmp_path / "ranks"
    _run("ranks", *TINY, "--ranks", "2,4", "--nodes", "2", "--examples", "60", "--out", str(out))
    payload = _results(out, "ranks")
    assert payload["config"]["rank_per_node"] == [2, 4]
    results = payload["results"]
    assert set(results) == {"FlexLoRA", "zero-padding", "all at rank 2"}
    for run in results.values():
        _check_run(run, nodes=2, rounds=2)
    # different aggregation of the same first-round updates gives different global models
    assert results["FlexLoRA"]["curve"][-1] != results["zero-padding"]["curve"][-1]


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
        _check_run(run, nodes=honest, rounds=1)
    honest_nodes = results["fedavg/1"]["nodes"]
    assert "node-04" not in honest_nodes  # the last node is the poisoned one
    clean = sum(results["fedavg/0"]["final"][n] for n in honest_nodes) / len(honest_nodes)
    assert results["fedavg/1"]["mean"] > clean  # the poison hurts the honest nodes under FedAvg
    assert results["median/1"]["mean"] < results["fedavg/1"]["mean"]


def test_quantization_refuses_clearly_without_cuda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    result = CliRunner().invoke(app, ["quantization", "--tiny", "--out", str(tmp_path / "q")])
    assert isinstance(result.exception, ConfigError)
    assert "needs a CUDA GPU" in str(result.exception)
    assert not (tmp_path / "q").exists()
