"""What example-level DP-SGD costs on the node (``loraledger bench privacy``).

Two measurements in one process, on one loaded model, alternating after a warm-up each:

- the headline: ``train_round`` without and with DP-SGD (same examples, settings and seed;
  DP-SGD draws Poisson samples of the expected batch size), as training tokens per second of
  the loop; the ratio is private / clear;
- where a DP-SGD step spends its time: the same library objects ``train_round`` uses (a peft
  model, Opacus's ``GradSampleModule`` and ``DPOptimizer``), stepped on the same fixed batches
  with a timer around each phase: forward, backward (with Opacus's hooks this includes every
  example's gradient of the LoRA factors), clip and noise (``DPOptimizer.pre_step``), and the
  AdamW update; against the same phases of a clear step (gradient clipping counted with the
  update, as the node does).
"""

from __future__ import annotations

import gc
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress

from bench.train import Measurement, peak_memory
from fl_node.data import Encoded, NodeData, encode_all, sample_examples
from fl_node.model import LoadedModel, ModelConfig, create_tiny_model, load_base_model
from fl_node.train import (
    ExampleDP,
    NodeTrainConfig,
    TrainSettings,
    attach_adapter,
    batches,
    detach_adapter,
    per_example_loss,
    train_round,
)
from loraledger.errors import ConfigError
from loraledger.update import PeftSpec

CLEAR = "train_round"
PRIVATE = "train_round DP-SGD"
PHASES = ("forward", "backward", "clip + noise", "update")


@dataclass(frozen=True)
class Phases:
    """Seconds per step spent in each of :data:`PHASES` (mean over the timed steps)."""

    forward: float
    backward: float
    privatize: float
    update: float

    @property
    def step(self) -> float:
        return self.forward + self.backward + self.privatize + self.update

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.forward, self.backward, self.privatize, self.update)


@dataclass(frozen=True)
class PrivacyBench:
    clear: Measurement
    private: Measurement
    clear_phases: Phases
    private_phases: Phases
    epsilon: float  # what one private run spent (at delta 1e-5, RDP)

    @property
    def ratio(self) -> float:
        """Private tokens/s over clear tokens/s."""
        return self.private.tokens_per_s / self.clear.tokens_per_s


def measure(
    model: str,
    steps: int,
    batch_size: int,
    max_length: int,
    rank: int,
    noise_multiplier: float,
    repeats: int,
    progress: Progress | None = None,
) -> PrivacyBench:
    if model not in ("tiny", "smollm2"):
        raise ConfigError(f"--model must be tiny or smollm2, got {model!r}")
    if repeats < 1 or steps < 1:
        raise ConfigError(f"--repeats and --steps must be positive, got {repeats} and {steps}")
    progress = progress or Progress(console=Console(quiet=True), disable=True)
    dp = ExampleDP(noise_multiplier=noise_multiplier, clip_norm=1.0, noise_seed=0)  # repeatable
    clear = TrainSettings(
        max_steps=steps, batch_size=batch_size, max_length=max_length, learning_rate=1e-3
    )
    spec = PeftSpec(rank=rank, alpha=2.0 * rank)
    examples = sample_examples()
    with tempfile.TemporaryDirectory(prefix="bench-privacy-") as tmp:
        source = "smollm2"
        if model == "tiny":
            corpus = [m.content for e in examples for m in e.messages]
            source = str(create_tiny_model(Path(tmp) / "tiny", corpus))
        loaded = load_base_model(ModelConfig(source=source))
        data = NodeData(train=tuple(examples[: steps * batch_size * 4]))
        config = NodeTrainConfig(task_id=0, round=1, node="bench", peft=spec, train=clear)
        private = clear.replace(privacy=dp)
        task = progress.add_task("train_round", total=repeats * 2 * steps)
        best: dict[str, Measurement] = {}
        epsilon = 0.0
        for settings in (clear, private):  # warm-up
            train_round(config.replace(train=settings.replace(max_steps=2)), loaded, data)
        for _ in range(repeats):
            for path, settings in ((CLEAR, clear), (PRIVATE, private)):
                progress.update(task, description=path)
                with peak_memory(loaded.device) as peak:
                    began = time.perf_counter()
                    result = train_round(
                        config.replace(train=settings),
                        loaded,
                        data,
                        progress=lambda _r: progress.advance(task),
                    )
                    total = time.perf_counter() - began
                m = Measurement(
                    path,
                    result.metrics.train_tokens,
                    result.train_seconds,
                    total,
                    peak(),
                    result.losses[-1],
                )
                if path not in best or m.tokens_per_s > best[path].tokens_per_s:
                    best[path] = m
                if result.metrics.privacy is not None:
                    epsilon = result.metrics.privacy.epsilon
        progress.remove_task(task)
        encoded = encode_all(loaded.tokenizer, data.train, max_length)
        phases = progress.add_task("phases", total=4 * steps)

        def step() -> None:
            progress.advance(phases)

        _phases(loaded, encoded, spec, clear, None, 1, step)  # warm-up
        _phases(loaded, encoded, spec, clear, dp, 1, step)
        clear_phases = _phases(loaded, encoded, spec, clear, None, steps, step)
        private_phases = _phases(loaded, encoded, spec, clear, dp, steps, step)
        progress.remove_task(phases)
        del loaded
        gc.collect()
    return PrivacyBench(best[CLEAR], best[PRIVATE], clear_phases, private_phases, epsilon)


def _phases(
    loaded: LoadedModel,
    encoded: list[Encoded],
    spec: PeftSpec,
    settings: TrainSettings,
    dp: ExampleDP | None,
    steps: int,
    on_step: Callable[[], object],
) -> Phases:
    """Mean seconds per phase over ``steps`` steps of fixed batches (``dp``: DP-SGD's step)."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    torch.manual_seed(0)
    peft_model = attach_adapter(loaded, spec)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    adam = torch.optim.AdamW(params, lr=settings.learning_rate)
    model = peft_model if dp is None else GradSampleModule(peft_model, loss_reduction="mean")
    optimizer = (
        None
        if dp is None
        else DPOptimizer(
            adam,
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.clip_norm,
            expected_batch_size=settings.batch_size,
        )
    )
    stream = batches(encoded * steps, settings.batch_size, loaded.tokenizer.pad_token_id, None)
    sync = torch.cuda.synchronize if loaded.device.type == "cuda" else (lambda: None)
    totals = [0.0, 0.0, 0.0, 0.0]
    model.train()
    try:
        for _ in range(steps):
            batch = {k: v.to(loaded.device) for k, v in next(stream).items()}
            marks = [time.perf_counter()]
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss = per_example_loss(out.logits, batch["labels"]).mean()
            sync()
            marks.append(time.perf_counter())
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            sync()
            marks.append(time.perf_counter())
            if optimizer is not None:
                optimizer.pre_step()  # clip each example's gradient, sum, add noise, scale
            sync()
            marks.append(time.perf_counter())
            if optimizer is None:
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm or 1.0)
            adam.step()
            adam.zero_grad(set_to_none=True)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
            sync()
            marks.append(time.perf_counter())
            for i in range(4):
                totals[i] += marks[i + 1] - marks[i]
            on_step()
    finally:
        if isinstance(model, GradSampleModule):
            model._close()
        detach_adapter(peft_model, loaded)
    forward, backward, privatize, update = (t / steps for t in totals)
    return Phases(forward, backward, privatize, update)
