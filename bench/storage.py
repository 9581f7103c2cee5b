"""CID computation and put/get per backend, against same-run baselines
(``loraledger bench storage``).

Baselines: a plain ``hashlib.sha256`` of the same bytes (for local CID computation) and a
plain file copy with ``shutil.copyfile`` (for puts and gets). Each figure is the best of
``--repeat`` runs, baseline and subject interleaved so both see the same machine load.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from ipfs import EmbeddedConfig, EmbeddedStore, KuboConfig, KuboStore, compute_cid
from loraledger.errors import ConfigError

CID_TARGET = 0.70
EMBEDDED_TARGET = 0.50


@dataclass(frozen=True)
class Figure:
    """One benchmark row: MB/s of an operation, and of its baseline in the same run."""

    name: str
    mb_s: float
    baseline: str
    baseline_mb_s: float
    target: float | None

    @property
    def ratio(self) -> float:
        return self.mb_s / self.baseline_mb_s


def best_of(
    repeat: int,
    *runs: Callable[[], object],
    tick: Callable[[], object] = lambda: None,
    prepare: Callable[[], object] = lambda: None,
) -> list[float]:
    """Best wall time of each callable over ``repeat`` interleaved rounds.

    ``prepare`` runs untimed before each callable; ``tick`` after each round.
    """
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for index, run in enumerate(runs):
            prepare()
            started = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - started)
        tick()
    return best


def run_benchmark(
    size: int, repeat: int, work: Path, api_url: str | None, progress: Progress
) -> list[Figure]:
    """Measure everything; ``api_url`` None skips the daemon rows."""
    mb = size / 1e6
    blob = os.urandom(size)
    source = work / "blob"
    source.write_bytes(blob)
    task = progress.add_task("benchmarking", total=2 * repeat + 1)

    def tick() -> None:
        progress.advance(task)

    figures: list[Figure] = []

    sha, cid = best_of(
        repeat, lambda: hashlib.sha256(blob).digest(), lambda: compute_cid(blob), tick=tick
    )
    figures.append(Figure("CID of bytes (local)", mb / cid, "sha256", mb / sha, CID_TARGET))

    store = EmbeddedStore(EmbeddedConfig(root=work / "store"))
    stored = store.put_file(source)
    get_source = EmbeddedStore(EmbeddedConfig(root=work / "read-store"))
    get_source.put_file(source)
    stored_object = work / "store" / "objects" / stored[-3:-1] / stored

    def fresh() -> None:  # every put stores new content: no overwriting of an earlier copy
        stored_object.unlink(missing_ok=True)
        for leftover in ("copy", "out"):
            (work / leftover).unlink(missing_ok=True)

    runs: dict[str, Callable[[], object]] = {
        "file copy": lambda: shutil.copyfile(source, work / "copy"),
        "sha256 alone (bound for verified I/O)": lambda: hashlib.sha256(blob).digest(),
        "embedded put_file": lambda: store.put_file(source),
        "embedded get_file": lambda: get_source.get_file(stored, work / "out"),
        "embedded put_bytes": lambda: store.put_bytes(blob),
        "embedded get_bytes": lambda: get_source.get_bytes(stored),
    }
    node: KuboStore | None = None
    if api_url:
        node = KuboStore(KuboConfig(api_url=api_url, timeout_s=120))
        if node.put_file(source) != stored:
            raise ConfigError("the node returned another CID than the embedded store")
        runs["daemon put_file"] = lambda: node.put_file(source)
        runs["daemon get_file"] = lambda: node.get_file(stored, work / "out")
    tick()
    try:
        times = best_of(repeat, *runs.values(), tick=tick, prepare=fresh)
    finally:
        if node is not None:
            node.close()
    copy_mb_s = mb / times[0]
    for (name, _), seconds in list(zip(runs.items(), times, strict=True))[1:]:
        target = EMBEDDED_TARGET if name.startswith("embedded") else None
        figures.append(Figure(name, mb / seconds, "file copy", copy_mb_s, target))
    return figures
