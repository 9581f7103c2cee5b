"""The isolated checker: every way a worker can end is a reason code, and a crafted update that
used to kill the aggregator (deep JSON under a raised recursion limit) is only rejected."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.isolate import ISOLATION_AVAILABLE, IsolationLimits, run_isolated, worker_memory
from loraledger.errors import ConfigError, UpdateRejected
from loraledger.update import REASONS, check_structure

pytestmark = pytest.mark.skipif(not ISOLATION_AVAILABLE, reason="the isolated worker is Linux-only")

LIMITS = IsolationLimits(timeout_s=10, memory_bytes=worker_memory(64 << 10))
REPO = Path(__file__).resolve().parents[2]


def outcome(work: object) -> str | None:
    try:
        run_isolated(work, LIMITS)  # type: ignore[arg-type]
    except UpdateRejected as exc:
        return exc.reason
    return None


def test_a_worker_that_returns_is_no_rejection() -> None:
    assert outcome(lambda: sum(range(1000))) is None


def test_the_workers_own_rejection_comes_back_with_its_code_detail_and_hint() -> None:
    def reject() -> None:
        raise UpdateRejected("bad_shape", "lora_A has shape (3,)", hint="retrain")

    with pytest.raises(UpdateRejected) as info:
        run_isolated(reject, LIMITS)
    assert info.value.reason == "bad_shape"
    assert str(info.value) == "bad_shape: lora_A has shape (3,)"
    assert info.value.hint == "retrain"


def test_a_segfault_in_the_worker_is_checker_crashed_and_the_parent_lives_on() -> None:
    assert outcome(lambda: ctypes.string_at(0)) == "checker_crashed"
    assert outcome(lambda: None) is None


def test_the_real_crash_json_under_a_recursion_limit_of_100000_is_checker_crashed() -> None:
    deep = "[" * 200_000 + "]" * 200_000

    def parse_unguarded() -> None:
        sys.setrecursionlimit(100_000)  # in the worker only, as py_ecc does at import
        json.loads(deep)

    assert outcome(parse_unguarded) == "checker_crashed"


def test_memory_over_the_bound_is_checker_memory() -> None:
    assert outcome(lambda: bytearray(2 * LIMITS.memory_bytes)) == "checker_memory"


def test_a_worker_past_its_time_limit_is_killed_as_checker_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(UpdateRejected) as info:
        run_isolated(lambda: time.sleep(30), IsolationLimits(timeout_s=0.3, memory_bytes=1 << 28))
    assert info.value.reason == "checker_timeout"
    assert time.monotonic() - started < 5


def test_any_other_exception_in_the_worker_is_check_failed_with_its_type() -> None:
    with pytest.raises(UpdateRejected) as info:
        run_isolated(lambda: {}["missing"], LIMITS)
    assert info.value.reason == "check_failed"
    assert "KeyError" in str(info.value)


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        IsolationLimits(timeout_s=0, memory_bytes=1)
    with pytest.raises(ConfigError, match="memory_bytes"):
        IsolationLimits(timeout_s=1, memory_bytes=0)


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=256))
def test_isolated_structure_check_of_any_bytes_is_ok_or_a_format_code(data: bytes) -> None:
    reason = outcome(lambda: check_structure(data))
    assert reason is None or reason in REASONS


# --------------------------------------------------------------------------- end to end

E2E = """
import hashlib, json, sys
from pathlib import Path
import py_ecc  # noqa: F401  raises the recursion limit to 100,000 at import, as in the aggregator
import torch
from safetensors.torch import save as st_save
from aggregator.verify import Commitment, VerifyPolicy, verify_round
from ipfs import EmbeddedConfig, EmbeddedStore
from loraledger.update import (
    FORMAT_VERSION, METADATA_KEY, GlobalAdapterMetadata, PeftSpec, UpdateMetadata,
    build_global_adapter, build_update, parse_global_adapter, peft_adapter_config,
)
from tests.aggregator.lora_builders import addr, lora_tensors

assert sys.getrecursionlimit() >= 100_000
root, isolate = Path(sys.argv[1]), sys.argv[2] == "isolate"
spec, model = PeftSpec(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj")), "base/model"
start_tensors = lora_tensors(0, scale=0.1)
start = parse_global_adapter(build_global_adapter(start_tensors, GlobalAdapterMetadata(
    format_version=FORMAT_VERSION, task_id=1, round=0, base_model=model, peft=spec,
    adapter_config=peft_adapter_config(spec, model))))
store = EmbeddedStore(EmbeddedConfig(root=root / "store"))

def meta(node):
    return UpdateMetadata(format_version=FORMAT_VERSION, task_id=1, round=1, base_model=model,
                          peft=spec, node=node, num_examples=10)

def honest(seed):
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in start_tensors.items()}

def nest(levels):
    return "[" * levels + "]" * levels

blobs = {addr(i): build_update(honest(i), meta(addr(i))) for i in (1, 2)}
# the metadata string nests 100,000 levels (the reported crash)
blobs[addr(3)] = st_save(honest(3), metadata={METADATA_KEY: nest(100_000)})
# the header itself nests 100,000 levels (a safetensors writer would never do this)
header = ('{"x":' + nest(100_000) + "}").encode()
blobs[addr(4)] = len(header).to_bytes(8, "little") + header
# nesting that fits the task's header cap
blobs[addr(5)] = st_save(honest(5), metadata={METADATA_KEY: nest(20_000)})
commitments = [
    Commitment(node, store.put_bytes(data), hashlib.sha256(data).hexdigest(), 10, block=i)
    for i, (node, data) in enumerate(blobs.items())
]
verification = verify_round(
    store, commitments, task_id=1, round_=1, start=start, workdir=root / "work",
    policy=VerifyPolicy(outliers=None, max_loss_increase=None, isolate=isolate,
                        free_rider_rtol=None, copy_rtol=None),
)
print(json.dumps({c.commitment.node: [c.reason, c.detail] for c in verification.checked}))
"""


@pytest.mark.parametrize("mode", ["isolate", "in-process"])
def test_deeply_nested_json_no_longer_kills_the_aggregator_and_the_round_goes_on(
    tmp_path: Path, mode: str
) -> None:
    """The reported crash, end to end: the recursion limit raised to 100,000 as the chain
    dependencies do, a round with two honest updates and crafted ones (metadata and header
    nesting 100,000 levels, metadata nesting 20,000 within the task's header cap). Before the
    fix the process died of SIGSEGV; now the crafted ones are rejected with a code (the header
    cap, then the depth limit) and the honest ones accepted, with the worker and without."""
    run = subprocess.run(
        [sys.executable, "-c", E2E, str(tmp_path), mode],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    verdicts = json.loads(run.stdout.strip().splitlines()[-1])
    reasons = [reason for reason, _ in verdicts.values()]
    assert reasons == [None, None, "too_large", "too_large", "bad_metadata"]
    details = [detail for _, detail in verdicts.values()]
    assert "over the task's cap" in details[2]  # refused while fetching
    assert "nests JSON deeper than 16 levels" in details[4]
