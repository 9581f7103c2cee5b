"""Every benchmark area at small sizes, as one markdown report (``loraledger bench all``).

Calls the areas' own measuring functions (``bench aggregate``, ``storage``, ``train``,
``gas``, ``flower bench``), so every figure is a ratio against a baseline measured in the
same run exactly as the single-area commands measure it; only the sizes are smaller. The
report records the machine (CPU model, cores, RAM, GPU), the versions of Python, torch,
peft, web3 and flwr, the git commit and the command. ``--quick`` shrinks everything to a
smoke run (CI); with CUDA present the GPU variants run as well (``--no-gpu`` to skip them).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import Progress

from loraledger.paths import REPO_ROOT, home
from loraledger.versions import software_versions

if TYPE_CHECKING:
    from chain.network import Chain


@dataclass(frozen=True)
class Sizes:
    """How big each area runs."""

    aggregate_counts: tuple[int, ...]
    aggregate_quick: bool
    aggregate_repeats: int
    storage_mib: int
    storage_repeat: int
    train_steps: int
    train_repeats: int
    gas_sizes: tuple[int, ...]
    round_nodes: tuple[int, int]  # the federation with and without the ledger, then a larger one
    round_rounds: int
    round_steps: int
    round_model: str


DEFAULT = Sizes((8,), False, 3, 16, 3, 20, 2, (1, 10, 100, 1000), (2, 3), 3, 4, "smollm2")
QUICK = Sizes((2, 3), True, 1, 1, 1, 3, 1, (1, 10), (2, 3), 2, 1, "tiny")


@dataclass
class Section:
    """One area's part of the report: tables (markdown) and notes."""

    title: str
    body: list[str]
    seconds: float = 0.0


def timed(run: Callable[[], Section]) -> Section:
    """Measure one area; its section records how long that took."""
    began = time.perf_counter()
    section = run()
    section.seconds = time.perf_counter() - began
    return section


# --------------------------------------------------------------------------- areas


def aggregation_section(sizes: Sizes, gpu: bool, progress: Progress) -> Section:
    """FedAvg vs Flower and vs memory copy; streaming memory; FlexLoRA QR vs dense SVD."""
    import torch

    from aggregator.device import select_compute
    from bench import aggregate as bench

    shape = bench.QUICK if sizes.aggregate_quick else bench.FULL
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `bench aggregate` does by default (memory-bound work)
    body = [f"Updates: {shape.describe()}; best of {sizes.aggregate_repeats}; 1 CPU thread.", ""]
    try:
        devices = [False, True] if gpu else [False]
        for on_gpu in devices:
            compute = select_compute(gpu=on_gpu)
            figures = bench.measure(
                sizes.aggregate_counts, shape, compute, sizes.aggregate_repeats, progress
            )
            body += _aggregation_tables(figures, str(compute.device))
    finally:
        torch.set_num_threads(threads)
    return Section("Aggregation", body)


def _aggregation_tables(figures, device: str) -> list[str]:  # type: ignore[no-untyped-def]
    size = figures.shape.update_bytes
    rows = [
        [
            str(r["n"]),
            f"{r['ours']:.4f}",
            f"{r['flower']:.4f}",
            f"{r['copy']:.4f}",
            _x(r["flower"] / r["ours"], ">= 5x", r["flower"] / r["ours"] >= 5),
            _x(r["copy"] / r["ours"], ">= 0.8x", r["copy"] / r["ours"] >= 0.8),
            f"{r['diff']:.1e}",
        ]
        for r in figures.in_memory
    ]
    out = [
        f"**FedAvg in memory on {device}** (seconds; ratios: how many times faster ours is)",
        "",
        table(
            [
                "updates",
                "ours s",
                "Flower s",
                "memory copy s",
                "Flower / ours",
                "copy / ours",
                "max abs diff vs Flower",
            ],
            rows,
        ),
        "",
    ]
    rows = []
    for r in figures.streamed:
        above = (r["peak_kib"] - r["baseline_kib"]) * 1024
        per_update = r["seconds"] / r["n"]
        rows.append(
            [
                str(r["n"]),
                f"{r['seconds']:.3f}",
                f"{size / per_update / 1e6:.0f}",
                f"{above / 1e6:.0f} MB",
                f"{above / size:.2f} ({'met' if above / size < 3 else '**missed**'}: target < 3)",
            ]
        )
    out += [
        f"**Streaming FedAvg from safetensors files on {device}** (fresh process)",
        "",
        table(
            ["updates", "seconds", "read+aggregate MB/s", "peak RSS above baseline", "in updates"],
            rows,
        ),
        "",
    ]
    flex = figures.flex
    speedup = flex["dense"] / flex["qr"]
    out += [
        (
            f"**FlexLoRA on {device}**, one {flex['size']}x{flex['size']} module, ranks "
            f"{flex['ranks']} -> r=16"
        ),
        "",
        table(
            ["QR path s", "dense SVD s", "dense / QR", "max abs diff", "max abs delta"],
            [
                [
                    f"{flex['qr']:.4f}",
                    f"{flex['dense']:.4f}",
                    _x(speedup, ">= 10x", speedup >= 10),
                    f"{flex['diff']:.1e}",
                    f"{flex['scale']:.1e}",
                ]
            ],
        ),
        "",
    ]
    return out


