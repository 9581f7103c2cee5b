"""Experiment 5: 16-bit vs 4-bit (QLoRA) base model in the same federation (CUDA only).

The same shards, seeds and schedule train once on the base model loaded in bfloat16 and
once loaded in 4-bit NF4 (bitsandbytes); reported: held-out loss across the nodes, time
and peak GPU memory (one run per seed; figures are means over the seeds with 95%
intervals). On a CPU 4-bit training is ~20x slower than 16-bit, so the command refuses to
run there.
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
from experiments.seeds import band_note, by_key
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
    return len(config.seeds) * len(VARIANTS) * config.nodes * config.rounds * config.steps


def run(config: ExperimentConfig, out: Path, command: str, hooks: Hooks | None = None) -> Report:
    """The federation on a 16-bit and on a 4-bit base model."""
    require_cuda()
    per_seed: list[dict[str, RunResult]] = []
    peaks: dict[str, list[int]] = {label: [] for label, _ in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="loraledger-experiment-") as tmp:
        for label, overrides in VARIANTS:
            model = load_model(config, Path(tmp), **overrides)
            for k, seed in enumerate(config.seeds):
                seeded = config.for_seed(seed)
                members = participants(seeded, node_shards(seeded))
                torch.cuda.reset_peak_memory_stats()
                result = run_federated(
                    label, model, seeded, members, homogeneous("fedavg"), hooks=hooks
                )
                peaks[label].append(torch.cuda.max_memory_allocated())
                if k == len(per_seed):
                    per_seed.append({})
                per_seed[k][label] = result
            del model
            gc.collect()
            torch.cuda.empty_cache()
    runs = by_key(config.seeds, per_seed)
    report = Report(
        experiment=NAME,
        title="16-bit vs 4-bit base model",
        command=command,
        config=config.to_json(),
        environment=environment(),
    )
    report.add_table(
        "Eval loss across the nodes' held-out sets after the last round",
        ["base model", "mean", "std", "min", "seconds per seed", "peak GPU memory (MiB)"],
        [
            [r.label, r.mean, r.std, r.min, f"{r.seconds:.1f}", f"{max(peaks[k]) / 2**20:,.0f}"]
            for k, r in runs.items()
        ],
    )
    rounds = list(range(config.rounds + 1))
    line_plot(
        out / "loss_per_round.png",
        [Series(r.label, rounds, r.mean_curve()) for r in runs.values()],
        title="16-bit vs 4-bit: mean held-out loss across nodes",
        xlabel="round",
    )
    report.plots.append(("loss_per_round.png", "mean held-out loss per round"))
    report.notes.append(band_note(config.seeds))
    report.data = {k: r.to_json() | {"peak_gpu_bytes": peaks[k]} for k, r in runs.items()}
    report.write(out)
    return report
