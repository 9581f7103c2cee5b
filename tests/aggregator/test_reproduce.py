"""Reproducible aggregation: a re-run of any strategy in another dtype (or on another thread
count, BLAS code path or device) agrees with the published adapter within the tolerance on
every weight change, for random heterogeneous ranks, near-equal and tied singular values and
rank-deficient updates; and any perturbation above the tolerance is caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from aggregator.client_update import LORA_A, LORA_B, ClientUpdate
from aggregator.combine import STRATEGIES, StrategyConfig, combine
from aggregator.device import Compute
from aggregator.flexlora import RankTarget, truncation_excess
from aggregator.reproduce import (
    TOLERANCE,
    Comparison,
    compare_adapters,
    compute_params,
    recorded_compute,
)
from loraledger.errors import ConfigError
from loraledger.update import PeftSpec
from tests.aggregator.lora_builders import addr

SPEC = PeftSpec(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj"))
MODULES = (("q_proj", 16, 12), ("v_proj", 10, 12))
F32, F64 = Compute(dtype=torch.float32), Compute(dtype=torch.float64)
Spectrum = str  # "random" | "near-equal" | "tied" | "deficient"


def module_factors(
    g: torch.Generator, out: int, inner: int, rank: int, spectrum: Spectrum
) -> tuple[torch.Tensor, torch.Tensor]:
    """``B [out, rank]``, ``A [rank, inner]`` whose product has the asked-for spectrum."""
    if spectrum == "random":
        return torch.randn(out, rank, generator=g), torch.randn(rank, inner, generator=g)
    u, _ = torch.linalg.qr(torch.randn(out, rank, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(inner, rank, generator=g, dtype=torch.float64))
    k = u.shape[1]
    values = {
        "near-equal": 1.0 + 1e-7 * torch.arange(k, dtype=torch.float64),
        "tied": torch.ones(k, dtype=torch.float64),
        "deficient": torch.cat(
            [torch.ones(max(1, k // 2)), torch.zeros(k - max(1, k // 2))]
        ).double(),
    }[spectrum]
    root = values.sqrt()
    b = torch.zeros(out, rank, dtype=torch.float64)
    a = torch.zeros(rank, inner, dtype=torch.float64)
    b[:, :k], a[:k] = u * root, root[:, None] * v[:, :k].T
    return b.float(), a.float()


def update(
    i: int,
    rank: int,
    spectrum: Spectrum,
    seed: int,
    modules: tuple[tuple[str, int, int], ...] = MODULES,
) -> ClientUpdate:
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, out, inner in modules:
        b, a = module_factors(g, out, inner, rank, spectrum)
        prefix = f"base_model.model.model.layers.0.self_attn.{name}"
        tensors[prefix + LORA_A], tensors[prefix + LORA_B] = a * 0.3, b * 0.3
    return ClientUpdate.in_memory(
        addr(i + 1), tensors, num_examples=10 + 7 * i, rank=rank, alpha=2.0 * rank
    )


def start_adapter(modules: tuple[tuple[str, int, int], ...] = MODULES) -> dict[str, torch.Tensor]:
    return dict(update(99, SPEC.rank, "random", 1234, modules).load())


def rerun_compare(
    config: StrategyConfig,
    updates: list[ClientUpdate],
    published: dict[str, torch.Tensor],
    reference: dict[str, torch.Tensor],
    used: str,
) -> Comparison:
    target = RankTarget(SPEC.rank, SPEC.alpha)
    return compare_adapters(
        reference,
        published,
        target.scaling,
        TOLERANCE,
        unique_factors=used != "flexlora",
        excess=(lambda m, a, b: truncation_excess(updates, m, a, b, target))
        if used == "flexlora"
        else None,
    )


round_inputs = st.tuples(
    st.lists(st.sampled_from([1, 2, 4, 8]), min_size=2, max_size=6),
    st.sampled_from(["random", "near-equal", "tied", "deficient"]),
    st.integers(0, 2**16),
)


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=12, deadline=None)
@given(inputs=round_inputs)
def test_a_rerun_in_another_dtype_agrees_and_a_perturbation_above_tolerance_does_not(
    strategy: str, inputs: tuple[list[int], Spectrum, int]
) -> None:
    ranks, spectrum, seed = inputs
    updates = [
        update(i, r, spectrum if i % 2 == 0 else "random", seed + i) for i, r in enumerate(ranks)
    ]
    config = StrategyConfig(name=strategy, byzantine=1)
    start = start_adapter()
    published = combine(config, updates, start, SPEC, compute=F32)  # the aggregator
    for compute in (F64, F32):  # the auditor, in float64 and again in the recorded float32
        again = combine(config, updates, start, SPEC, compute=compute)
        result = rerun_compare(config, updates, published.tensors, again.tensors, again.used)
        assert result.ok, (strategy, ranks, spectrum, result.problems)
        assert again.used == published.used

    # above the tolerance: one module's weight change moved by 50x the relative tolerance
    tampered = dict(published.tensors)
    key = sorted(k for k in tampered if k.endswith(LORA_B))[0]
    b = tampered[key].double()
    a = tampered[key.replace(LORA_B, LORA_A)].double()
    size = float(torch.linalg.matrix_norm(b @ a))
    if size < 1e-3:  # a module the aggregate left (nearly) zero: perturb it absolutely
        tampered[key.replace(LORA_B, LORA_A)] = (a + 1e-2).float()
    else:
        direction = torch.randn(
            b.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        direction *= 50 * TOLERANCE.rtol * size / float(torch.linalg.matrix_norm(direction @ a))
        tampered[key] = (b + direction).float()
    reference = combine(config, updates, start, SPEC, compute=F64)
    assert not rerun_compare(config, updates, tampered, reference.tensors, reference.used).ok, (
        strategy
    )


def test_float32_flexlora_verifies_in_float64_where_factor_comparison_failed() -> None:
    # the case: float32 aggregation, float64 audit; singular vectors may come back with
    # other signs from LAPACK, which the canonical rule removes, and B @ A agrees anyway
    updates = [update(i, r, "random", 40 + i) for i, r in enumerate([8, 4, 8])]
    config = StrategyConfig(name="flexlora")
    published = combine(config, updates, start_adapter(), SPEC, compute=F32).tensors
    reference = combine(config, updates, start_adapter(), SPEC, compute=F64).tensors
    for key in published:
        assert torch.allclose(published[key].double(), reference[key].double(), atol=1e-4), key
    flipped = dict(published)  # any sign of a singular pair is the same weight change
    for key in [k for k in published if k.endswith(LORA_A)]:
        flipped[key] = published[key].clone()
        flipped[key][0] *= -1
        flipped[key.replace(LORA_A, LORA_B)] = published[key.replace(LORA_A, LORA_B)].clone()
        flipped[key.replace(LORA_A, LORA_B)][:, 0] *= -1
    assert rerun_compare(config, updates, flipped, reference, "flexlora").ok


def test_a_tie_at_the_truncation_accepts_either_direction_and_refuses_a_worse_one() -> None:
    # two nodes, orthogonal rank-4 updates of equal strength: the aggregate has 8 equal
    # singular values, and any 4 of its directions make a best rank-4 approximation
    tensors: list[dict[str, torch.Tensor]] = [{}, {}]
    # (columns of a Hadamard matrix: orthonormal exactly in float32, so the tie is exact)
    hadamard = torch.ones(1, 1)
    while hadamard.shape[0] < 16:
        hadamard = torch.cat(
            [torch.cat([hadamard, hadamard], 1), torch.cat([hadamard, -hadamard], 1)], 0
        )
    basis = hadamard / 4.0
    for name in ("q_proj", "v_proj"):
        u, v = basis[:, :8], basis[:, 8:] if name == "q_proj" else basis[:, 4:12]
        prefix = f"base_model.model.model.layers.0.self_attn.{name}"
        for i in range(2):
            tensors[i][prefix + LORA_B] = (u[:, 4 * i : 4 * i + 4] * 0.5).float()
            tensors[i][prefix + LORA_A] = (v[:, 4 * i : 4 * i + 4].T * 0.5).float()
    updates = [
        ClientUpdate.in_memory(addr(i + 1), t, num_examples=10, rank=4, alpha=8.0)
        for i, t in enumerate(tensors)
    ]
    config = StrategyConfig(name="flexlora")
    reference = combine(config, updates, start_adapter(), SPEC, compute=F64).tensors

    def weighted(
        i: int,
    ) -> dict[str, torch.Tensor]:  # node i's own directions, at the aggregate's weight
        return {k: v * (0.5**0.5) for k, v in tensors[i].items()}

    for choice in (weighted(0), weighted(1)):
        result = rerun_compare(config, updates, choice, reference, "flexlora")
        assert result.ok, result.problems
    worse = {k: v * 0.5 for k, v in weighted(0).items()}  # the right directions, too weak
    assert not rerun_compare(config, updates, worse, reference, "flexlora").ok


def test_reparametrised_factors_keep_the_weight_change_but_fail_where_factors_are_unique() -> None:
    updates = [update(i, 4, "random", 60 + i) for i in range(3)]
    for name in ("fedavg", "flexlora"):
        config = StrategyConfig(name=name)
        reference = combine(config, updates, start_adapter(), SPEC, compute=F64).tensors
        scaled = {k: v * (2.0 if k.endswith(LORA_B) else 0.5) for k, v in reference.items()}
        result = rerun_compare(config, updates, scaled, reference, name)
        # same B @ A, other factors: FedAvg's factors are unique; FlexLoRA's must be balanced
        assert not result.ok and "weight change" not in " ".join(result.problems), name


def test_the_report_records_the_compute_and_reruns_use_it() -> None:
    assert compute_params(F64) == {"dtype": "float64", "device": "cpu"}
    assert (
        recorded_compute({"compute": {"dtype": "float64", "device": "cuda"}}).dtype == torch.float64
    )
    assert recorded_compute({}).dtype == torch.float32  # reports from before the field
    assert recorded_compute({"compute": {"dtype": "float64"}}).device.type == "cpu"
    with pytest.raises(ConfigError, match="float16"):
        recorded_compute({"compute": {"dtype": "float16"}})


def test_bit_identical_reruns_are_reported_as_such() -> None:
    updates = [update(i, 4, "random", 80 + i) for i in range(3)]
    config = StrategyConfig(name="fedavg")
    first = combine(config, updates, start_adapter(), SPEC, compute=F32).tensors
    second = combine(config, updates, start_adapter(), SPEC, compute=F32).tensors
    result = rerun_compare(config, updates, first, second, "fedavg")
    assert result.ok and result.exact


_AGGREGATE = """
import json, sys, torch
from safetensors.torch import load_file, save_file
from aggregator.client_update import ClientUpdate
from aggregator.combine import StrategyConfig, combine
from aggregator.device import Compute
from loraledger.update import PeftSpec
torch.set_num_threads(int(sys.argv[3]))
spec = json.loads(sys.argv[4])
updates = [ClientUpdate.in_memory(u["node"], load_file(u["path"]), num_examples=u["n"],
                                  rank=u["rank"], alpha=u["alpha"])
           for u in spec["updates"]]