def storage_section(sizes: Sizes, progress: Progress) -> Section:
    """CID computation vs sha256; store put/get vs a plain file copy."""
    from bench.storage import run_benchmark
    from ipfs.daemon import DaemonConfig, status

    found = status(DaemonConfig(state_dir=home() / "ipfs"))
    api_url = found.api_url if found.running else None
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        figures = run_benchmark(
            sizes.storage_mib * 1024 * 1024, sizes.storage_repeat, Path(tmp), api_url, progress
        )
    rows = [
        [
            f.name,
            f"{f.mb_s:,.0f}",
            f.baseline,
            f"{f.baseline_mb_s:,.0f}",
            _x(
                f.ratio,
                None if f.target is None else f">= {f.target:.2f}x",
                None if f.target is None else f.ratio >= f.target,
            ),
        ]
        for f in figures
    ]
    body = [
        (
            f"Blob of {sizes.storage_mib} MiB, best of {sizes.storage_repeat}; ratio = MB/s of the "
            "operation / MB/s of its baseline."
        ),
        "",
        table(["operation", "MB/s", "baseline", "baseline MB/s", "ratio"], rows),
        "",
    ]
    if api_url is None:
        body.append("IPFS daemon rows skipped: no `loraledger ipfs up` daemon was running.")
    return Section("Storage (CID, embedded store, IPFS daemon)", body)


def training_section(sizes: Sizes, model: str, gpu: bool, progress: Progress) -> Section:
    """``train_round``'s training loop vs a plain transformers+peft loop."""
    from bench.train import TARGET_RATIO, measure

    runs = measure(model, sizes.train_steps, 4, 128, 8, sizes.train_repeats, False, progress)
    if gpu:
        runs += measure(model, sizes.train_steps, 4, 128, 8, sizes.train_repeats, True, progress)
    rows = []
    for name, base, ours in runs:
        ratio = ours.tokens_per_s / base.tokens_per_s
        rows.append(
            [
                name,
                f"{base.tokens_per_s:,.0f}",
                f"{ours.tokens_per_s:,.0f}",
                _x(ratio, f">= {TARGET_RATIO}x", ratio >= TARGET_RATIO),
                f"{base.last_loss:.4f} / {ours.last_loss:.4f}",
            ]
        )
    body = [
        (
            f"Model {model}, {sizes.train_steps} steps x batch 4, max length 128, "
            f"LoRA r=8 q/k/v/o, best of {sizes.train_repeats}; tokens/s of the training loop."
        ),
        "",
        table(
            [
                "variant",
                "plain peft loop tok/s",
                "train_round tok/s",
                "train_round / plain",
                "last loss plain / ours",
            ],
            rows,
        ),
        "",
    ]
    return Section("Training", body)


def gas_section(sizes: Sizes, chain: Chain) -> Section:
    """Gas per function, and finalize/claim per round size N, on ``chain``."""
    from chain.gas import measure

    rows = measure(chain, sorted(sizes.gas_sizes))
    per_function = [[r.function, r.scenario, f"{r.gas:,}"] for r in rows if "N=" not in r.scenario]
    finals = {r.scenario: r.gas for r in rows if r.function == "finalizeRound"}
    claims = {
        r.scenario.split(" ")[0]: r for r in rows if r.function == "claim" and "N=" in r.scenario
    }
    first = finals[f"N={min(sizes.gas_sizes)}"]
    first_claim = claims[f"N={min(sizes.gas_sizes)}"].gas
    per_round = []
    for n in sorted(sizes.gas_sizes):
        claim = claims[f"N={n}"]
        per_round.append(
            [
                str(n),
                f"{finals[f'N={n}']:,}",
                f"{finals[f'N={n}'] / first:.3f}x",
                f"{claim.gas:,}",
                claim.scenario.split("(")[1].rstrip(")"),
                f"{claim.gas / first_claim:.3f}x",
            ]
        )
    body = [
        (
            f"On the `{chain.network.name}` chain. Per round: finalizeRound should stay flat in N, "
            "a claim grow with the Merkle proof (log2 N)."
        ),
        "",
        table(["function", "scenario", "gas"], per_function),
        "",
        table(
            [
                "nodes N",
                "finalizeRound gas",
                "finalize vs smallest N",
                "claim gas",
                "proof",
                "claim vs smallest N",
            ],
            per_round,
        ),
        "",
    ]
    return Section("Gas", body)


