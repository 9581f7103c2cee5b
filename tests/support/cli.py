"""The real ``loraledger`` entry point, run in-process as a user would run it, and a task made
through it whose rounds need no model: a synthetic initial adapter and synthetic updates in the
update format, pinned to an embedded store and committed and revealed on a real chain."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from scripts.cli import build_command, main

if TYPE_CHECKING:  # the task builders load the chain and torch; `run_cli` alone stays light
    import torch
    from eth_account.signers.local import LocalAccount

    from chain.bindings import Ledger
    from chain.network import Chain
    from ipfs import EmbeddedStore


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``loraledger ARGS`` through :func:`scripts.cli.main`; return exit code, stdout,
    stderr."""
    argv = sys.argv
    sys.argv = ["loraledger", *args]
    try:
        main()
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def invoke(*args: str) -> str:
    """``loraledger ARGS`` that must succeed; its output (stdout and stderr)."""
    result = CliRunner().invoke(
        build_command(), list(args), catch_exceptions=False, standalone_mode=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def user_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``loraledger ARGS`` that must fail as a user's mistake: exit 1, one ``error:`` line and at
    most a ``hint:`` line on stderr, no traceback. Returns stderr."""
    code, _, err = run_cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 1, err
    assert "Traceback" not in err, err
    assert lines and lines[0].startswith("error: "), err
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), err
    return err


@dataclass
class CliTask:
    """A deployed ledger on a real chain and one task created with ``loraledger task create``
    from a synthetic initial adapter in an embedded store (no model is loaded)."""

    network: str
    ipfs: str
    store: EmbeddedStore
    chain: Chain
    ledger: Ledger
    task_id: int
    start: dict[str, torch.Tensor]
    created: str  # what `task create` printed

    def account(self, index: int) -> LocalAccount:
        from chain.network import dev_account

        return dev_account(self.chain.network, index)

    def args(self, account: int | None = None) -> list[str]:
        """``--task``, ``--network``, ``--ipfs`` (and ``--account dev:N``) for a command."""
        out = ["--task", str(self.task_id), "--network", self.network, "--ipfs", self.ipfs]
        return out + (["--account", f"dev:{account}"] if account is not None else [])

    def commit(self, round_: int, nodes: list[int]) -> list[tuple[int, bytes, str, bytes, int]]:
        """Each node (a dev index) commits to a synthetic update of ``round_`` (pinned to the
        store); returns what each reveals."""
        import torch

        from chain.bindings import commitment_hash
        from loraledger.update import build_update
        from tests.aggregator.round_builders import update_metadata

        pending = []
        for i in nodes:
            node = self.account(i)
            g = torch.Generator().manual_seed(100 * round_ + i)
            tensors = {
                k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in self.start.items()
            }
            examples = 10 * (i + 1)
            data = build_update(
                tensors, update_metadata(self.task_id, round_, node.address, examples)
            )
            cid = self.store.put_bytes(data)
            digest, salt = hashlib.sha256(data).digest(), hashlib.sha256(cid.encode()).digest()
            commitment = commitment_hash(self.task_id, round_, node.address, digest, examples, salt)
            self.ledger.commit_update(self.task_id, round_, commitment, node)
            pending.append((i, digest, cid, salt, examples))
        return pending

    def reveal(self, round_: int, pending: list[tuple[int, bytes, str, bytes, int]]) -> None:
        for i, digest, cid, salt, examples in pending:
            self.ledger.reveal_update(
                self.task_id, round_, cid, digest, examples, salt, self.account(i)
            )

    def submit(self, round_: int, nodes: list[int]) -> None:
        """Every node commits, then reveals (all eligible nodes committed: the round closes)."""
        self.reveal(round_, self.commit(round_, nodes))

    def advance_past(self, timestamp: int) -> None:
        """Move the chain's clock past ``timestamp``."""
        self.chain.advance_time(max(timestamp - self.chain.timestamp() + 1, 1))


def create_cli_task(network: str, store_dir: Path, *options: str) -> CliTask:
    """Deploy (a fresh ledger), then ``loraledger task create`` a task from a synthetic adapter
    with ``options`` (roles, windows, funds ...)."""
    from chain.deployments import load_deployment
    from chain.network import connect
    from ipfs import EmbeddedConfig, EmbeddedStore
    from loraledger.update import (
        FORMAT_VERSION,
        GlobalAdapterMetadata,
        build_global_adapter,
        peft_adapter_config,
    )
    from tests.aggregator.lora_builders import lora_tensors
    from tests.aggregator.round_builders import SPEC
    from tests.support.chain import BASE_MODEL

    invoke("deploy", "--network", network, "--replace")  # a fresh ledger for each task
    chain = connect(network)
    ledger = load_deployment(chain).ledger_contract(chain)
    store = EmbeddedStore(EmbeddedConfig(root=store_dir))
    task_id = ledger.task_count() + 1
    start = lora_tensors(0, rank=SPEC.rank, scale=0.1)
    adapter = build_global_adapter(
        start,
        GlobalAdapterMetadata(
            format_version=FORMAT_VERSION,
            task_id=task_id,
            round=0,
            base_model=BASE_MODEL,
            peft=SPEC,
            adapter_config=peft_adapter_config(SPEC, BASE_MODEL),
        ),
    )
    ipfs = f"embedded:{store_dir}"
    created = invoke(
        "task",
        "create",
        "--network",
        network,
        "--ipfs",
        ipfs,
        "--base-model",
        BASE_MODEL,
        "--initial-cid",
        store.put_bytes(adapter),
        "--initial-digest",
        hashlib.sha256(adapter).hexdigest(),
        *options,
    )
    return CliTask(network, ipfs, store, chain, ledger, task_id, start, created)
