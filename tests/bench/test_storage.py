"""The storage benchmark runs end to end on a small blob and reports every row with a ratio."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.progress import Progress

from bench.storage import run_benchmark
from ipfs.daemon import DaemonStatus


@pytest.mark.ipfs_daemon
def test_benchmark_measures_every_backend_against_same_run_baselines(
    tmp_path: Path,
    ipfs_daemon: DaemonStatus,
) -> None:
    with Progress(disable=True) as progress:
        figures = run_benchmark(2 * 1024 * 1024, 1, tmp_path, ipfs_daemon.api_url, progress)
    names = [f.name for f in figures]
    assert names[0] == "CID of bytes (local)" and figures[0].baseline == "sha256"
    assert {"embedded put_file", "embedded get_file", "daemon put_file", "daemon get_file"} <= set(
        names
    )
    assert all(f.mb_s > 0 and f.baseline_mb_s > 0 and f.ratio > 0 for f in figures)
