"""Verification uses the workers it is given, each on one torch thread (the memory it holds
is checked by tests/bench/test_load.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from aggregator.verify import Commitment, VerifyPolicy, verify_round
from ipfs import EmbeddedConfig, EmbeddedStore
from loraledger.update import build_update, pack_global_adapter, parse_global_adapter, sha256_hex
from tests.aggregator.lora_builders import addr, lora_tensors
from tests.aggregator.round_builders import SPEC, update_metadata
from tests.support.chain import BASE_MODEL


class _WatchedStore(EmbeddedStore):
    """A real embedded store that notes how many fetches run at once, and the torch threads
    each fetching worker sees (a slow disk: each fetch takes 50 ms)."""

    def __init__(self, root: Path) -> None:
        super().__init__(EmbeddedConfig(root=root))
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[int] = set()

    def get_bytes(self, cid: str, *, max_size: int = 1 << 30) -> bytes:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(torch.get_num_threads())
        time.sleep(0.05)
        try:
            return super().get_bytes(cid, max_size=max_size)
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize("workers", [1, 3])
def test_updates_are_checked_by_as_many_workers_as_given_each_on_one_torch_thread(
    workers: int, tmp_path: Path
) -> None:
    store = _WatchedStore(tmp_path / "store")
    start_tensors = lora_tensors(0, rank=SPEC.rank, scale=0.1)
    start = parse_global_adapter(
        pack_global_adapter(start_tensors, task_id=1, round_=0, base_model=BASE_MODEL, peft=SPEC)
    )
    commitments = []
    for i in range(8):
        g = torch.Generator().manual_seed(100 + i)
        tensors = {
            k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in start_tensors.items()
        }
        data = build_update(tensors, update_metadata(1, 1, addr(i + 1), 10 + i))
        commitments.append(
            Commitment(addr(i + 1), store.put_bytes(data), sha256_hex(data), 10 + i, i)
        )
    before = torch.get_num_threads()

    verification = verify_round(
        store,
        commitments,
        task_id=1,
        round_=1,
        start=start,
        policy=VerifyPolicy(fetch_workers=workers),
        workdir=tmp_path / "work",
    )

    assert len(verification.accepted) == 8
    assert store.most == workers  # never more at once than given, and all of them used
    assert store.threads == {1}  # the workers are the parallelism, not torch's threads
    assert torch.get_num_threads() == before  # and the setting is given back
