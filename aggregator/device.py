"""Where the aggregation maths runs, and in which dtype it accumulates.

CUDA when present, CPU otherwise. Every strategy visits updates in a fixed order (sorted by
node address) and uses only deterministic kernels (element-wise adds, sorts, QR/SVD of the
same inputs), so the same inputs give the same bits on the same device. Accumulation is in
float32 by default (float64 on request); results come back on the CPU.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from loraledger.errors import ConfigError

_ACCUMULATE_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class Compute:
    """Device and accumulation dtype for the aggregation maths."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if self.dtype not in _ACCUMULATE_DTYPES:
            raise ConfigError(f"accumulation dtype must be float32 or float64, got {self.dtype}")
        if self.device.type not in ("cpu", "cuda"):
            raise ConfigError(f"device must be cpu or cuda, got {self.device}")


def select_compute(gpu: bool | None = None, dtype: torch.dtype = torch.float32) -> Compute:
    """CUDA when present (``gpu=None``), CUDA or an error (``True``), CPU (``False``)."""
    if gpu is False:
        return Compute(torch.device("cpu"), dtype)
    if torch.cuda.is_available():
        return Compute(torch.device("cuda"), dtype)
    if gpu:
        raise ConfigError(
            "a GPU was requested but CUDA is not available",
            hint="drop --gpu to run on the CPU, or install a CUDA build of torch on a GPU host",
        )
    return Compute(torch.device("cpu"), dtype)


@contextmanager
def single_threaded() -> Iterator[None]:
    """torch's intra-op threads set to one for the block (the setting is restored after).

    Verification runs many small products and QRs per update and spreads the updates over
    its workers (``VerifyPolicy.fetch_workers``): that is how it uses the cores it is given.
    Intra-op threads on top of the workers oversubscribe the cores; on a busy 2-core machine
    they made a round's verification 10-20x slower (docs/results/load/README.md).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def synchronize(compute: Compute) -> None:
    """Wait for queued kernels (for timing); a no-op on the CPU."""
    if compute.device.type == "cuda":
        torch.cuda.synchronize(compute.device)


def allocate(compute: Compute, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Uninitialised tensors of ``compute.dtype``, one per key, views of one flat buffer.

    On the CPU the buffer is an anonymous mapping advised for transparent huge pages where
    the kernel offers them: filling 67 MB then costs about 32 page faults instead of 16,000,
    which on a busy machine is most of the time of an aggregation with few updates.
    """
    sizes = {key: math.prod(shape) for key, shape in shapes.items()}
    total = sum(sizes.values())
    if compute.device.type != "cpu" or total == 0:
        flat = torch.empty(total, dtype=compute.dtype, device=compute.device)
    else:
        nbytes = total * compute.dtype.itemsize
        buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            buffer.madvise(mmap.MADV_HUGEPAGE)
        flat = torch.frombuffer(buffer, dtype=compute.dtype)  # keeps the mapping alive
    views: dict[str, torch.Tensor] = {}
    offset = 0
    for key, shape in shapes.items():
        views[key] = flat[offset : offset + sizes[key]].view(shape)
        offset += sizes[key]
    return views
