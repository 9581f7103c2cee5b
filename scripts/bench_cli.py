"""``loraledger bench ...``: every benchmark prints ratios against a baseline from the same run.

The measuring lives in :mod:`bench` (one module per area) and :mod:`chain.gas`; the commands
here parse options, show progress and print the tables.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import Progress
from rich.table import Table

from loraledger.errors import ConfigError
from loraledger.paths import REPO_ROOT
from scripts.console import console, step_progress
from scripts.console import table as new_table
from scripts.options import NetworkOption, open_chain

if TYPE_CHECKING:
    from bench.aggregate import Shape
    from bench.load import LoadResult
    from bench.report import Section

app = typer.Typer(no_args_is_help=True)

GAS_REPORT = REPO_ROOT / "docs" / "gas-report.md"


# --------------------------------------------------------------------------- gas


@app.command("gas")
def gas(
    sizes: str = typer.Option(
        "1,3,10,100", "--sizes", help="Round sizes (nodes) to finalize and claim, comma-separated."
    ),
    network: str = NetworkOption,
    write: Path | None = typer.Option(
        None, "--write", help=f"Also write the markdown report here (e.g. {GAS_REPORT})."
    ),
) -> None:
    """Gas per function, finalize vs number of nodes (flat), claim vs table size (log N)."""
    from chain.gas import measure, render_markdown

    try:
        counts = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"--sizes must be integers, got {sizes!r}") from exc
    if not counts or min(counts) < 1:
        raise typer.BadParameter("--sizes needs positive node counts")
    chain = open_chain(network)
    with console.status("measuring gas") as status:
        rows = measure(
            chain, sorted(counts), progress=lambda msg: status.update(f"measuring gas: {msg}")
        )
    table = new_table("function", "scenario", "gas")
    for r in rows:
        table.add_row(r.function, r.scenario, f"{r.gas:,}")
    console.print(table)
    finals = [r for r in rows if r.function == "finalizeRound" and r.scenario.startswith("N=")]
    if len(finals) >= 2:
        console.print(
            f"finalizeRound {finals[-1].scenario} / {finals[0].scenario}: "
            f"{finals[-1].gas / finals[0].gas:.3f}x"
        )
    if write is not None:
        command = (
            f"loraledger bench gas --sizes {','.join(map(str, sorted(counts)))} --network "
            f"{chain.network.name}"
        )
        write.write_text(render_markdown(rows, network=chain.network.name, command=command))
        console.print(f"wrote {write}")


# --------------------------------------------------------------------------- storage


@app.command("storage")
def storage(
    size_mb: int = typer.Option(64, "--size-mb", min=1, help="Blob size in MiB."),
    repeat: int = typer.Option(3, "--repeat", min=1, help="Rounds; the best of each is kept."),
    ipfs: str | None = typer.Option(
        None, "--ipfs", help="Kubo RPC API to include (default: the `ipfs up` daemon if running)."
    ),
) -> None:
    """Put/get of a blob per backend, and local CID computation, as MB/s and ratios."""
    from bench.storage import run_benchmark
    from ipfs.daemon import DaemonConfig, status
    from loraledger.paths import home

    api_url = ipfs
    if api_url is None:
        found = status(DaemonConfig(state_dir=home() / "ipfs"))
        api_url = found.api_url if found.running else None
    with (
        tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp,
        Progress(console=console) as progress,
    ):
        figures = run_benchmark(size_mb * 1024 * 1024, repeat, Path(tmp), api_url, progress)
    table = Table(title=f"storage, {size_mb} MiB blob, best of {repeat}")
    for column in ("operation", "MB/s", "baseline", "baseline MB/s", "ratio", "target"):
        table.add_column(column, justify="right" if column != "operation" else "left")
    for fig in figures:
        target = (
            ""
            if fig.target is None
            else (f"{'met' if fig.ratio >= fig.target else 'MISSED'} (>= {fig.target:.0%})")
        )
        table.add_row(
            fig.name,
            f"{fig.mb_s:,.0f}",
            fig.baseline,
            f"{fig.baseline_mb_s:,.0f}",
            f"{fig.ratio:.0%}",
            target,
        )
    console.print(table)
    if api_url is None:
        console.print("daemon rows skipped: start one with `loraledger ipfs up` or pass --ipfs")


# --------------------------------------------------------------------------- train


@app.command("train")
def train(
    model: str = typer.Option("tiny", "--model", "-m", help="tiny (built on the fly) or smollm2."),
    steps: int | None = typer.Option(
        None, "--steps", help="Optimizer steps per run (tiny 40, smollm2 6)."
    ),
    batch_size: int = typer.Option(4, "--batch-size", "-b"),
    max_length: int = typer.Option(128, "--max-length"),
    rank: int = typer.Option(8, "--rank", help="LoRA rank (q/k/v/o)."),
    repeats: int = typer.Option(2, "--repeats", help="Timed runs per path; the best is kept."),
    gpu: bool = typer.Option(
        False, "--gpu", help="On CUDA: compare with 16-bit and 4-bit loading."
    ),
) -> None:
    """Training tokens/s of the node's path vs a plain transformers+peft loop (same run)."""
    import torch

    from bench.train import TARGET_RATIO, measure

    steps = steps or (40 if model == "tiny" else 6)
    with step_progress() as progress:
        runs = measure(model, steps, batch_size, max_length, rank, repeats, gpu, progress)
    for name, base, ours in runs:
        ratio = ours.tokens_per_s / base.tokens_per_s
        table = new_table(
            "path",
            "tokens",
            "train s",
            "tokens/s",
            "call s",
            "peak mem",
            "last loss",
            "ratio",
            title=f"{model} {name}",
        )
        for m in (base, ours):
            color = "green" if ratio >= TARGET_RATIO else "red"
            table.add_row(
                m.path,
                str(m.tokens),
                f"{m.seconds:.2f}",
                f"{m.tokens_per_s:,.0f}",
                f"{m.total_seconds:.2f}",
                _mib(m.peak_bytes),
                f"{m.last_loss:.4f}",
                "1.00" if m is base else f"[{color}]{ratio:.3f}",
            )
        console.print(table)
    console.print(
        f"model {model}, {steps} steps x batch {batch_size}, max length {max_length}, "
        f"LoRA r={rank} q/k/v/o, best of {repeats}; target >= {TARGET_RATIO}x; "
        f"torch threads {torch.get_num_threads()}"
    )


