"""Untrusted parsing in a throwaway worker process: whatever crafted bytes do to the parser,
the aggregator survives and the update gets a reason code.

:func:`run_isolated` forks a worker that lowers its own address-space limit
(``RLIMIT_AS``: what it inherited plus :func:`worker_memory`), runs one function (the
update's structural check, :func:`loraledger.update.check_structure`: header JSON, offsets,
dtypes, shapes, metadata JSON; pure Python, no torch, memory bounded by the header cap),
writes the outcome to a pipe and exits with ``os._exit``. The parent waits with a timeout and
turns every way the worker can end into an outcome:

============================  ===================================================
the worker                    outcome
============================  ===================================================
returned                      :func:`run_isolated` returns (the caller then parses in
                              process, now known to be safe)
raised ``UpdateRejected``     the same rejection, raised in the parent
raised ``MemoryError``        ``checker_memory``
raised anything else          ``check_failed`` (with the exception's type and text)
died on a signal (SIGSEGV)    ``checker_crashed``
ran past ``timeout_s``        killed (SIGKILL); ``checker_timeout``
============================  ===================================================

Why fork and not a fresh interpreter: the worker needs no import (the parent already has
every module), shares the update's bytes copy-on-write, and starts in about a millisecond.
The worker never touches torch, logging or the standard streams, whose locks another thread
of the parent may hold at the fork, and leaves with ``os._exit`` (no atexit, no flush).

Linux only (``os.pidfd_open``, ``/proc/self/statm``, and fork being safe there for code that
stays in pure Python). Elsewhere :data:`ISOLATION_AVAILABLE` is false and the function runs
in process: the depth- and size-limited parser (:func:`loraledger.update.load_json_limited`)
still prevents the known stack overflow, but an unknown crash of the parser would take the
process with it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from aggregator.errors import (
    REASON_CHECK_FAILED,
    REASON_CHECKER_CRASHED,
    REASON_CHECKER_MEMORY,
    REASON_CHECKER_TIMEOUT,
)
from loraledger.errors import ConfigError, UpdateRejected

ISOLATION_AVAILABLE = sys.platform.startswith("linux")
"""Whether :func:`run_isolated` forks a worker here (else it runs the function in process)."""

_BASE_MEMORY = 256 << 20
"""Address space a worker may add for the interpreter's own needs (allocator arenas: glibc
reserves 64 MiB per new heap)."""

_PER_HEADER_BYTE = 64
"""Address space per header byte: Python objects of parsed JSON take ~10-50 bytes per byte."""

_EXIT_MEMORY = 3
_EXIT_FAILED = 4
_MESSAGE_CHARS = 4000  # a detail longer than this is cut (the pipe buffer holds 64 KiB)


@dataclass(frozen=True)
class IsolationLimits:
    """What one worker may use: seconds of wall time, bytes of address space beyond what it
    inherits from the parent."""

    timeout_s: float
    memory_bytes: int

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.memory_bytes <= 0:
            raise ConfigError(f"memory_bytes must be positive, got {self.memory_bytes}")


def worker_memory(max_header_bytes: int) -> int:
    """The memory bound of a worker that reads a header of at most ``max_header_bytes``:
    256 MiB + 64 bytes per header byte (~266 MiB for a task's ~160 KiB header)."""
    return _BASE_MEMORY + _PER_HEADER_BYTE * max_header_bytes


def run_isolated(work: Callable[[], object], limits: IsolationLimits) -> None:
    """Run ``work()`` in a forked worker (see the module docstring); return when it returned,
    else raise :class:`UpdateRejected` with its rejection or a ``checker_*``/``check_failed``
    code. Without :data:`ISOLATION_AVAILABLE`, run ``work()`` in process."""
    if not ISOLATION_AVAILABLE:
        work()
        return
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise UpdateRejected(REASON_CHECK_FAILED, f"cannot start a checker: {exc}") from None
    if pid == 0:  # the worker
        os.close(read_fd)
        _work_and_exit(work, limits.memory_bytes, write_fd)
    os.close(write_fd)
    try:
        status = _wait(pid, limits.timeout_s)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise UpdateRejected(
                REASON_CHECKER_TIMEOUT, f"the checker ran past {limits.timeout_s:g} s"
            )
        message = _drain(read_fd)
    finally:
        os.close(read_fd)
    _raise_outcome(status, message, limits)


def _work_and_exit(work: Callable[[], object], memory_bytes: int, write_fd: int) -> NoReturn:
    code = _EXIT_FAILED
    try:
        _limit_address_space(memory_bytes)
        message: dict[str, str | None]
        try:
            work()
            message = {"outcome": "ok"}
        except UpdateRejected as exc:
            detail = str(exc).removeprefix(f"{exc.reason}: ")
            message = {
                "outcome": "rejected",
                "reason": exc.reason,
                "detail": detail[:_MESSAGE_CHARS],
                "hint": exc.hint,
            }
        except MemoryError:
            raise
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            message = {"outcome": "failed", "detail": detail[:_MESSAGE_CHARS]}
        os.write(write_fd, json.dumps(message).encode())
        code = 0
    except MemoryError:
        code = _EXIT_MEMORY
    except BaseException:  # the exit code says it; the worker must never return
        code = _EXIT_FAILED
    finally:
        os._exit(code)


def _limit_address_space(extra: int) -> None:
    """Lower the soft ``RLIMIT_AS`` to the current address space plus ``extra`` bytes."""
    import resource  # Unix only; the worker runs on Linux

    with open("/proc/self/statm", "rb") as handle:
        current = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = current + extra
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _wait(pid: int, timeout_s: float) -> int | None:
    """The worker's wait status, or ``None`` if it is still running after ``timeout_s``."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # a kernel before 5.3: poll
        return _wait_polling(pid, timeout_s)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout_s * 1000):
            return None
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1]


def _wait_polling(pid: int, timeout_s: float) -> int | None:
    deadline, delay = time.monotonic() + timeout_s, 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(2 * delay, 0.05)


def _drain(read_fd: int) -> bytes:
    """What the (exited) worker wrote. Non-blocking: a sibling worker forked by another thread
    may hold a copy of the write end, so end of file may come late."""
    os.set_blocking(read_fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(read_fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _raise_outcome(status: int, message: bytes, limits: IsolationLimits) -> None:
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise UpdateRejected(REASON_CHECKER_CRASHED, f"the checker died of {name}")
    code = os.waitstatus_to_exitcode(status)
    if code == _EXIT_MEMORY:
        raise UpdateRejected(
            REASON_CHECKER_MEMORY,
            f"the checker needed more than {limits.memory_bytes >> 20} MiB of memory",
        )
    try:
        outcome = json.loads(message) if code == 0 else None
    except ValueError:
        outcome = None
    if not isinstance(outcome, dict) or outcome.get("outcome") not in {"ok", "rejected", "failed"}:
        raise UpdateRejected(
            REASON_CHECK_FAILED, f"the checker exited with code {code} and no outcome"
        )
    if outcome["outcome"] == "rejected":
        raise UpdateRejected(
            str(outcome["reason"]), str(outcome["detail"]), hint=outcome.get("hint")
        )
    if outcome["outcome"] == "failed":
        raise UpdateRejected(REASON_CHECK_FAILED, str(outcome["detail"]))
