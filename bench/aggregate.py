"""Aggregation speed and memory against same-run baselines (``loraledger bench aggregate``).

Inputs: N updates shaped like a 7B LoRA (r=16 on q/k/v/o of 32 layers, hidden 4096,
float32: 256 tensors, 67 MB each), written as safetensors files to a temporary folder that
is removed afterwards. Measured in one run, on the same inputs:

1. FedAvg of the updates held in memory: ours (in place) vs Flower's
   ``aggregate_arrayrecords`` (target >= 5x faster) and vs a plain copy of the same bytes
   into a freshly allocated buffer, as the aggregate is (target >= 0.8x of copy speed).
   Ours and the copy read the N updates memory-mapped from the page cache (no extra RAM);
   Flower's records hold their own copy (N x 67 MB of RAM: 4.3 GB for 64). Ours is timed
   twice: as ``fedavg`` runs on resident updates (tensor by tensor) and update by update
   (the order used when streaming). Contenders run in turn, best of N.
2. Streaming FedAvg from the files (read + aggregate) in a fresh subprocess: MB/s per update
   and peak RSS above the process's baseline, in units of one update (target < 3).
3. FlexLoRA on one 4096x4096 module: the QR path vs the dense SVD (target >= 10x).

Torch runs on one CPU thread unless ``--threads`` says otherwise: element-wise
aggregation is memory-bound, and on a busy shared CPU (load 9 on 2 cores) two OpenMP
threads made FedAvg 8-10x slower while Flower's numpy, single-threaded, was unaffected.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.console import Console
from rich.progress import Progress

from loraledger.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from aggregator.device import Compute
    from aggregator.flexlora import HeteroResult

MB = 1_000_000
_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
_CHILD = "import sys; from bench.aggregate import stream_child; stream_child(sys.argv[1])"


@dataclass(frozen=True)
class Shape:
    """The LoRA adapter to imitate, and the FlexLoRA module size."""

    layers: int
    hidden: int
    rank: int
    svd_size: int

    @property
    def update_bytes(self) -> int:
        return self.layers * len(_PROJECTIONS) * 2 * self.rank * self.hidden * 4

    def describe(self) -> str:
        return (
            f"r={self.rank} on q/k/v/o of {self.layers} layers, hidden {self.hidden}, float32: "
            f"{self.update_bytes / MB:.1f} MB per update"
        )


FULL = Shape(layers=32, hidden=4096, rank=16, svd_size=4096)
QUICK = Shape(layers=4, hidden=512, rank=8, svd_size=256)


@dataclass(frozen=True)
class Figures:
    """Everything one run measured (seconds, bytes), for the tables and ``bench all``."""

    shape: Shape
    in_memory: list[dict[str, Any]]
    streamed: list[dict[str, Any]]
    flex: dict[str, Any]


def measure(
    counts: Sequence[int],
    shape: Shape,
    compute: Compute,
    repeats: int,
    progress: Progress | None = None,
) -> Figures:
    """Write the update files, time every contender, remove the files again.

    ``progress`` shows the files being written, and each contender as it starts on its console
    (none: silent).
    """
    import torch

    progress = progress or Progress(console=Console(quiet=True), disable=True)

    needed = max(counts) * shape.update_bytes
    gpu = compute.device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="loraledger-bench-aggregate-") as folder:
        free = shutil.disk_usage(folder).free
        if free < needed * 1.2:
            raise ConfigError(
                f"{needed / 1e9:.1f} GB of update files do not fit in {folder} "
                f"({free / 1e9:.1f} GB free)",
                hint="set TMPDIR to a larger disk or pass fewer --updates",
            )
        paths = _write_updates(Path(folder), max(counts), shape, progress)
        in_memory = [_in_memory_row(paths, n, shape, compute, repeats, progress) for n in counts]
        streamed = [
            _streamed_row(paths[:n], shape, gpu, torch.get_num_threads(), progress) for n in counts
        ]
    return Figures(shape, in_memory, streamed, _flexlora_row(shape, compute, progress))


def lora_state(seed: int, shape: Shape) -> dict[str, Any]:
    """Random LoRA tensors of ``shape`` (PEFT key names), reproducible from ``seed``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(shape.layers):
        for projection in _PROJECTIONS:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{projection}"
            tensors[f"{prefix}.lora_A.weight"] = (
                torch.randn(shape.rank, shape.hidden, generator=generator) * 0.01
            )
            tensors[f"{prefix}.lora_B.weight"] = (
                torch.randn(shape.hidden, shape.rank, generator=generator) * 0.01
            )
    return tensors