@app.command("privacy")
def privacy(
    model: str = typer.Option("tiny", "--model", "-m", help="tiny (built on the fly) or smollm2."),
    steps: int | None = typer.Option(
        None, "--steps", help="Optimizer steps per run (tiny 40, smollm2 6)."
    ),
    batch_size: int = typer.Option(8, "--batch-size", "-b"),
    max_length: int = typer.Option(128, "--max-length"),
    rank: int = typer.Option(8, "--rank", help="LoRA rank (q/k/v/o)."),
    noise_multiplier: float = typer.Option(
        1.0, "--noise-multiplier", help="DP-SGD's noise multiplier (clipping bound 1)."
    ),
    repeats: int = typer.Option(2, "--repeats", help="Timed runs per path; the best is kept."),
) -> None:
    """What example-level DP-SGD costs the node: train_round's tokens/s with and without it
    (same run), and where a DP-SGD step spends its time (forward, backward with per-example
    gradients, clip and noise, update)."""
    import torch

    from bench.privacy import PHASES, measure

    steps = steps or (40 if model == "tiny" else 6)
    with step_progress() as progress:
        bench = measure(
            model, steps, batch_size, max_length, rank, noise_multiplier, repeats, progress
        )
    columns = ("path", "tokens", "train s", "tokens/s", "peak mem", "last loss", "ratio")
    table = new_table(*columns, title=f"{model}: DP-SGD vs clear")
    for m in (bench.clear, bench.private):
        table.add_row(
            m.path,
            str(m.tokens),
            f"{m.seconds:.2f}",
            f"{m.tokens_per_s:,.0f}",
            _mib(m.peak_bytes),
            f"{m.last_loss:.4f}",
            "1.00" if m is bench.clear else f"{bench.ratio:.3f}",
        )
    console.print(table)
    phases = new_table("phase", "clear ms", "DP-SGD ms", "DP-SGD / clear", title="one step")
    for name, c, p in zip(
        (*PHASES, "step"),
        (*bench.clear_phases.as_tuple(), bench.clear_phases.step),
        (*bench.private_phases.as_tuple(), bench.private_phases.step),
        strict=True,
    ):
        ratio = f"{p / c:.2f}" if c > 1e-4 else "-"  # clear steps do not clip or add noise
        phases.add_row(name, f"{c * 1e3:.1f}", f"{p * 1e3:.1f}", ratio)
    console.print(phases)
    costliest = max(
        zip(PHASES, bench.private_phases.as_tuple(), bench.clear_phases.as_tuple(), strict=True),
        key=lambda row: row[1] - row[2],
    )
    console.print(
        f"model {model}, {steps} steps x batch {batch_size} (DP-SGD: Poisson samples of that "
        f"expected size), max length {max_length}, LoRA r={rank} q/k/v/o, noise multiplier "
        f"{noise_multiplier:g}, clip 1, best of {repeats}; one private run spent epsilon "
        f"{bench.epsilon:.2f} (delta 1e-5); DP-SGD runs at {bench.ratio:.2f}x the clear "
        f"tokens/s; most of the extra time is in {costliest[0]} "
        f"(+{(costliest[1] - costliest[2]) * 1e3:.1f} ms a step); torch threads "
        f"{torch.get_num_threads()}",
        highlight=False,
    )


