"""The aggregator's fetch + verify + aggregate throughput (``loraledger bench round``).

N updates shaped like a 7B LoRA (r=16 on q/k/v/o of 32 layers, 67 MB each) are real update
artifacts pinned in an embedded store. The round's verification (:func:`aggregator.verify.
verify_round`: fetch by CID, sha256 against the commitment, parse, spec and finite checks,
weight-change norm, replay digest, outlier statistics) plus FedAvg of the accepted updates is
timed against a baseline measured in the same run on the same bytes: fetching every update
from the store (which checks its CID) and hashing it with sha256, the least any fetch checked
against an on-chain digest must do.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from bench.aggregate import MB, Shape, lora_state


def measure(count: int, shape: Shape, compute, workers: int, repeats: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Best-of-``repeats`` MB/s of read + sha256 and of fetch + verify + aggregate, and their
    ratio."""
    from aggregator.combine import StrategyConfig, combine
    from aggregator.stats import OutlierPolicy
    from aggregator.verify import Commitment, VerifyPolicy, verify_round
    from ipfs import EmbeddedConfig, EmbeddedStore
    from loraledger.update import (
        FORMAT_VERSION,
        PeftSpec,
        UpdateMetadata,
        build_update,
        pack_global_adapter,
        parse_global_adapter,
        sha256_hex,
    )

    spec = PeftSpec(rank=shape.rank, alpha=2.0 * shape.rank)
    base = "bench/7b-shaped"
    with tempfile.TemporaryDirectory(prefix="bench-round-") as tmp:
        root = Path(tmp)
        store = EmbeddedStore(EmbeddedConfig(root=root / "store"))
        start_tensors = lora_state(0, shape)
        start = parse_global_adapter(
            pack_global_adapter(start_tensors, task_id=1, round_=0, base_model=base, peft=spec)
        )
        commitments = []
        for i in range(count):
            node = f"0x{i + 1:040x}"
            tensors = {k: v * (1.0 + (i + 1) / (10 * count)) for k, v in start_tensors.items()}
            data = build_update(
                tensors,
                UpdateMetadata(
                    format_version=FORMAT_VERSION,
                    task_id=1,
                    round=1,
                    base_model=base,
                    peft=spec,
                    node=node,
                    num_examples=10 + i,
                ),
            )
            commitments.append(Commitment(node, store.put_bytes(data), sha256_hex(data), 10 + i, i))
            del data, tensors
        total_bytes = sum(len(store.get_bytes(c.cid)) for c in commitments[:1]) * count
        policy = VerifyPolicy(max_rank=None, outliers=OutlierPolicy(), fetch_workers=workers)

        def baseline() -> None:
            for c in commitments:
                hashlib.sha256(store.get_bytes(c.cid, max_size=1 << 31)).digest()

        def pipeline() -> None:
            verification = verify_round(
                store,
                commitments,
                task_id=1,
                round_=1,
                start=start,
                policy=policy,
                workdir=root / "work",
            )
            accepted = verification.accepted
            if len(accepted) != count:
                raise RuntimeError(f"only {len(accepted)} of {count} updates were accepted")
            combine(
                StrategyConfig(),
                [c.client_update() for c in accepted],
                start.tensors,
                spec,
                compute=compute,
            )

        base_s = min(_timed(baseline) for _ in range(repeats))
        pipe_s = min(_timed(pipeline) for _ in range(repeats))
    return {
        "mb_each": total_bytes / count / MB,
        "baseline_mbps": total_bytes / MB / base_s,
        "pipeline_mbps": total_bytes / MB / pipe_s,
        "ratio": base_s / pipe_s,
        "per_update_s": pipe_s / count,
    }


def _timed(action) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    action()
    return time.perf_counter() - began
