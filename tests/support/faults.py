"""Real operating-system faults for tests: a disk that fills up."""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def disk_full_after(size: int) -> Iterator[None]:
    """Every file write of this process that would take a file past ``size`` bytes fails with
    ``EFBIG`` ("File too large"), as a full disk fails with ``ENOSPC``: the kernel's own
    per-process file size limit (``RLIMIT_FSIZE``), its signal ignored so the write returns the
    error. Both are restored on leaving."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