def _mib(value: int | None) -> str:
    return "n/a" if not value else f"{value / 2**20:,.0f} MiB"


# --------------------------------------------------------------------------- aggregate


@app.command("aggregate")
def aggregate(
    updates: str = typer.Option("8,64", "--updates", help="Comma-separated update counts."),
    quick: bool = typer.Option(False, "--quick", help="Small shapes: a smoke run in seconds."),
    gpu: bool = typer.Option(False, "--gpu", help="Aggregate on CUDA (refused without one)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Best of this many timings."),
    threads: int = typer.Option(
        1,
        "--threads",
        min=0,
        help="CPU threads for torch, same for every contender (0: torch's default). "
        "Aggregation is memory-bound; on a shared CPU more threads spin at barriers.",
    ),
) -> None:
    """FedAvg vs Flower and vs memcpy, streaming MB/s and peak RSS, FlexLoRA QR vs dense SVD."""
    import torch

    from aggregator.device import select_compute
    from bench.aggregate import FULL, QUICK, measure

    counts = parse_counts(updates)
    compute = select_compute(gpu=gpu)  # refuses --gpu without CUDA
    shape = QUICK if quick else FULL
    if threads:
        torch.set_num_threads(threads)
    console.print(
        f"[bold]Aggregation benchmark[/] on {compute.device} ({torch.get_num_threads()} CPU "
        f"threads, load average {os.getloadavg()[0]:.1f}): {shape.describe()}"
    )
    if quick:
        console.print("[dim]--quick: shapes too small for the targets to mean anything.[/]")
    with Progress(console=console, transient=True) as progress:
        figures = measure(counts, shape, compute, repeats, progress)
    _print_aggregate_tables(shape, figures.in_memory, figures.streamed, figures.flex)


def parse_counts(text: str) -> list[int]:
    """``--updates``: comma-separated positive counts, sorted and without repeats."""
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--updates must be comma-separated integers, got {text!r}") from None
    if not counts or counts[0] < 1:
        raise ConfigError(f"--updates must be positive counts, got {text!r}")
    return counts


def _ratio(value: float, target: float, *, higher_is_better: bool = True, digits: int = 2) -> str:
    """A ratio, green when it meets ``target``, red otherwise."""
    met = value >= target if higher_is_better else value < target
    return f"[{'green' if met else 'red'}]{value:.{digits}f}x[/]"


