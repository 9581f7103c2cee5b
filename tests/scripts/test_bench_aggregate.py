from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from loraledger.errors import ConfigError
from scripts.bench_aggregate import _parse_counts


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
def test_parse_counts_rejects_bad_update_counts_naming_them(bad, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _parse_counts(bad)


def test_parse_counts_sorts_and_deduplicates():
    assert _parse_counts("64, 8,8") == [8, 64]


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
