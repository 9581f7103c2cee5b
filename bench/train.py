"""The node's training path against a plain transformers+peft loop (``loraledger bench train``).

Both run in the same process on the same loaded model, the same examples in the same
order, the same LoRA settings and seed, alternating, after one warm-up each; equal last
losses show they did the same maths. Throughput is non-padding tokens per second of the
training loop (the node's loop as timed inside ``train_round``); the whole ``train_round``
call (tokenization, adapter attach, training, serialization, digest) is shown beside it.
Peak memory is the process RSS (CPU) or ``torch.cuda.max_memory_allocated`` (GPU).
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress

from fl_node.data import Encoded, Example, NodeData, encode_all, sample_examples
from fl_node.model import LoadedModel, ModelConfig, create_tiny_model, load_base_model
from fl_node.train import NodeTrainConfig, TrainSettings, peft_config_for, train_round
from loraledger.errors import ConfigError
from loraledger.update import PeftSpec

TARGET_RATIO = 0.95
PLAIN = "plain peft loop"
NODE = "train_round"


@dataclass(frozen=True)
class Measurement:
    path: str
    tokens: int
    seconds: float  # the training loop
    total_seconds: float  # the whole call (node path: tokenize, attach, train, serialize)
    peak_bytes: int | None
    last_loss: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


def measure(
    model: str,
    steps: int,
    batch_size: int,
    max_length: int,
    rank: int,
    repeats: int,
    gpu: bool,
    progress: Progress | None = None,
) -> list[tuple[str, Measurement, Measurement]]:
    """Per variant (fp32 CPU; on CUDA with ``gpu``: 16-bit and 4-bit), (plain, node) runs.

    ``progress`` counts the optimizer steps of each variant (none: silent).
    """
    if model not in ("tiny", "smollm2"):
        raise ConfigError(f"--model must be tiny or smollm2, got {model!r}")
    if gpu and not torch.cuda.is_available():
        raise ConfigError(
            "--gpu needs a CUDA device and none is available",
            hint="run without --gpu for the CPU comparison",
        )
    if repeats < 1:
        raise ConfigError(f"--repeats must be positive, got {repeats}")
    progress = progress or Progress(console=Console(quiet=True), disable=True)
    settings = TrainSettings(
        max_steps=steps, batch_size=batch_size, max_length=max_length, learning_rate=1e-3, seed=0
    )
    spec = PeftSpec(rank=rank, alpha=2.0 * rank)
    examples = sample_examples()
    results: list[tuple[str, Measurement, Measurement]] = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        source = "smollm2"
        if model == "tiny":
            corpus = [m.content for e in examples for m in e.messages]
            source = str(create_tiny_model(Path(tmp) / "tiny", corpus))
        variants = (
            [
                ("16-bit", ModelConfig(source=source, dtype="bfloat16")),
                ("4-bit", ModelConfig(source=source, quantization="4bit")),
            ]
            if gpu
            else [
                (
                    "fp32 cpu" if not torch.cuda.is_available() else "auto",
                    ModelConfig(source=source),
                )
            ]
        )
        for name, model_config in variants:
            loaded = load_base_model(model_config)
            base, ours = _compare(loaded, examples, settings, spec, repeats, progress)
            del loaded
            gc.collect()
            results.append((name, base, ours))
    return results


def _compare(
    loaded: LoadedModel,
    examples: list[Example],
    settings: TrainSettings,
    spec: PeftSpec,
    repeats: int,
    progress: Progress,
) -> tuple[Measurement, Measurement]:
    data = NodeData(train=tuple(examples[: settings.max_steps * settings.batch_size * 2]))  # type: ignore[operator]
    encoded = encode_all(loaded.tokenizer, data.train, settings.max_length)
    config = NodeTrainConfig(task_id=0, round=1, node="bench", peft=spec, train=settings)
    warm = settings.replace(max_steps=2)
    _plain_loop(loaded, encoded, warm, spec)
    train_round(config.replace(train=warm), loaded, data)
    best: dict[str, Measurement] = {}
    total = repeats * 2 * settings.max_steps  # type: ignore[operator]
    task = progress.add_task("benchmark", total=total)
    for _ in range(repeats):
        for path in (PLAIN, NODE):
            progress.update(task, description=f"{path}")
            with peak_memory(loaded.device) as peak:
                began = time.perf_counter()
                if path == PLAIN:
                    seconds, tokens, last = _plain_loop(
                        loaded, encoded, settings, spec, lambda: progress.advance(task)
                    )
                else:
                    result = train_round(
                        config, loaded, data, progress=lambda _r: progress.advance(task)
                    )
                    seconds, tokens, last = (
                        result.train_seconds,
                        result.metrics.train_tokens,
                        result.losses[-1],
                    )
                call_seconds = time.perf_counter() - began
            m = Measurement(path, tokens, seconds, call_seconds, peak(), last)
            if path not in best or m.tokens_per_s > best[path].tokens_per_s:
                best[path] = m
    progress.remove_task(task)
    return best[PLAIN], best[NODE]


def _plain_loop(
    loaded: LoadedModel,
    encoded: list[Encoded],
    settings: TrainSettings,
    spec: PeftSpec,
    on_step: Callable[[], object] | None = None,
) -> tuple[float, int, float]:
    """The reference: the loop the transformers/peft docs teach, nothing of ours in it."""
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import DataCollatorForSeq2Seq

    features = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in encoded]
    collator = DataCollatorForSeq2Seq(loaded.tokenizer, padding=True, return_tensors="pt")
    base = loaded.model
    if loaded.quantized:
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    torch.manual_seed(settings.seed)
    model = get_peft_model(base, peft_config_for(spec))
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate
    )
    generator = torch.Generator().manual_seed(settings.seed)
    order: list[int] = []
    tokens, loss_value = 0, float("nan")
    model.train()
    began = time.perf_counter()
    for _ in range(settings.max_steps or 1):
        if len(order) < settings.batch_size:
            order += torch.randperm(len(features), generator=generator).tolist()
        chunk, order = order[: settings.batch_size], order[settings.batch_size :]
        batch = collator([features[i] for i in chunk])
        batch = {k: v.to(loaded.device) for k, v in batch.items()}
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        tokens += int(batch["attention_mask"].sum())
        if on_step is not None:
            on_step()
    seconds = time.perf_counter() - began
    model.unload()
    loaded.model.eval()
    return seconds, tokens, loss_value


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[Callable[[], int | None]]:
    """Yield a callable giving the peak memory in bytes seen inside the block."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield lambda: torch.cuda.max_memory_allocated(device)
        return
    peak = [_rss()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], _rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0] or None
    finally:
        stop.set()
        thread.join()


def _rss() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