def _print_aggregate_tables(
    shape: Shape, in_memory: list[dict], streamed: list[dict], flex: dict
) -> None:
    from bench.aggregate import MB

    size = shape.update_bytes
    table = Table(title="FedAvg in memory, seconds (best of repeats) and speed ratios")
    for column in ("n", "ours", "1-by-1", "Flower", "copy", "Flower/\nours", "copy/\nours"):
        table.add_column(column, justify="right")
    table.add_column("Flower/\n1-by-1", justify="right", style="dim")
    table.add_column("copy/\n1-by-1", justify="right", style="dim")
    for row in in_memory:
        ours, one = row["ours"], row["one_by_one"]
        table.add_row(
            str(row["n"]),
            f"{ours:.3f}",
            f"{one:.3f}",
            f"{row['flower']:.3f}",
            f"{row['copy']:.3f}",
            _ratio(row["flower"] / ours, 5),
            _ratio(row["copy"] / ours, 0.8),
            f"{row['flower'] / one:.1f}x",
            f"{row['copy'] / one:.2f}x",
        )
    console.print(table)
    worst = max(row["diff"] for row in in_memory)
    console.print(
        "[dim]Targets: Flower/ours >= 5x, copy/ours >= 0.8x. ours = fedavg on resident "
        "updates (tensor by tensor); 1-by-1 = update by update, the streaming order. "
        f"Max |ours - Flower| = {worst:.1e}.[/]"
    )

    table = Table(title="Streaming FedAvg from safetensors files (fresh process, page cache warm)")
    for column in (
        "updates",
        "total s",
        "read+aggregate MB/s",
        "peak RSS above baseline",
        "in updates (target < 3)",
    ):
        table.add_column(column, justify="right")
    for row in streamed:
        above = (row["peak_kib"] - row["baseline_kib"]) * 1024
        per_update = row["seconds"] / row["n"]
        table.add_row(
            str(row["n"]),
            f"{row['seconds']:.2f}",
            f"{size / per_update / MB:.0f}",
            f"{above / MB:.0f} MB",
            _ratio(above / size, 3, higher_is_better=False),
        )
    console.print(table)

    table = Table(
        title=f"FlexLoRA, one {flex['size']}x{flex['size']} module, ranks {flex['ranks']} -> r=16"
    )
    for column in (
        "QR path s",
        "dense SVD s",
        "speed-up (target >= 10x)",
        "max |difference|",
        "max |delta|",
    ):
        table.add_column(column, justify="right")
    speedup = flex["dense"] / flex["qr"]
    table.add_row(
        f"{flex['qr']:.4f}",
        f"{flex['dense']:.2f}",
        _ratio(speedup, 10, digits=0),
        f"{flex['diff']:.1e}",
        f"{flex['scale']:.1e}",
    )
    console.print(table)
    console.print(
        "[dim]In memory: ours, 1-by-1 and copy read the n updates memory-mapped from the page "
        "cache; Flower reads its own in-memory records of the same values.[/]"
    )


# --------------------------------------------------------------------------- round


@app.command("round")
def round_command(
    updates: int = typer.Option(8, "--updates", min=1, help="Updates in the round."),
    quick: bool = typer.Option(False, "--quick", help="Small shapes: a smoke run in seconds."),
    gpu: bool = typer.Option(False, "--gpu", help="Aggregate on CUDA (refused without one)."),
    workers: int = typer.Option(
        2, "--workers", min=1, help="Updates fetched and verified at once."
    ),
    repeats: int = typer.Option(2, "--repeats", min=1, help="Best of this many timings."),
) -> None:
    """Fetch + verify + aggregate MB/s per update, against read + sha256 of the same bytes."""
    from aggregator.device import select_compute
    from bench.aggregate import FULL, QUICK
    from bench.round import measure

    compute = select_compute(gpu=gpu)
    shape = QUICK if quick else FULL
    console.print(
        f"[bold]Round pipeline benchmark[/] on {compute.device} "
        f"(load average {os.getloadavg()[0]:.1f}): {updates} updates, {shape.describe()}"
    )
    row = measure(updates, shape, compute, workers, repeats)
    table = new_table(
        "updates",
        "MB each",
        "read+sha256 MB/s",
        "fetch+verify+aggregate MB/s",
        "ratio",
        "per update s",
    )
    table.add_row(
        str(updates),
        f"{row['mb_each']:.1f}",
        f"{row['baseline_mbps']:.0f}",
        f"{row['pipeline_mbps']:.0f}",
        f"{row['ratio']:.2f}x",
        f"{row['per_update_s']:.3f}",
    )
    console.print(table)
    console.print(
        "[dim]ratio = pipeline throughput / baseline throughput (same bytes, same run); "
        "the pipeline hashes every byte twice (commitment digest and replay digest), checks "
        "every value is finite, computes the weight-change norm and writes accepted updates "
        "to the work folder.[/]"
    )


