"""Chain fixtures shared by the test packages: the embedded chain and a real Ganache process.

Import the fixtures you need into a directory's conftest.py. Each backend deploys once per
session; every test runs between a snapshot and a revert, so tests never see each other.
:class:`LedgerEnv` drives the protocol as its parties would: the sponsor creates tasks naming
the test aggregator and validators, validators sign results with their own keys, and helpers
move the clock through the commit, reveal, challenge, slash and grace windows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD
from web3.middleware import Web3Middleware

from chain import local
from chain.attest import sign_result
from chain.bindings import (
    ZERO_DIGEST,
    Attestation,
    Finalization,
    Ledger,
    TaskParams,
    Token,
    base_model_hash,
    commitment_hash,
)
from chain.deployments import Deployment, deploy
from chain.errors import ContractRevert
from chain.merkle import RewardEntry, RewardTree, SlashEntry, SlashTree
from chain.network import Chain, connect, dev_account
from chain.round_state import RoundState
from tests.support.ipfs import free_port

TOKEN = 10**18
#: The allowance each test account gives the ledger (OpenZeppelin's ERC20 never spends it down).
UNLIMITED = 2**256 - 1
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
#: Bonds every test task asks by default (``LedgerEnv.task_params``).
AGGREGATOR_BOND = 50 * TOKEN
VALIDATOR_BOND = 20 * TOKEN
#: The three test validators (dev accounts after the nodes) and the quorum of test tasks.
VALIDATORS = 3
QUORUM = 2


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
    nodes dev:2..9, validators dev:10..12, each holding tokens and letting the ledger take
    them (an unlimited allowance). Test tasks name that aggregator and those validators
    (quorum 2) and, by default, both post their bonds at creation."""

    chain: Chain
    deployment: Deployment
    ledger: Ledger
    token: Token
    admin: LocalAccount
    aggregator: LocalAccount
    nodes: list[LocalAccount]
    validators: list[LocalAccount] = field(default_factory=list)
    #: commitments not revealed yet, by (task, round, node address), in commit order
    pending: dict[tuple[int, int, str], Committed] = field(default_factory=dict)
    #: the result :meth:`finalize` finalized last, by (task, round)
    results: dict[tuple[int, int], Finalization] = field(default_factory=dict)

    @property
    def sponsor(self) -> LocalAccount:
        return self.admin

    @property
    def quorum(self) -> int:
        return QUORUM

    def account(self, address: str) -> LocalAccount:
        """The test account of ``address`` (any named one)."""
        for account in (self.admin, self.aggregator, *self.nodes, *self.validators):
            if account.address.lower() == address.lower():
                return account
        raise KeyError(f"{address} is not a test account")

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
            aggregator=self.aggregator.address,
            validators=tuple(v.address for v in self.validators),
            quorum=QUORUM,
            aggregator_bond=AGGREGATOR_BOND,
            validator_bond=VALIDATOR_BOND,
            validator_share_bps=1000,
            challenge_window=600,
            slash_window=600,
            grace_period=3600,
        )
        values.update(overrides)
        return TaskParams(**values)

    def create_task(self, fund: int = 1000 * TOKEN, *, bonds: bool = True, **overrides: Any) -> int:
        """Create (as the sponsor) and fund a task; with ``bonds``, its aggregator and
        validators post their bonds."""
        task_id, _ = self.ledger.create_task(self.task_params(**overrides), self.sponsor)
        if fund:
            self.ledger.fund_task(task_id, fund, self.sponsor)
        if bonds:
            self.post_bonds(task_id)
        return task_id

    def post_bonds(self, task_id: int, *accounts: LocalAccount) -> None:
        """Post the bonds of ``accounts`` (default: the task's aggregator and validators)."""
        if not accounts:
            parties = (self.ledger.task(task_id).aggregator, *self.ledger.validators(task_id))
            accounts = tuple(self.account(a) for a in parties)
        for account in accounts:
            self.ledger.post_bond(task_id, account)

    def join(self, task_id: int, *nodes: LocalAccount) -> None:
        for node in nodes:
            self.ledger.join(task_id, node)

    def open(self, task_id: int) -> int:
        """Open the task's next round as its aggregator; returns the round."""
        round_, _ = self.ledger.open_next_round(task_id, self.aggregator)
        return round_

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

    def advance_to(self, timestamp: int) -> None:
        """Move the clock so the next block's time is past ``timestamp``."""
        self.chain.advance_time(max(timestamp - self.chain.timestamp() + 1, 1))

    def end_commit_phase(self, task_id: int, round_: int) -> None:
        """Move the clock past the round's commit deadline if the round is still ``OPEN``."""
        if self.ledger.round_state(task_id, round_) is RoundState.OPEN:
            self.advance_to(self.ledger.round(task_id, round_).deadline)

    def reveal_all(self, task_id: int, round_: int) -> None:
        """End the commit phase and reveal every pending commitment of the round."""
        self.end_commit_phase(task_id, round_)
        for key, c in list(self.pending.items()):
            if key[:2] == (task_id, round_):
                self.reveal(task_id, round_, c.node)

    def close(self, task_id: int, round_: int) -> None:
        """Move the clock past the reveal deadline (pending commitments stay unrevealed)."""
        if self.ledger.round_state(task_id, round_) is not RoundState.CLOSED:
            self.advance_to(self.ledger.round(task_id, round_).reveal_deadline)

    def result(
        self,
        task_id: int,
        round_: int,
        rewards: dict[str, int],
        *,
        rejected: int = 0,
        accepted: int | None = None,
        total: int | None = None,
        slash_root: bytes = ZERO_DIGEST,
        scores_bitmap: int | None = None,
        label: str = "",
    ) -> tuple[Finalization, RewardTree | None]:
        """A result paying ``rewards`` (and its reward tree): ``len(rewards)`` accepted unless
        ``accepted`` says otherwise, the round's posted score sheets unless ``scores_bitmap``."""
        tree = (
            RewardTree(task_id, round_, [RewardEntry(n, a) for n, a in rewards.items()])
            if rewards
            else None
        )
        if scores_bitmap is None:
            scores_bitmap = self.ledger.round(task_id, round_).scores_bitmap
        result = Finalization(
            global_cid=f"bafy-global-{round_}{label}",
            global_digest=digest_of(f"global-{task_id}-{round_}{label}"),
            report_cid=f"bafy-report-{round_}{label}",
            accepted=len(rewards) if accepted is None else accepted,
            rejected=rejected,
            reward_root=tree.root if tree else ZERO_DIGEST,
            reward_total=total if total is not None else (tree.total if tree else 0),
            slash_root=slash_root,
            scores_bitmap=scores_bitmap,
        )
        return result, tree

    def sign(
        self,
        task_id: int,
        round_: int,
        result: Finalization,
        *signers: LocalAccount,
        epoch: int | None = None,
    ) -> list[Attestation]:
        """Attestations of ``result`` by ``signers`` (default: the task's first ``quorum``
        validators), signed with their keys for the round's current epoch."""
        if not signers:
            task = self.ledger.task(task_id)
            chosen = self.ledger.validators(task_id)[: task.quorum]
            signers = tuple(self.account(v) for v in chosen)
        return [
            sign_result(
                signer,
                chain_id=self.chain.chain_id,
                verifying_contract=self.ledger.address,
                task_id=task_id,
                round_=round_,
                epoch=self.ledger.round(task_id, round_).epoch if epoch is None else epoch,
                result=result,
                scores_digest=self.ledger.scores_of(task_id, round_, signer.address),
            )
            for signer in signers
        ]

    def finalize(
        self,
        task_id: int,
        round_: int,
        rewards: dict[str, int],
        *,
        rejected: int = 0,
        total: int | None = None,
        reveal: bool = True,
        slashes: list[SlashEntry] | None = None,
        signers: tuple[LocalAccount, ...] = (),
        settle: bool = False,
    ) -> RewardTree | None:
        """Finalize ``round_`` paying ``rewards`` (with ``slashes`` in its slash root), signed
        by ``signers`` (default: a quorum of the task's validators) and sent by the
        aggregator; with ``reveal``, every pending commitment of the round is revealed first
        (:meth:`reveal_all`), with ``settle`` the challenge window is then waited out."""
        if reveal:
            self.reveal_all(task_id, round_)
        slash_root = SlashTree(task_id, round_, slashes).root if slashes else ZERO_DIGEST
        result, tree = self.result(
            task_id, round_, rewards, rejected=rejected, total=total, slash_root=slash_root
        )
        attestations = self.sign(task_id, round_, result, *signers)
        self.ledger.finalize_round(task_id, round_, result, attestations, self.aggregator)
        self.results[(task_id, round_)] = result
        if settle:
            self.settle(task_id, round_)
        return tree

    def settle(self, task_id: int, round_: int) -> None:
        """Move the clock past the round's challenge window (``FINALIZED`` -> ``SETTLED``)."""
        r = self.ledger.round(task_id, round_)
        task = self.ledger.task(task_id)
        if self.ledger.round_state(task_id, round_) is RoundState.FINALIZED:
            self.advance_to(r.finalized_at + task.challenge_window)

    def end_slash_window(self, task_id: int, round_: int) -> None:
        """Move the clock past the settled round's slash window."""
        r = self.ledger.round(task_id, round_)
        task = self.ledger.task(task_id)
        self.advance_to(r.finalized_at + task.challenge_window + task.slash_window)

    def run_round(
        self,
        task_id: int,
        rewards: dict[LocalAccount, int],
        *,
        settle: bool = True,
    ) -> tuple[int, RewardTree | None]:
        """Open the next round, let every rewarded node commit and reveal, finalize paying
        them and (by default) settle it. Returns the round and its reward tree."""
        round_ = self.open(task_id)
        for node in rewards:
            self.commit(task_id, round_, node)
        tree = self.finalize(
            task_id, round_, {n.address: a for n, a in rewards.items()}, settle=settle
        )
        return round_, tree

    def abandonable(self, task_id: int, round_: int) -> None:
        """Move the clock past the point where anyone may abandon the round."""
        r = self.ledger.round(task_id, round_)
        task = self.ledger.task(task_id)
        self.advance_to(max(r.reveal_deadline, r.voided_at) + task.grace_period)

    def events(self, receipt: Any, name: str) -> list[dict[str, Any]]:
        event = getattr(self.ledger.contract.events, name)()
        return [_plain(e["args"]) for e in event.process_receipt(receipt, errors=DISCARD)]

    def snapshot(self) -> Any:
        if self.chain.network.kind == "embedded":
            return self.chain.w3.provider.ethereum_tester.take_snapshot()
        return self.chain.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot: Any) -> None:
        self.pending.clear()
        self.results.clear()
        if self.chain.network.kind == "embedded":
            self.chain.w3.provider.ethereum_tester.revert_to_snapshot(snapshot)
        else:
            # a JSON-RPC snapshot is used up by its revert (with every later one): take another
            # one to go back there again
            reverted = self.chain.w3.provider.make_request("evm_revert", [snapshot])["result"]
            assert reverted is True, f"evm_revert to snapshot {snapshot} failed: {reverted}"


