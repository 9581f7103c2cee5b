"""Chain fixtures shared by the test packages: the embedded chain and a real Ganache process.

Import the fixtures you need into a directory's conftest.py. Each backend deploys once per
session; every test runs between a snapshot and a revert, so tests never see each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from chain import local
from chain.bindings import Finalization, Ledger, TaskParams, Token, base_model_hash
from chain.deployments import Deployment, deploy
from chain.errors import ContractRevert
from chain.merkle import RewardEntry, RewardTree
from chain.network import Chain, connect, dev_account
from tests.support.ipfs import free_port

TOKEN = 10**18
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def digest_of(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@dataclass
class LedgerEnv:
    """A deployed ledger with named accounts: admin/sponsor dev:0, aggregator dev:1,
    nodes dev:2.."""

    chain: Chain
    deployment: Deployment
    ledger: Ledger
    token: Token
    admin: LocalAccount
    aggregator: LocalAccount
    nodes: list[LocalAccount]

    @property
    def sponsor(self) -> LocalAccount:
        return self.admin

    def task_params(self, **overrides: Any) -> TaskParams:
        values: dict[str, Any] = dict(
            base_model_hash=base_model_hash(BASE_MODEL),
            initial_global_cid="bafy-initial-global",
            initial_global_digest=digest_of("global-0"),
            token=self.token.address,
            reward_per_round=100 * TOKEN,
            min_stake=10 * TOKEN,
            submission_window=600,
            max_rounds=3,
        )
        values.update(overrides)
        return TaskParams(**values)

    def create_task(self, fund: int = 1000 * TOKEN, **overrides: Any) -> int:
        task_id, _ = self.ledger.create_task(self.task_params(**overrides), self.sponsor)
        if fund:
            self.token.approve(self.ledger.address, fund, self.sponsor)
            self.ledger.fund_task(task_id, fund, self.sponsor)
        return task_id

    def join(self, task_id: int, *nodes: LocalAccount) -> None:
        stake = self.ledger.task(task_id).min_stake
        for node in nodes:
            if stake:
                self.token.approve(self.ledger.address, stake, node)
            self.ledger.join(task_id, node)

    def submit(
        self,
        task_id: int,
        round_: int,
        node: LocalAccount,
        label: str | None = None,
        examples: int = 10,
    ) -> bytes:
        digest = digest_of(label or f"update-{task_id}-{round_}-{node.address}")
        self.ledger.submit_update(
            task_id, round_, f"bafy-{digest.hex()[:16]}", digest, examples, node
        )
        return digest

    def finalize(
        self,
        task_id: int,
        round_: int,
        rewards: dict[str, int],
        *,
        rejected: int = 0,
        total: int | None = None,
    ) -> RewardTree | None:
        tree = (
            RewardTree(task_id, round_, [RewardEntry(n, a) for n, a in rewards.items()])
            if rewards
            else None
        )
        result = Finalization(
            global_cid=f"bafy-global-{round_}",
            global_digest=digest_of(f"global-{task_id}-{round_}"),
            report_cid=f"bafy-report-{round_}",
            accepted=len(rewards),
            rejected=rejected,
            reward_root=tree.root if tree else b"\x00" * 32,
            reward_total=total if total is not None else (tree.total if tree else 0),
        )
        self.ledger.finalize_round(task_id, round_, result, self.aggregator)
        return tree

    def events(self, receipt: Any, name: str) -> list[dict[str, Any]]:
        event = getattr(self.ledger.contract.events, name)()
        return [dict(e["args"]) for e in event.process_receipt(receipt, errors=DISCARD)]

    def snapshot(self) -> Any:
        if self.chain.network.kind == "embedded":
            return self.chain.w3.provider.ethereum_tester.take_snapshot()
        return self.chain.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot: Any) -> None:
        if self.chain.network.kind == "embedded":
            self.chain.w3.provider.ethereum_tester.revert_to_snapshot(snapshot)
        else:
            self.chain.w3.provider.make_request("evm_revert", [snapshot])


@contextmanager
def reverts(error: type[ContractRevert], **args: Any) -> Iterator[None]:
    """Expect a revert with exactly this custom error class and, if given, exactly these
    arguments (by their Solidity names)."""
    with pytest.raises(ContractRevert) as info:
        yield
    assert type(info.value) is error, f"expected {error.__name__}, got {info.value}"
    if args:
        assert info.value.args_by_name == args, f"expected {error.__name__}{args}, got {info.value}"


def build_env(chain: Chain) -> LedgerEnv:
    accounts = [dev_account(chain.network, i) for i in range(10)]
    deployment = deploy(chain, accounts[0], aggregator=accounts[1].address, save=False)
    env = LedgerEnv(
        chain=chain,
        deployment=deployment,
        ledger=deployment.ledger_contract(chain),
        token=deployment.token_contract(chain),
        admin=accounts[0],
        aggregator=accounts[1],
        nodes=accounts[2:],
    )
    for node in env.nodes:
        env.token.transfer(node.address, 1000 * TOKEN, env.admin)
    return env


@pytest.fixture(scope="session")
def ganache_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.ChainProcess]:
    """A real Ganache process on a free port, stopped at the end of the session."""
    root = Path(tmp_path_factory.mktemp("ganache"))
    process = local.start("ganache", port=free_port(), root=root, fresh=True)
    yield process
    local.stop("ganache", root=root)


@pytest.fixture(scope="session")
def embedded_env() -> LedgerEnv:
    return build_env(connect("embedded"))


@pytest.fixture(scope="session")
def ganache_env(ganache_process: local.ChainProcess) -> LedgerEnv:
    return build_env(connect(f"ganache:{ganache_process.port}"))


@pytest.fixture(params=["embedded", pytest.param("ganache", marks=pytest.mark.ganache)])
def env(request: pytest.FixtureRequest) -> Iterator[LedgerEnv]:
    """The deployed ledger on each backend, reset after every test."""
    ledger_env: LedgerEnv = request.getfixturevalue(f"{request.param}_env")
    snapshot = ledger_env.snapshot()
    yield ledger_env
    ledger_env.revert(snapshot)


@pytest.fixture
def embedded(embedded_env: LedgerEnv) -> Iterator[LedgerEnv]:
    """The embedded backend only (property tests, gas), reset after every test."""
    snapshot = embedded_env.snapshot()
    yield embedded_env
    embedded_env.revert(snapshot)
