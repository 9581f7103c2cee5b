"""``loraledger bench ...``: every area's command end to end, its tables and its refusals."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from loraledger.errors import ConfigError
from scripts.bench_cli import app, parse_counts

# --------------------------------------------------------------------------- aggregate


def _loraledger(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_quick_benchmark_prints_every_table_and_removes_its_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    completed = _loraledger("bench", "aggregate", "--quick", "--updates", "2,3", "--repeats", "1")
    assert completed.returncode == 0, completed.stderr
    for title in ("FedAvg in memory", "Streaming FedAvg from safetensors", "FlexLoRA"):
        assert title in completed.stdout
    assert list(tmp_path.iterdir()) == []  # the update files are gone


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("abc", "--updates must be comma-separated integers, got 'abc'"),
        ("0,8", "--updates must be positive counts, got '0,8'"),
        (",", "--updates must be positive counts, got ','"),
    ],
)
def testparse_counts_rejects_bad_update_counts_naming_them(bad, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_counts(bad)


def testparse_counts_sorts_and_deduplicates():
    assert parse_counts("64, 8,8") == [8, 64]


@pytest.mark.slow
def test_bad_update_counts_give_one_error_line_and_no_traceback():
    completed = _loraledger("bench", "aggregate", "--updates", "abc")
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: --updates must be comma-separated integers")
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
def test_gpu_flag_runs_on_cuda_or_refuses_clearly_without_it():
    completed = _loraledger(
        "bench", "aggregate", "--gpu", "--quick", "--updates", "2", "--repeats", "1"
    )
    if torch.cuda.is_available():
        assert completed.returncode == 0, completed.stderr
        assert "on cuda" in completed.stdout
    else:
        assert completed.returncode == 1
        assert "error: a GPU was requested but CUDA is not available" in completed.stderr
        assert "hint:" in completed.stderr
        assert "Traceback" not in completed.stderr


# --------------------------------------------------------------------------- load


@pytest.mark.slow
def test_load_prints_each_phase_and_writes_the_runs_json_and_readme(tmp_path):
    from bench.load import LoadResult

    completed = _loraledger(
        "bench", "load", "--nodes", "3", "--chain", "anvil", "--adapter", "tiny",
        "--workers", "3", "--out", str(tmp_path),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    for phase in ("join", "open", "commit", "reveal", "aggregate", "settle", "claim"):
        assert re.search(rf"^\s*{phase}\s", completed.stdout, re.M), completed.stdout
    result = LoadResult.from_json((tmp_path / "load-anvil-3-tiny.json").read_text())
    assert result.paid_once == 3 and result.command.startswith("loraledger bench load --nodes 3")
    assert "### anvil, tiny" in (tmp_path / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--chain", "embedded", "error: --chain must be ganache or anvil, got 'embedded'"),
        ("--adapter", "7b", "error: --adapter must be one of smollm2, small, tiny, got '7b'"),
    ],
)
def test_load_refuses_a_chain_or_adapter_it_cannot_run_before_starting_anything(
    option, value, message, tmp_path
):
    completed = _loraledger("bench", "load", "--nodes", "2", option, value, "--out", str(tmp_path))
    assert completed.returncode == 1
    assert completed.stderr.startswith(message), completed.stderr
    assert "Traceback" not in completed.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- train


@pytest.mark.slow
def test_bench_train_prints_both_paths_with_ratio_and_equal_losses() -> None:
    result = CliRunner().invoke(
        app, ["train", "--model", "tiny", "--steps", "3", "--repeats", "1"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    rows = [
        line
        for line in result.output.splitlines()
        if "plain peft loop" in line or "train_round" in line
    ]
    assert len(rows) == 2
    # columns: path, tokens, train s, tokens/s, call s, peak mem, last loss, ratio
    losses = {re.split(r"\s{2,}", row.strip())[6] for row in rows}
    assert len(losses) == 1  # same model, data, order and seed: the same maths


def test_bench_train_gpu_variant_refuses_clearly_without_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    result = CliRunner().invoke(app, ["train", "--gpu"])
    assert isinstance(result.exception, ConfigError)
    assert "needs a CUDA device" in str(result.exception)


@pytest.mark.slow
def test_bench_privacy_prints_both_paths_the_phases_and_what_costs_most() -> None:
    result = CliRunner().invoke(
        app, ["privacy", "--steps", "3", "--repeats", "1"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "train_round DP-SGD" in result.output and "clip + noise" in result.output
    assert re.search(r"DP-SGD runs at \d+\.\d+x the clear tokens/s", result.output)
    assert re.search(r"spent epsilon \d+\.\d+", result.output)


# --------------------------------------------------------------------------- all


def _ratios(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)x", line)]


@pytest.mark.slow
def test_bench_all_quick_writes_every_area_with_machine_and_ratios(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    result = CliRunner().invoke(
        app, ["all", "--quick", "--no-gpu", "--out", str(out)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = out.read_text()
    assert f"`loraledger bench all --quick --out {out} --no-gpu`" in text
    for heading in (
        "## Machine",
        "## Aggregation",
        "## Storage",
        "## Training",
        "## Gas",
        "## Round overhead of chain + IPFS",
    ):
        assert heading in text
    for item in (
        "| CPU |",
        "| cores |",
        "| RAM |",
        "| GPU |",
        "| torch |",
        "| peft |",
        "| web3 |",
        "| flwr |",
        "| python |",
        "| git commit |",
    ):
        assert item in text
    assert "not measured" not in text

    lines = text.splitlines()
    fedavg = [line for line in lines if re.match(r"\| [23] \| \d", line)]
    assert len(fedavg) >= 2  # 2 and 3 updates, in memory (and streamed)
    assert all(r > 0 for line in fedavg for r in _ratios(line))
    cid = next(line for line in lines if line.startswith("| CID of bytes (local) |"))
    assert "sha256" in cid and _ratios(cid)[0] > 0
    train = next(line for line in lines if line.startswith("| fp32 cpu |"))
    plain_loss, ours_loss = re.findall(r"(\d+\.\d{4}) / (\d+\.\d{4})", train)[0]
    assert plain_loss == ours_loss  # the same maths in both loops

    rounds = {
        int(m.group(1)): (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
        for m in re.finditer(r"^\| (\d+) \| ([\d,]+) \| [\d.]+x \| ([\d,]+) \|", text, re.MULTILINE)
    }
    assert set(rounds) == {1, 10}
    finalize_1, claim_1 = rounds[1]
    finalize_10, claim_10 = rounds[10]
    assert abs(finalize_10 - finalize_1) / finalize_1 < 0.01  # flat in N
    assert claim_10 > claim_1  # a longer Merkle proof

    # whole Flower rounds, 2 and 3 nodes, with the ledger and without: seconds and the share
    section = text.split("## Round overhead of chain + IPFS")[1].split("\n## ")[0]
    overhead = re.findall(
        r"^\| ([23]) \| ([\d.]+) \| ([\d.]+) \| ([+-][\d.]+) \| (-?[\d.]+)%", section, re.MULTILINE
    )
    assert [int(row[0]) for row in overhead] == [2, 3], section
    for _, plain, ledger, difference, share in overhead:
        assert float(plain) > 0 and float(ledger) > 0
        assert abs(float(ledger) - float(plain) - float(difference)) < 0.011
        # the share is computed before rounding: allow the seconds' rounding (+-0.005 s each)
        slack = (0.01 + 0.005 * abs(float(difference)) / float(ledger)) / float(ledger) + 0.0005
        assert abs(float(share) / 100 - float(difference) / float(ledger)) <= slack
    assert "Time per extra node:" in section and "--round-model smollm2" in section