@app.command("contribution")
def contribution_command(
    nodes: str = typer.Option("2,4,8", "--nodes", help="Node counts, comma-separated."),
    steps: int = typer.Option(
        20, "--steps", min=1, help="Training steps per node (20: SmolLM2's loss 6.4 -> 2.8)."
    ),
    validation: int = typer.Option(
        32, "--validation-examples", min=1, help="Each validator's held-out examples."
    ),
    tiny: bool = typer.Option(False, "--tiny", help="The tiny model instead of SmolLM2."),
) -> None:
    """What contribution scoring adds to a round: score / (train + verify + aggregate)."""
    from bench.contribution import TARGET_RATIO, Point, measure
    from fl_node.data import sample_examples
    from fl_node.model import ModelConfig, create_tiny_model, load_base_model

    counts = parse_counts(nodes)
    with tempfile.TemporaryDirectory(prefix="loraledger-bench-") as tmp:
        with console.status("loading the base model"):
            if tiny:
                corpus = [m.content for e in sample_examples() for m in e.messages]
                folder = create_tiny_model(Path(tmp) / "tiny", corpus)
                model = load_base_model(ModelConfig(source=str(folder)))
            else:
                model = load_base_model(ModelConfig(source="smollm2"))
        console.print(
            f"[bold]Contribution scoring benchmark[/] on {model.model_id} (load average "
            f"{os.getloadavg()[0]:.1f}): one demo round per node count, {steps} steps per node, "
            f"{validation} validation examples"
        )

        def show(point: Point) -> None:
            console.print(
                f"  {point.nodes} nodes: train {point.train_seconds:.1f} s, verify "
                f"{point.verify_seconds:.1f} s, score {point.score_seconds:.1f} s, aggregate "
                f"{point.aggregate_seconds:.2f} s"
            )

        points = measure(
            counts, model, steps=steps, validation_examples=validation, tiny=tiny, on_point=show
        )
    table = new_table(
        "nodes",
        "train s",
        "verify s",
        "aggregate s",
        "score s",
        "score / (train+verify+aggregate)",
        "score s per node",
    )
    for p in points:
        table.add_row(
            str(p.nodes),
            f"{p.train_seconds:.1f}",
            f"{p.verify_seconds:.1f}",
            f"{p.aggregate_seconds:.2f}",
            f"{p.score_seconds:.1f}",
            _ratio(p.ratio, TARGET_RATIO, higher_is_better=False),
            f"{p.score_per_node:.2f}",
        )
    console.print(table)
    console.print(
        f"[dim]target: scoring adds at most {TARGET_RATIO:.0%} to the round; its cost per node "
        "stays flat when it grows linearly in nodes. Baseline and scoring come from the same "
        "round.[/]"
    )


# --------------------------------------------------------------------------- load


LOAD_RESULTS = Path("docs") / "results" / "load"


