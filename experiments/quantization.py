"""Experiment 5: 16-bit vs 4-bit (QLoRA) base model in the same federation (CUDA only).

The same shards, seeds and schedule train once on the base model loaded in bfloat16 and
once loaded in 4-bit NF4 (bitsandbytes); reported: held-out loss across the nodes, time
and peak GPU memory. On a CPU 4-bit training is ~20x slower than 16-bit, so the command
refuses to run there.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import torch

from experiments.aggregation import homogeneous
from experiments.config import (
    ExperimentConfig,
    environment,
    load_model,
    node_shards,
    participants,
)
from experiments.report import Report, Series, line_plot
from experiments.runner import Hooks, RunResult, run_federated
from loraledger.errors import ConfigError

NAME = "quantization"
VARIANTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("16-bit", {"dtype": "bfloat16"}),
    ("4-bit", {"quantization": "4bit"}),
)


def require_cuda() -> None:
    """Refuse with one clear line where there is no CUDA device."""
    if not torch.cuda.is_available():
        raise ConfigError(
            "the quantization experiment needs a CUDA GPU: 4-bit training on a CPU is ~20x "
            "slower than 16-bit",
            hint="run it on a machine with CUDA (see docs/experiments.md)",
        )


def planned_steps(config: ExperimentConfig) -> int:
    return len(VARIANTS) * config.nodes * config.rounds * config.steps


def run(config: ExperimentConfig, out: Path, command: str, hooks: Hooks | None = None) -> Report:
    """The federation on a 16-bit and on a 4-bit base model."""
    require_cuda()
    runs: list[tuple[RunResult, int]] = []
    with tempfile.TemporaryDirectory(prefix="loraledger-experiment-") as tmp:
        members = participants(config, node_shards(config))
        for label, overrides in VARIANTS:
            model = load_model(config, Path(tmp), **overrides)
            torch.cuda.reset_peak_memory_stats()
            result = run_federated(
                label, model, config, members, homogeneous("fedavg"), hooks=hooks
            )
            runs.append((result, torch.cuda.max_memory_allocated()))
            del model
            gc.collect()
            torch.cuda.empty_cache()
    report = Report(
        experiment=NAME,
        title="16-bit vs 4-bit base model",
        command=command,
        config=config.to_json(),
        environment=environment(),
    )
    report.add_table(
        "Eval loss across the nodes' held-out sets after the last round",
        ["base model", "mean", "std", "min", "seconds", "peak GPU memory (MiB)"],
        [
            [r.label, r.mean, r.std, r.min, f"{r.seconds:.1f}", f"{peak / 2**20:,.0f}"]
            for r, peak in runs
        ],
    )
    rounds = list(range(config.rounds + 1))
    line_plot(
        out / "loss_per_round.png",
        [Series(r.label, rounds, r.mean_curve()) for r, _ in runs],
        title="16-bit vs 4-bit: mean held-out loss across nodes",
        xlabel="round",
    )
    report.plots.append(("loss_per_round.png", "mean held-out loss per round"))
    report.data = {r.label: r.to_json() | {"peak_gpu_bytes": peak} for r, peak in runs}
    report.write(out)
    return report