config = StrategyConfig(name=sys.argv[2])
out = combine(config, updates, load_file(spec["start"]), PeftSpec(**spec["peft"]),
              compute=Compute(dtype=torch.float32))
save_file({k: v.contiguous() for k, v in out.tensors.items()}, sys.argv[1])
"""
LARGE = (("q_proj", 768, 512), ("v_proj", 512, 512))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_round_aggregated_on_another_blas_code_path_and_thread_count_verifies_here(
    strategy: str, tmp_path: Path
) -> None:
    # the "other machine": a process with MKL's conditional-numerical-reproducibility kernels
    # (MKL_CBWR=COMPATIBLE, another code path than this process's AVX-512 one) on one thread;
    # this process re-runs on two threads, in float32 and in float64. (At LoRA sizes MKL gave
    # the same bits both ways when measured; another LAPACK does not, see the numpy test.)
    updates = [update(i, r, "random", 500 + i, LARGE) for i, r in enumerate([8, 4, 16, 2, 4])]
    start = start_adapter(LARGE)
    spec = {
        "peft": SPEC.model_dump(mode="json"),
        "start": str(tmp_path / "start.safetensors"),
        "updates": [],
    }
    save_file(start, spec["start"])
    for u in updates:
        path = tmp_path / f"{u.node}.safetensors"
        save_file({k: v.contiguous() for k, v in u.load().items()}, str(path))
        spec["updates"].append(
            {
                "node": u.node,
                "path": str(path),
                "n": u.num_examples,
                "rank": u.rank,
                "alpha": u.alpha,
            }
        )
    env = {**os.environ, "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "published.safetensors"
    subprocess.run(
        [sys.executable, "-c", _AGGREGATE, str(out), strategy, "1", json.dumps(spec)],
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=300,
    )
    published = load_file(str(out))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        config = StrategyConfig(name=strategy)
        for compute in (F32, F64):
            again = combine(config, updates, start, SPEC, compute=compute)
            result = rerun_compare(config, updates, published, again.tensors, again.used)
            assert result.ok, result.problems
    finally:
        torch.set_num_threads(threads)


def numpy_flexlora(
    updates: list[ClientUpdate], dtype: type, *, canonical: bool
) -> dict[str, torch.Tensor]:
    """FlexLoRA written again on numpy, whose LAPACK is OpenBLAS (torch's is MKL): another
    machine's result, in ``dtype``, with or without the canonical sign rule."""
    import numpy as np

    total = sum(u.num_examples for u in updates)
    loaded = [{k: v.double().numpy() for k, v in u.load().items()} for u in updates]
    scaling = SPEC.alpha / SPEC.rank
    out: dict[str, torch.Tensor] = {}
    for key in sorted(k for k in loaded[0] if k.endswith(LORA_A)):
        module = key[: -len(LORA_A)]
        c = [np.sqrt(u.num_examples / total * u.scaling) for u in updates]
        b_s = np.hstack([t[module + LORA_B] * ci for t, ci in zip(loaded, c, strict=True)]).astype(
            dtype
        )
        a_s = np.vstack([t[module + LORA_A] * ci for t, ci in zip(loaded, c, strict=True)]).astype(
            dtype
        )
        q_b, r_b = np.linalg.qr(b_s)
        q_a, r_a = np.linalg.qr(a_s.T)
        u, values, vh = np.linalg.svd(r_b @ r_a.T, full_matrices=False)
        left, right = q_b @ u[:, : SPEC.rank], vh[: SPEC.rank] @ q_a.T
        if canonical:
            signs = np.sign(left[np.abs(left).argmax(axis=0), np.arange(left.shape[1])])
            left, right = left * signs, right * signs[:, None]
        root = np.sqrt(values[: SPEC.rank] / scaling)
        out[module + LORA_A] = torch.from_numpy((root[:, None] * right).astype(np.float32))
        out[module + LORA_B] = torch.from_numpy((left * root).astype(np.float32))
    return out


@pytest.mark.parametrize("canonical", [True, False])
def test_flexlora_factored_by_another_lapack_in_either_dtype_verifies(canonical: bool) -> None:
    import numpy as np

    updates = [update(i, r, "random", 900 + i, LARGE) for i, r in enumerate([8, 4, 16, 2, 4])]
    config = StrategyConfig(name="flexlora")
    here = combine(config, updates, start_adapter(LARGE), SPEC, compute=F32).tensors
    for dtype in (np.float32, np.float64):
        published = numpy_flexlora(updates, dtype, canonical=canonical)
        result = rerun_compare(config, updates, published, here, "flexlora")
        assert result.ok, (dtype, result.problems)
        assert not result.exact  # another library's bits: the tolerance is what makes it pass
    if canonical:  # the rule is the same on both libraries: the factors agree, signs included
        other = numpy_flexlora(updates, np.float64, canonical=True)
        for key, value in here.items():
            assert torch.allclose(value, other[key], atol=1e-4), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_round_aggregated_on_cuda_verifies_on_the_cpu(strategy: str) -> None:
    updates = [update(i, r, "random", 700 + i) for i, r in enumerate([8, 4, 8, 2, 4])]
    config = StrategyConfig(name=strategy)
    gpu = combine(
        config, updates, start_adapter(), SPEC, compute=Compute(torch.device("cuda"), torch.float32)
    )
    for compute in (F32, F64):
        again = combine(config, updates, start_adapter(), SPEC, compute=compute)
        assert rerun_compare(config, updates, gpu.tensors, again.tensors, again.used).ok