def _plain(value: Any) -> Any:
    """Event arguments as plain dicts and lists (web3 gives AttributeDicts and tuples)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@contextmanager
def reverts(error: type[ContractRevert], **args: Any) -> Iterator[None]:
    """Expect a revert with exactly this custom error class and, if given, exactly these
    arguments (by their Solidity names)."""
    with pytest.raises(ContractRevert) as info:
        yield
    assert type(info.value) is error, f"expected {error.__name__}, got {info.value}"
    if args:
        assert info.value.args_by_name == args, f"expected {error.__name__}{args}, got {info.value}"


#: The gas a test transaction on Ganache is estimated at (see :class:`_EstimateByCall`).
GANACHE_TEST_GAS = 8_000_000


class _EstimateByCall(Web3Middleware):
    """Gas estimation for the Ganache test chain: an ``eth_call`` (which reverts exactly as
    the transaction would, with the same custom error) and then a fixed limit.

    Ganache answers ``eth_estimateGas`` in ~0.5 s, its own binary search; a test sends dozens
    of transactions. The limit only caps what a transaction may use: receipts still report
    the gas used, and the contracts never read ``gasleft()``."""

    def wrap_make_request(self, make_request: Any) -> Any:
        def middleware(method: Any, params: Any) -> Any:
            if method != "eth_estimateGas":
                return make_request(method, params)
            response = make_request("eth_call", [params[0], "latest"])
            if "error" in response:
                return response
            return {"jsonrpc": "2.0", "id": response.get("id"), "result": hex(GANACHE_TEST_GAS)}

        return middleware


def fast_gas_estimates(chain: Chain) -> None:
    """Test-only: cheaper gas estimates on Ganache (see above)."""
    # (the embedded chain estimates in one run already: chain.network)
    if chain.network.kind == "ganache":
        chain.w3.middleware_onion.add(_EstimateByCall, name="estimate-by-call")


def build_env(chain: Chain) -> LedgerEnv:
    fast_gas_estimates(chain)
    accounts = [dev_account(chain.network, i) for i in range(10 + VALIDATORS)]
    deployment = deploy(chain, accounts[0], aggregator=accounts[1].address, save=False)
    env = LedgerEnv(
        chain=chain,
        deployment=deployment,
        ledger=deployment.ledger_contract(chain),
        token=deployment.token_contract(chain),
        admin=accounts[0],
        aggregator=accounts[1],
        nodes=accounts[2:10],
        validators=accounts[10:],
    )
    for account in (env.aggregator, *env.nodes, *env.validators):
        env.token.transfer(account.address, 1000 * TOKEN, env.admin)
    for account in (env.admin, env.aggregator, *env.nodes, *env.validators):
        # every test account lets the ledger take what it deposits (funding, stakes, bonds)
        env.token.approve(env.ledger.address, UNLIMITED, account)
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