@app.command("load")
def load_command(
    nodes: str = typer.Option(
        "25", "--nodes", help="Node counts, comma-separated: one round each, on a fresh chain."
    ),
    chain: str = typer.Option("anvil", "--chain", help="ganache or anvil (started afresh)."),
    adapter: str = typer.Option(
        "smollm2", "--adapter", help="The task's LoRA: smollm2 (3.7 MB), small (0.5 MB), tiny."
    ),
    workers: int = typer.Option(
        8,
        "--workers",
        min=1,
        help="Nodes acting at once (threads, each node its own connection); Ganache answers one "
        "request at a time: 2 there.",
    ),
    fetch_workers: int = typer.Option(
        2, "--fetch-workers", min=1, help="The aggregator's verification workers."
    ),
    out: Path = typer.Option(
        LOAD_RESULTS, "--out", "-o", help="Folder of each run's JSON and of the README's tables."
    ),
) -> None:
    """One round with many nodes, each its own account, on a fresh Ganache or anvil: wall time,
    JSON-RPC requests and gas per node for each phase, the aggregator's peak memory.

    Every node joins, commits, reveals and claims with its own account and connection; the
    aggregator (its own validator, quorum 1) verifies, aggregates and finalizes in a child
    process whose peak RSS is recorded. Updates are synthetic (the start adapter plus noise).
    Each run writes load-CHAIN-NODES-ADAPTER.json into --out and rewrites the tables of its
    README.md."""
    from bench.load import ADAPTERS, LoadConfig, run_load, update_readme, write_result

    counts = parse_counts(nodes)
    if chain not in ("ganache", "anvil"):
        raise ConfigError(f"--chain must be ganache or anvil, got {chain!r}")
    if adapter not in ADAPTERS:
        raise ConfigError(f"--adapter must be one of {', '.join(ADAPTERS)}, got {adapter!r}")
    for count in counts:
        config = LoadConfig(
            nodes=count,
            chain="ganache" if chain == "ganache" else "anvil",
            adapter=ADAPTERS[adapter],
            workers=workers,
            fetch_workers=fetch_workers,
        )
        command = shlex.join(
            [
                "loraledger",
                "bench",
                "load",
                "--nodes",
                str(count),
                "--chain",
                chain,
                "--adapter",
                adapter,
                "--workers",
                str(workers),
                "--fetch-workers",
                str(fetch_workers),
            ]
        )
        with console.status(f"{count} nodes on {chain}") as status:

            def show(phase: str, what: str = f"{count} nodes on {chain}") -> None:
                status.update(f"{what}: {phase}")

            result = run_load(config, command=command, progress=show)
        _print_load(result)
        path = write_result(out, result)
        console.print(f"wrote {path} and {update_readme(out)}")


def _print_load(result: LoadResult) -> None:
    from bench.load import ROUND_PHASES

    table = new_table(
        "phase",
        "seconds",
        "ms per node",
        "RPC per node",
        "RPC most",
        "RPC aggregator",
        "gas per node",
        "gas aggregator",
        title=f"{result.nodes} nodes on {result.chain} ({result.adapter})",
    )
    for name in ("setup", "join", *ROUND_PHASES):
        phase = result.phase(name)
        rpc, gas = phase.per_node(result.nodes)
        table.add_row(
            name,
            f"{phase.seconds:.2f}",
            f"{1000 * phase.seconds / result.nodes:.1f}",
            f"{rpc:.1f}",
            str(phase.node_rpc_max),
            str(phase.other_rpc),
            f"{gas:,.0f}",
            f"{phase.other_gas:,}",
        )
    console.print(table)
    run = result.aggregator
    above = (run.peak_kib - run.baseline_kib) / 1024
    console.print(
        f"aggregator: peak RSS {run.peak_kib / 1024:.0f} MB ({above:.0f} MB above its "
        f"baseline); {run.accepted} accepted, {run.rejected} rejected; "
        f"{result.paid_once} of {result.nodes} nodes paid exactly once"
    )