def _write_updates(folder: Path, count: int, shape: Shape, progress: Progress) -> list[Path]:
    from safetensors.torch import save_file

    base = lora_state(0, shape)
    paths = []
    task = progress.add_task(f"writing {count} update files", total=count)
    for i in range(count):
        # distinct content per node at the cost of one multiply, not a fresh randn
        tensors = {k: v * (1.0 + i / count) for k, v in base.items()}
        path = folder / f"node-{i:03d}.safetensors"
        save_file(tensors, str(path), metadata={"node": f"0x{i:040x}"})
        paths.append(path)
        progress.advance(task)
    progress.remove_task(task)
    return paths


def _timed(action: Callable[[], object], sync: Callable[[], None]) -> tuple[float, object]:
    sync()
    start = time.perf_counter()
    result = action()
    sync()
    return time.perf_counter() - start, result


def _best_interleaved(
    actions: Sequence[Callable[[], object]], repeats: int, sync: Callable[[], None]
) -> list[tuple[float, object]]:
    """Best time of each action over ``repeats`` rounds that run them in turn.

    Interleaving exposes every contender to the same load on a shared machine.
    """
    best: list[tuple[float, object]] = [(float("inf"), None)] * len(actions)
    for _ in range(repeats):
        for i, action in enumerate(actions):
            elapsed, result = _timed(action, sync)
            if elapsed < best[i][0]:
                best[i] = (elapsed, result)
    return best


def _in_memory_row(
    paths: Sequence[Path], n: int, shape: Shape, compute: Compute, repeats: int, progress: Progress
) -> dict[str, Any]:
    import numpy as np
    from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    from aggregator.client_update import ClientUpdate, read_safetensors
    from aggregator.device import allocate, synchronize
    from aggregator.strategies import AggregationResult, fedavg

    progress.console.print(f"  in memory, {n} updates ...")
    # n distinct updates: on the CPU memory-mapped from the page cache (resident, no extra
    # RAM for 64 x 67 MB); on a GPU copied into device memory.
    loaded = [read_safetensors(p) for p in paths[:n]]
    if compute.device.type != "cpu":
        loaded = [{k: v.to(compute.device) for k, v in t.items()} for t in loaded]
    examples = [100 + i for i in range(n)]
    node = [f"0x{i:040x}" for i in range(n)]
    rank, alpha = shape.rank, 2.0 * shape.rank
    resident = [
        ClientUpdate.in_memory(node[i], loaded[i], num_examples=examples[i], rank=rank, alpha=alpha)
        for i in range(n)
    ]
    # the same updates, visited one after the other as when streaming from files
    one_by_one = [
        ClientUpdate(node[i], examples[i], rank, alpha, partial(dict, loaded[i])) for i in range(n)
    ]
    records = [
        RecordDict(
            {
                "arrays": ArrayRecord({k: Array(v.cpu().numpy()) for k, v in tensors.items()}),
                "metrics": MetricRecord({"num-examples": examples[i]}),
            }
        )
        for i, tensors in enumerate(loaded)
    ]
    shapes = {k: tuple(v.shape) for k, v in loaded[0].items()}

    def copy() -> None:
        """The same bytes copied into a fresh buffer, allocated as the aggregate's is."""
        destination = allocate(compute, shapes)
        for tensors in loaded:
            for key, value in tensors.items():
                destination[key].copy_(value)

    sync = partial(synchronize, compute)
    copy()  # warm-up: maps every page of the inputs before anything is timed
    (ours, result), (streamed, _), (copied, _), (flower, flower_result) = _best_interleaved(
        [
            partial(fedavg, resident, compute=compute),
            partial(fedavg, one_by_one, compute=compute),
            copy,
            partial(aggregate_arrayrecords, records, "num-examples"),
        ],
        repeats,
        sync,
    )
    ours_tensors = cast(AggregationResult, result).tensors
    flower_arrays = cast(ArrayRecord, flower_result)
    difference = max(
        float(np.max(np.abs(ours_tensors[k].numpy() - flower_arrays[k].numpy())))
        for k in ours_tensors
    )
    return {
        "n": n,
        "ours": ours,
        "one_by_one": streamed,
        "copy": copied,
        "flower": flower,
        "diff": difference,
    }


