"""A participant's session: the ledger and its event history, the content store, the signing
account, and where it keeps local state. Every role (sponsor, node, aggregator, auditor) and
every entry point (the CLI, the Flower apps, the demo) opens one the same way.

Imports: ``chain.session`` is the one module of ``chain`` that uses ``ipfs``; nothing in
``ipfs`` imports ``chain``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from web3 import Web3

from chain.bindings import Ledger
from chain.events import History
from loraledger.errors import ConfigError
from loraledger.paths import home

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from chain.network import NetworkSpec
    from ipfs import ContentStore

__all__ = ["Role", "Session", "open_session"]

Role = Literal["nodes", "aggregator"]
"""Who keeps state under a session's root: nodes keep one folder per account, the aggregator
one per task."""


@dataclass(frozen=True)
class Session:
    """The ledger, its history, the store and the signing account (``None``: read-only).

    ``state_root`` is where local state (journals, cached updates) goes; by default
    ``$LORALEDGER_HOME/<role>``.
    """

    ledger: Ledger
    history: History
    store: ContentStore
    account: LocalAccount | None = None
    state_root: Path | None = None
    watched: str | None = None  # read-only: the address whose state is shown (no key)

    @property
    def signer(self) -> LocalAccount:
        """The signing account; :class:`ConfigError` for a read-only session."""
        if self.account is None:
            if self.watched is not None:
                raise ConfigError(
                    f"{self.watched} is an address without its key: it can be looked at, not sign",
                    hint="sign with --account dev:N, env:VAR or keystore:PATH",
                )
            raise ConfigError("this session has no account to sign with", hint="pass --account")
        return self.account

    @property
    def address(self) -> str:
        if self.account is None and self.watched is not None:
            return self.watched
        return self.signer.address

    def state_dir(self, role: Role, task_id: int) -> Path:
        """Where ``role`` keeps its state for ``task_id`` on this chain and ledger (per account
        for nodes)."""
        root = self.state_root or home() / role
        base = root / str(self.ledger.chain.chain_id) / self.ledger.address
        if role == "nodes":
            base = base / self.address
        return base / f"task-{task_id}"


def open_session(
    network: str | NetworkSpec | None,
    *,
    account: str | LocalAccount | None = None,
    ipfs: str | None = None,
    ledger: str | None = None,
    from_block: int | None = None,
    password: str | None = None,
    state_root: Path | None = None,
    timeout: float = 5.0,
) -> Session:
    """Connect to ``network``, find the ledger, open the store and load the account.

    The ledger is the deployment recorded for the chain (``loraledger deploy``) unless
    ``ledger`` names its address (events are then read from ``from_block``, 0 by default).
    ``account`` is ``dev:N``, ``env:VAR`` or ``keystore:PATH`` (``password`` for a keystore),
    or an account already loaded; ``None`` opens a read-only session, and a ``0x`` address a
    read-only one that looks at that address (``node status``). ``ipfs`` is a store spec
    (:func:`ipfs.open_store`).
    """
    from chain.deployments import load_deployment
    from chain.network import connect, load_account, parse_network
    from ipfs import open_store

    spec = parse_network(network) if network is None or isinstance(network, str) else network
    chain = connect(spec, timeout=timeout)
    if ledger is None:
        deployment = load_deployment(chain)
        contract, start = deployment.ledger_contract(chain), deployment.block
    else:
        contract, start = Ledger(chain, ledger), from_block or 0
    watched = None
    if isinstance(account, str) and Web3.is_address(account):
        signer, watched = None, Web3.to_checksum_address(account)  # read-only: whose state
    elif isinstance(account, str):
        signer = load_account(account, chain.network, password=password)
    else:
        signer = account
    return Session(
        contract, History(contract, start), open_store(ipfs), signer, state_root, watched
    )