def round_section(sizes: Sizes) -> Section:
    """A whole simulated Flower round with the chain + IPFS layer vs plain Flower
    (``flower bench``)."""
    import logging

    from fl_node.data import sample_examples
    from fl_node.model import create_tiny_model
    from flower_app.bench import measure
    from flower_app.federation import FederationPlan
    from flower_app.simulation import SimulationSettings

    logging.getLogger("flwr").setLevel(logging.CRITICAL)  # Flower logs every step at INFO
    nodes, more = sizes.round_nodes
    with (
        warnings.catch_warnings(),  # Ray's start-up leaves files to the GC (ResourceWarning)
        tempfile.TemporaryDirectory(prefix="bench-round-") as tmp,
    ):
        warnings.simplefilter("ignore", ResourceWarning)
        model = sizes.round_model
        if model == "tiny":
            corpus = [m.content for e in sample_examples() for m in e.messages]
            model = str(create_tiny_model(Path(tmp) / "tiny-model", corpus))
        plan = FederationPlan(
            nodes=nodes,
            rounds=sizes.round_rounds,
            model=model,
            work_dir=Path(tmp) / "runs",
            ranks=(8, 4),
        )
        settings = SimulationSettings(
            steps=sizes.round_steps, batch_size=4, max_length=128, quiet=True
        )
        result = measure(plan, settings, more)
    target = sizes.round_model == "smollm2"
    rows = []
    for n, base, ledger in (
        (nodes, result.baseline_round_s, result.ledger_round_s),
        (more, result.more_baseline_round_s, result.more_ledger_round_s),
    ):
        overhead = (ledger - base) / ledger
        rows.append(
            [
                str(n),
                f"{base:.2f}",
                f"{ledger:.2f}",
                f"{ledger - base:+.2f}",
                f"{overhead:.1%}"
                + (
                    (" (met" if overhead <= 0.10 else " (**missed**") + ": target <= 10%)"
                    if target
                    else ""
                ),
            ]
        )
    body = [
        (
            f"Model {sizes.round_model}, {sizes.round_steps} steps x batch 4 per node and round, "
            f"LoRA ranks 8/4, FedAvg; every node evaluates {settings.eval_fraction:.0%} of its "
            "shard before and after training, as `flower bench` does by default (most of a "
            "SmolLM2 round's time); "
            f"mean of rounds 2..{sizes.round_rounds} (round 1 loads the model). "
            "Plain Flower sends the weights in messages; the ledger run joins, pins, commits, "
            "verifies, publishes, pays and finalizes on an anvil chain with the embedded store."
        ),
        "",
        table(
            [
                "nodes",
                "plain Flower s/round",
                "with chain + IPFS s/round",
                "difference s",
                "overhead (share of the ledger round)",
            ],
            rows,
        ),
        "",
        (
            f"Time per extra node: {result.per_extra_node_ledger_s:.2f} s with the ledger, "
            f"{result.per_extra_node_baseline_s:.2f} s plain."
            + (
                ""
                if target
                else " The <= 10% target is for SmolLM2 (`--round-model smollm2`): "
                "a tiny model's training takes far less than the chain's fixed per-round cost."
            )
        ),
        "",
    ]
    return Section("Round overhead of chain + IPFS (Flower simulation)", body)


# --------------------------------------------------------------------------- report


def _x(value: float, target: str | None, met: bool | None) -> str:
    """A ratio, with whether it met its target when it has one."""
    text = f"{value:.2f}x"
    if target:
        text += f" ({'met' if met else '**missed**'}: target {target})"
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, GPU; Python and package versions; the git commit."""
    import torch

    info = {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": _ram(),
        "GPU": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "OS": platform.platform(),
        "python": platform.python_version(),
    }
    info.update(software_versions(("torch", "peft", "transformers", "web3", "flwr")))
    info["git commit"] = git_commit(REPO_ROOT) or "unknown"
    info["load average"] = f"{os.getloadavg()[0]:.1f}"
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def git_commit(root: Path) -> str | None:
    """The checked-out commit, read from ``.git`` (no git process needed)."""
    git = root / ".git"
    if git.is_file():  # a worktree: "gitdir: <path>"
        git = Path(git.read_text().split(":", 1)[1].strip())
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head
    ref = head.split(":", 1)[1].strip()
    common = git
    if (git / "commondir").is_file():
        common = (git / (git / "commondir").read_text().strip()).resolve()
    for base in (git, common):
        if (base / ref).is_file():
            return (base / ref).read_text().strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    return None


def render(sections: Sequence[Section], info: dict[str, str], command: str, sizes: Sizes) -> str:
    lines = [
        "# Benchmarks",
        "",
        (
            f"Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
            "Every ratio compares with a baseline measured in the same run; the single-area "
            "commands (`loraledger bench aggregate|storage|train|gas`, `loraledger flower bench`) "
            "give the same figures at full size."
        ),
        "",
        "## Machine",
        "",
        table(["item", "value"], [[k, v] for k, v in info.items()]),
        "",
    ]
    for section in sections:
        lines += [
            f"## {section.title}",
            "",
            *section.body,
            f"_Measured in {section.seconds:.0f} s._",
            "",
        ]
    lines += [
        "## Notes",
        "",
        (
            "- Shared machines: timings move with the load (recorded above); ratios are steadier "
            "because baseline and subject run interleaved."
        ),
    ]
    if sizes == QUICK:
        lines.append("- `--quick`: shapes far too small for the targets to mean anything.")
    return "\n".join(lines) + "\n"