@app.command("aggregator-memory")
def aggregator_memory(
    updates: str = typer.Option("25,100", "--updates", help="Update counts, comma-separated."),
    adapter: str = typer.Option("smollm2", "--adapter", help="smollm2, small or tiny."),
    fetch_workers: int = typer.Option(2, "--fetch-workers", min=1),
) -> None:
    """Peak RSS of verifying and aggregating N updates (fresh process each): flat in N."""
    from bench.load import ADAPTERS, verify_memory

    if adapter not in ADAPTERS:
        raise ConfigError(f"--adapter must be one of {', '.join(ADAPTERS)}, got {adapter!r}")
    table = new_table(
        "updates", "MB of updates", "peak RSS above baseline MB", "in updates", "seconds"
    )
    for count in parse_counts(updates):
        with console.status(f"verifying {count} updates"):
            figures = verify_memory(count, ADAPTERS[adapter], fetch_workers=fetch_workers)
        table.add_row(
            str(count),
            f"{count * figures.update_bytes / 1e6:.0f}",
            f"{figures.above_kib * 1024 / 1e6:.0f}",
            f"{figures.above_kib * 1024 / figures.update_bytes:.1f}",
            f"{figures.seconds:.1f}",
        )
    console.print(table)


# --------------------------------------------------------------------------- all


@app.command("all")
def bench_all(
    quick: bool = typer.Option(False, "--quick", help="CI-sized smoke run (seconds per area)."),
    out: Path = typer.Option(
        Path("results") / "BENCHMARKS.md",
        "--out",
        "-o",
        help="Markdown report to write (default results/BENCHMARKS.md here; --out BENCHMARKS.md "
        "in the repository replaces the committed one).",
    ),
    gpu: bool | None = typer.Option(
        None, "--gpu/--no-gpu", help="Also run the CUDA variants (default: when CUDA is present)."
    ),
    network: str = typer.Option(
        "embedded", "--network", "-n", help="Chain for the gas figures (embedded: in-process)."
    ),
    train_model: str = typer.Option("tiny", "--train-model", help="tiny or smollm2."),
    round_model: str | None = typer.Option(
        None,
        "--round-model",
        help="Model of the round-overhead federations: tiny or smollm2 (default: smollm2; tiny "
        "with --quick).",
    ),
) -> None:
    """Every benchmark with its same-run baseline, one table per area, into a markdown report
    (the committed BENCHMARKS.md only when --out names it)."""
    import torch

    from bench.report import (
        DEFAULT,
        QUICK,
        aggregation_section,
        gas_section,
        machine,
        render,
        round_section,
        storage_section,
        timed,
        training_section,
    )

    if gpu and not torch.cuda.is_available():
        raise ConfigError(
            "--gpu needs a CUDA device and none is available", hint="run without --gpu"
        )
    use_gpu = torch.cuda.is_available() if gpu is None else gpu
    sizes = QUICK if quick else DEFAULT
    if round_model is not None:
        sizes = replace(sizes, round_model=round_model)
    command = _all_command(quick, out, gpu, network, train_model, round_model)
    areas: list[tuple[str, Callable[[Progress], Section]]] = [
        ("aggregation", lambda progress: aggregation_section(sizes, use_gpu, progress)),
        ("storage", lambda progress: storage_section(sizes, progress)),
        ("training", lambda progress: training_section(sizes, train_model, use_gpu, progress)),
        ("gas", lambda _progress: gas_section(sizes, open_chain(network))),
        ("round overhead", lambda _progress: round_section(sizes)),
    ]
    sections = []
    for name, run in areas:
        console.print(f"[bold]bench all[/]: {name} ...")
        with step_progress() as progress:
            sections.append(timed(lambda: run(progress)))  # noqa: B023 (called at once)
    text = render(sections, machine(), command, sizes)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out} ({sum(s.seconds for s in sections):.0f} s of measurements)")


def _all_command(
    quick: bool,
    out: Path,
    gpu: bool | None,
    network: str,
    train_model: str,
    round_model: str | None,
) -> str:
    parts = ["loraledger", "bench", "all"]
    if quick:
        parts.append("--quick")
    parts += ["--out", str(out)]
    if gpu is not None:
        parts.append("--gpu" if gpu else "--no-gpu")
    if network != "embedded":
        parts += ["--network", network]
    if train_model != "tiny":
        parts += ["--train-model", train_model]
    if round_model is not None:
        parts += ["--round-model", round_model]
    return shlex.join(parts)