def _streamed_row(
    paths: Sequence[Path], shape: Shape, gpu: bool, threads: int, progress: Progress
) -> dict[str, Any]:
    """Read + aggregate from files in a fresh process, for a clean peak-RSS figure."""
    progress.console.print(f"  streaming from files, {len(paths)} updates (subprocess) ...")
    arguments = json.dumps(
        {"paths": [str(p) for p in paths], "rank": shape.rank, "gpu": gpu, "threads": threads}
    )
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"streaming benchmark subprocess failed:\n{completed.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures | {"n": len(paths)}


def stream_child(arguments: str) -> None:
    """Subprocess body: stream the files through FedAvg; print time and memory as JSON."""
    import torch

    from aggregator.client_update import ClientUpdate
    from aggregator.device import select_compute, synchronize
    from aggregator.strategies import fedavg

    spec = json.loads(arguments)
    torch.set_num_threads(spec["threads"])
    compute = select_compute(gpu=spec["gpu"])
    paths = [Path(p) for p in spec["paths"]]
    updates = [
        ClientUpdate.from_safetensors(
            f"0x{i:040x}", path, num_examples=100 + i, rank=spec["rank"], alpha=2.0 * spec["rank"]
        )
        for i, path in enumerate(paths)
    ]
    reset_peak_rss()
    baseline = rss_kib("VmRSS")
    start = time.perf_counter()
    fedavg(updates, compute=compute)
    synchronize(compute)
    elapsed = time.perf_counter() - start
    peak = rss_kib("VmHWM")
    print(json.dumps({"seconds": elapsed, "baseline_kib": baseline, "peak_kib": peak}))


def reset_peak_rss() -> None:
    """Start this process's peak RSS (``VmHWM``) over from its RSS now (Linux)."""
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def rss_kib(field: str) -> int:
    """A memory figure of this process in KiB: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _flexlora_row(shape: Shape, compute: Compute, progress: Progress) -> dict[str, Any]:
    import torch

    from aggregator.client_update import ClientUpdate
    from aggregator.device import Compute, synchronize
    from aggregator.flexlora import RankTarget, flexlora

    size = shape.svd_size
    ranks = [4, 8, 16, 16, 8, 4, 16, 8]
    progress.console.print(f"  FlexLoRA at {size}x{size}, ranks {ranks} ...")
    generator = torch.Generator().manual_seed(1)
    module = "base_model.model.model.layers.0.self_attn.q_proj"
    updates = [
        ClientUpdate.in_memory(
            f"0x{i:040x}",
            {
                f"{module}.lora_A.weight": torch.randn(r, size, generator=generator) * 0.01,
                f"{module}.lora_B.weight": torch.randn(size, r, generator=generator) * 0.01,
            },
            num_examples=100 + i,
            rank=r,
            alpha=2.0 * r,
        )
        for i, r in enumerate(ranks)
    ]
    target = RankTarget(16, 32.0)
    same_dtype = Compute(compute.device, torch.float32)
    sync = partial(synchronize, compute)
    qr_time, qr = min(
        (_timed(partial(flexlora, updates, [target], compute=same_dtype), sync) for _ in range(3)),
        key=lambda timed: timed[0],
    )
    dense_time, dense = _timed(
        partial(flexlora, updates, [target], method="dense", compute=same_dtype), sync
    )

    def delta(result: HeteroResult) -> torch.Tensor:
        adapter = result.adapters[target]
        return (
            adapter[f"{module}.lora_B.weight"] @ adapter[f"{module}.lora_A.weight"] * target.scaling
        )

    difference = float(
        (delta(cast("HeteroResult", qr)) - delta(cast("HeteroResult", dense))).abs().max()
    )
    scale = float(delta(cast("HeteroResult", dense)).abs().max())
    return {
        "size": size,
        "ranks": ranks,
        "qr": qr_time,
        "dense": dense_time,
        "diff": difference,
        "scale": scale,
    }
