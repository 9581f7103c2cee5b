"""Setting up a federation for Flower runs on one machine: a local chain process (the embedded
chain cannot be shared across Flower's processes), the contracts, funded node accounts and a
task whose initial adapter is built from the base model and pinned.

Accounts: dev:0 deploys and sponsors, dev:1 aggregates, nodes are dev:2 .. dev:N+1 and the
task's one validator is dev:N+2 (the contract refuses the aggregator as a validator; accounts
past the funded ones get gas money from dev:0). The store is shared by every process: the embedded
store in a folder (atomic renames, immutable objects) or an IPFS node's RPC URL.
"""

from __future__ import annotations

import logging
import socket
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from loraledger.errors import ConfigError

logger = logging.getLogger(__name__)

TOKEN = 10**18
FIRST_NODE_ACCOUNT = 2
SIMULATION_CHALLENGE_WINDOW = 2  # seconds; a simulated round's result is claimable after it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class FederationPlan:
    """What to set up: nodes, rounds, model, ranks, window, rewards."""

    nodes: int
    rounds: int
    model: str  # smollm2, a folder or a hub id
    work_dir: Path
    network: str | None = None  # None: start anvil on a free port for this run
    ipfs: str | None = None  # None: embedded:<work_dir>/store
    ranks: tuple[int, ...] = (8, 4)
    alpha_per_rank: float = 2.0
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    window: int = 600
    reward_per_round: int = 100 * TOKEN
    min_stake: int = 10 * TOKEN
    save_deployment: bool = False  # record it under $LORALEDGER_HOME (for `flower run`)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ConfigError(f"nodes must be positive, got {self.nodes}")
        if self.rounds < 1:
            raise ConfigError(f"rounds must be positive, got {self.rounds}")
        if not self.ranks or min(self.ranks) < 1:
            raise ConfigError(f"ranks must be positive, got {self.ranks}")
        if self.window < 1:
            raise ConfigError(f"window must be positive, got {self.window}")
        if self.network == "embedded":
            raise ConfigError(
                "Flower nodes run in other processes and cannot share the embedded chain",
                hint="leave --network out (an anvil is started) or give anvil:PORT, ganache:PORT "
                "or a URL",
            )


@dataclass
class Federation:
    """A federation ready to run: the run config every Flower app reads, and what to stop."""

    plan: FederationPlan
    network: str
    ipfs: str
    ledger: str
    token: str
    from_block: int
    task_id: int
    base_model: str
    validator_account: str  # dev:N, the task's one validator (its ServerApp validates with it)
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def run_config(self, **extra: Any) -> dict[str, Any]:
        """The ``[tool.flwr.app.config]`` values of this federation."""
        config: dict[str, Any] = {
            "network": self.network,
            "ipfs": self.ipfs,
            "ledger": self.ledger,
            "from-block": self.from_block,
            "task-id": self.task_id,
            "rounds": self.plan.rounds,
            "model": self.plan.model,
            "ranks": ",".join(str(r) for r in self.plan.ranks),
            "alpha-per-rank": self.plan.alpha_per_rank,
            "targets": ",".join(self.plan.targets),
            "work-dir": str(self.plan.work_dir),
            "aggregator-account": "dev:1",
            "validator-accounts": self.validator_account,
            "account-offset": FIRST_NODE_ACCOUNT,
            "min-nodes": self.plan.nodes,
        }
        config.update(extra)
        return config

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare(plan: FederationPlan) -> Federation:
    """Start the chain (unless given), deploy, fund the node accounts, create and fund the task."""
    from chain import local
    from chain.deployments import deploy
    from chain.network import connect, dev_account
    from fl_node.model import ModelConfig, load_base_model
    from flower_app.accounts import fund_accounts, resolve_account
    from ipfs import open_store
    from loraledger.update import PeftSpec
    from sponsor.task import TaskRoles, publish_task

    stack = ExitStack()
    try:
        plan.work_dir.mkdir(parents=True, exist_ok=True)
        network = plan.network
        if network is None:
            root = plan.work_dir / "chains"
            process = local.start("anvil", port=free_port(), root=root, fresh=True)
            stack.callback(local.stop, "anvil", root=root)
            network = f"anvil:{process.port}"
        chain = connect(network, timeout=30)
        if not chain.network.is_local:
            raise ConfigError(
                f"{network} has no dev accounts to fund the simulated nodes",
                hint="simulate on a local chain "
                "(leave --network out, or anvil:PORT / ganache:PORT)",
            )
        admin, aggregator = dev_account(chain.network, 0), dev_account(chain.network, 1)
        deployment = deploy(chain, admin, save=plan.save_deployment, replace=True)
        ledger, token = deployment.ledger_contract(chain), deployment.token_contract(chain)
        nodes = [
            resolve_account(f"dev:{FIRST_NODE_ACCOUNT + i}", chain.network).address
            for i in range(plan.nodes)
        ]
        fund_accounts(chain, admin, token, nodes, ether=10 * TOKEN, tokens=plan.min_stake * 2)
        validator_account = f"dev:{FIRST_NODE_ACCOUNT + plan.nodes}"
        validator = resolve_account(validator_account, chain.network)
        fund_accounts(chain, admin, token, [validator.address], ether=10 * TOKEN, tokens=0)

        ipfs = plan.ipfs or f"embedded:{plan.work_dir / 'store'}"
        store = open_store(ipfs)
        loaded = load_base_model(ModelConfig(source=plan.model))
        rank = max(plan.ranks)
        spec = PeftSpec(rank=rank, alpha=plan.alpha_per_rank * rank, target_modules=plan.targets)
        task_id, _ = publish_task(
            ledger,
            token,
            store,
            loaded,
            spec,
            admin,
            reward_per_round=plan.reward_per_round,
            min_stake=plan.min_stake,
            window=plan.window,
            max_rounds=plan.rounds,
            fund=plan.reward_per_round * plan.rounds,
            # one validator (no held-out data: the examples rule) decides alone; a short
            # challenge window, since the simulation waits it out each round
            roles=TaskRoles(
                aggregator=aggregator.address,
                validators=(validator.address,),
                challenge_window=SIMULATION_CHALLENGE_WINDOW,
            ),
        )
        from aggregator.validator import post_bond
        from chain.events import History
        from chain.session import Session

        for party in (aggregator, validator):
            post_bond(Session(ledger, History(ledger, deployment.block), store, party), task_id)
        logger.info("task %s on %s: %s nodes, %s rounds", task_id, network, plan.nodes, plan.rounds)
        return Federation(
            plan,
            network,
            ipfs,
            ledger.address,
            token.address,
            deployment.block,
            task_id,
            loaded.model_id,
            validator_account,
            stack,
        )
    except BaseException:
        stack.close()
        raise


def audit(federation: Federation) -> list[Any]:
    """Every check of :class:`aggregator.audit.Auditor` over the federation's task (each round and
    the task's ledger), from the chain and the store alone."""
    from aggregator.audit import Auditor
    from chain.bindings import Ledger
    from chain.events import History
    from chain.network import connect
    from ipfs import open_store

    chain = connect(federation.network)
    ledger = Ledger(chain, federation.ledger)
    auditor = Auditor(ledger, History(ledger, federation.from_block), open_store(federation.ipfs))
    return auditor.verify(federation.task_id)
