"""Chain fixtures shared by the test packages: the embedded chain and a real Ganache process.

Import the fixtures you need into a directory's conftest.py. Each backend deploys once per
session; every test runs between a snapshot and a revert, so tests never see each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from chain import local
from chain.bindings import (
    Finalization,
    Ledger,
    TaskParams,
    Token,
    base_model_hash,
    commitment_hash,
)
from chain.deployments import Deployment, deploy
from chain.errors import ContractRevert
from chain.merkle import RewardEntry, RewardTree
from chain.network import Chain, connect, dev_account
from chain.round_state import RoundState
from tests.support.ipfs import free_port

TOKEN = 10**18
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def digest_of(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@dataclass(frozen=True)
class Committed:
    """What a test node committed to, kept until it reveals (the salt is its secret)."""

    task_id: int
    round: int
    node: LocalAccount
    cid: str
    digest: bytes
    examples: int
    salt: bytes


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
    #: commitments not revealed yet, by (task, round, node address), in commit order
    pending: dict[tuple[int, int, str], Committed] = field(default_factory=dict)

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
            reveal_window=600,
            max_examples=1000,
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

    def commit(
        self,
        task_id: int,
        round_: int,
        node: LocalAccount,
        label: str | None = None,
        examples: int = 10,
    ) -> Committed:
        """Commit ``node`` to an update (digest of ``label``); the salt is kept for
        :meth:`reveal`."""
        digest = digest_of(label or f"update-{task_id}-{round_}-{node.address}")
        salt = digest_of(f"salt-{task_id}-{round_}-{node.address}-{label}")
        committed = Committed(
            task_id, round_, node, f"bafy-{digest.hex()[:16]}", digest, examples, salt
        )
        commitment = commitment_hash(task_id, round_, node.address, digest, examples, salt)
        self.ledger.commit_update(task_id, round_, commitment, node)
        self.pending[(task_id, round_, node.address)] = committed
        return committed

    def submit(
        self,
        task_id: int,
        round_: int,
        node: LocalAccount,
        label: str | None = None,
        examples: int = 10,
    ) -> bytes:
        """Commit (see :meth:`commit`); returns the digest to be revealed."""
        return self.commit(task_id, round_, node, label, examples).digest

    def reveal(self, task_id: int, round_: int, node: LocalAccount, **override: Any) -> Any:
        """Reveal what ``node`` committed (``override`` replaces cid, digest, examples or salt:
        a lie). Returns the receipt."""
        c = self.pending[(task_id, round_, node.address)]
        values = dict(cid=c.cid, digest=c.digest, examples=c.examples, salt=c.salt) | override
        receipt = self.ledger.reveal_update(
            task_id,
            round_,
            values["cid"],
            values["digest"],
            values["examples"],
            values["salt"],
            node,
        )
        del self.pending[(task_id, round_, node.address)]
        return receipt

    def end_commit_phase(self, task_id: int, round_: int) -> None:
        """Move the clock past the round's commit deadline if the round is still ``OPEN``."""
        if self.ledger.round_state(task_id, round_) is RoundState.OPEN:
            info = self.ledger.round(task_id, round_)
            self.chain.advance_time(max(info.deadline - self.chain.timestamp() + 1, 1))

    def reveal_all(self, task_id: int, round_: int) -> None:
        """End the commit phase and reveal every pending commitment of the round."""
        self.end_commit_phase(task_id, round_)
        for key, c in list(self.pending.items()):
            if key[:2] == (task_id, round_):
                self.reveal(task_id, round_, c.node)

    def finalize(
        self,
        task_id: int,
        round_: int,
        rewards: dict[str, int],
        *,
        rejected: int = 0,
        total: int | None = None,
        reveal: bool = True,
    ) -> RewardTree | None:
        """Finalize ``round_`` paying ``rewards``; with ``reveal``, every pending commitment of
        the round is revealed first (:meth:`reveal_all`)."""
        if reveal:
            self.reveal_all(task_id, round_)
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
        self.pending.clear()
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
