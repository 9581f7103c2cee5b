"""Deploying the contracts and finding them again, per chain id.

A deployment record is a small JSON file, ``<home>/deployments/<chain id>.json``, holding
addresses, the deploy block and the runtime bytecode hash: every other command finds the
contracts through it without being told addresses. Records never contain keys.

Every deployment is also kept in the chain's history, ``<home>/deployments/<chain id>/<ledger
address>.json``: deploying again on a chain whose recorded ledger is still there needs
``replace=True`` (nothing is lost: the earlier one stays in the history), and
:func:`use_deployment` makes any earlier one current again.

The embedded chain lives inside one process, so its deployment is kept in memory only.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.bindings import Ledger, Token
from chain.compiler import bytecode_hash, load_artifact
from chain.network import Chain
from loraledger.errors import ChainError, ConfigError
from loraledger.paths import home

logger = logging.getLogger(__name__)

RECORD_VERSION = 1


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on one chain."""

    chain_id: int
    network: str
    ledger: str
    token: str
    deployer: str
    aggregator: str  # suggested aggregator of new tasks (recorded only; tasks name their own)
    block: int
    ledger_code_sha256: str
    deployed_at: str
    version: int = RECORD_VERSION

    def ledger_contract(self, chain: Chain) -> Ledger:
        return Ledger(chain, self.ledger)

    def token_contract(self, chain: Chain) -> Token:
        return Token(chain, self.token)


def record_path(chain_id: int, root: Path | None = None) -> Path:
    return (root or home()) / "deployments" / f"{chain_id}.json"


def history_path(chain_id: int, ledger: str, root: Path | None = None) -> Path:
    """Where the chain's history keeps the deployment of ``ledger``."""
    return (root or home()) / "deployments" / str(chain_id) / f"{ledger.lower()}.json"


def _read_record(path: Path) -> Deployment:
    try:
        body = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ChainError(f"deployment record {path} is corrupt: {exc}") from exc
    try:
        deployment = Deployment(**body)
    except TypeError as exc:
        raise ChainError(f"deployment record {path} is malformed: {exc}") from exc
    if deployment.version != RECORD_VERSION:
        raise ChainError(
            f"deployment record {path} has version {deployment.version}, expected {RECORD_VERSION}"
        )
    return deployment


def recorded(chain_id: int, root: Path | None = None) -> Deployment | None:
    """The chain's current record as written (not checked against the chain), if any."""
    path = record_path(chain_id, root)
    return _read_record(path) if path.is_file() else None


def deployment_history(chain_id: int, root: Path | None = None) -> list[Deployment]:
    """Every deployment recorded for the chain, oldest first (the current one included)."""
    folder = (root or home()) / "deployments" / str(chain_id)
    found = {d.ledger.lower(): d for d in map(_read_record, sorted(folder.glob("0x*.json")))}
    current = recorded(chain_id, root)
    if current is not None:
        found.setdefault(current.ledger.lower(), current)  # recorded before histories existed
    return sorted(found.values(), key=lambda d: (d.block, d.deployed_at))


def has_code(chain: Chain, address: str) -> bool:
    return len(chain.w3.eth.get_code(Web3.to_checksum_address(address))) > 0


def check_replaceable(chain: Chain, root: Path | None = None) -> Deployment | None:
    """Raise ``ConfigError`` when the chain's recorded ledger is still deployed there (a new
    deployment would hide its tasks and unclaimed rewards); return that record, if any."""
    current = recorded(chain.chain_id, root)
    if current is not None and has_code(chain, current.ledger):
        raise ConfigError(
            f"chain id {chain.chain_id} already has a recorded deployment: LoRALedger at "
            f"{current.ledger} (deployed {current.deployed_at}), still on chain",
            hint="pass --replace to record a new one (the current one stays in `loraledger "
            "deployments list`, and `loraledger deployments use ADDRESS` brings it back)",
        )
    return current


def deploy(
    chain: Chain,
    deployer: LocalAccount,
    *,
    aggregator: str | None = None,
    initial_supply: int = 10**9 * 10**18,
    save: bool = True,
    replace: bool = False,
    root: Path | None = None,
) -> Deployment:
    """Deploy LedgerToken and LoRALedger and record the deployment for this chain id.

    LoRALedger has no global role: each task names its own aggregator and validators.
    ``aggregator`` (default: the deployer) is only recorded, as the account local tooling
    proposes as a new task's aggregator. A chain whose recorded ledger is still there is
    deployed to again only with ``replace`` (:func:`check_replaceable`; the earlier record
    stays in the chain's history)."""
    saving = save and chain.network.kind != "embedded"
    if saving and not replace:
        check_replaceable(chain, root)
    token_art = load_artifact("LedgerToken")
    ledger_art = load_artifact("LoRALedger")
    aggregator_address = Web3.to_checksum_address(aggregator or deployer.address)
    token_receipt = chain.deploy(
        token_art.abi, token_art.bytecode, [deployer.address, initial_supply], deployer
    )
    ledger_receipt = chain.deploy(ledger_art.abi, ledger_art.bytecode, [], deployer)
    deployment = Deployment(
        chain_id=chain.chain_id,
        network=chain.network.name,
        ledger=str(ledger_receipt["contractAddress"]),
        token=str(token_receipt["contractAddress"]),
        deployer=deployer.address,
        aggregator=aggregator_address,
        block=int(token_receipt["blockNumber"]),
        ledger_code_sha256=bytecode_hash(ledger_art),
        deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    logger.info(
        "deployed LoRALedger at %s and LedgerToken at %s", deployment.ledger, deployment.token
    )
    if saving:
        save_deployment(deployment, root=root)
    return deployment


def save_deployment(deployment: Deployment, root: Path | None = None) -> Path:
    """Make ``deployment`` the chain's current record, keeping it (and the record it replaces)
    in the chain's history; every file is written atomically (a crash never leaves half a
    file)."""
    previous = recorded(deployment.chain_id, root)
    if previous is not None:
        _write(history_path(previous.chain_id, previous.ledger, root), previous)
    _write(history_path(deployment.chain_id, deployment.ledger, root), deployment)
    return _write(record_path(deployment.chain_id, root), deployment)


def _write(path: Path, deployment: Deployment) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".deployment-")
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(deployment), handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def use_deployment(chain: Chain, ledger: str, root: Path | None = None) -> Deployment:
    """Make the chain's recorded deployment of ``ledger`` current again (it must still be on
    the chain)."""
    path = history_path(chain.chain_id, ledger, root)
    if not path.is_file():
        known = ", ".join(d.ledger for d in deployment_history(chain.chain_id, root)) or "none"
        raise ConfigError(
            f"no deployment of LoRALedger at {ledger} recorded for chain id {chain.chain_id}",
            hint=f"recorded: {known} (`loraledger deployments list`)",
        )
    deployment = _on_chain(chain, _read_record(path))
    save_deployment(deployment, root)
    return deployment


def _on_chain(chain: Chain, deployment: Deployment) -> Deployment:
    """``deployment``, once its ledger is found on ``chain`` (a reset chain lost it)."""
    if not has_code(chain, deployment.ledger):
        raise ChainError(
            f"no contract at {deployment.ledger} on chain id {chain.chain_id}: the chain was reset "
            "since the deployment was recorded",
            hint=f"run `loraledger deploy --network {chain.network.name}` again",
        )
    return deployment


def load_deployment(chain: Chain, root: Path | None = None) -> Deployment:
    """The recorded deployment for the connected chain, checked against the chain itself."""
    path = record_path(chain.chain_id, root)
    if chain.network.kind == "embedded":
        raise ChainError(
            "the embedded chain lives inside one process and has no recorded deployment",
            hint="use --network ganache (after `loraledger chain up`) for commands run one by one",
        )
    if not path.is_file():
        raise ChainError(
            f"no deployment recorded for chain id {chain.chain_id} ({chain.network.name})",
            hint=f"run `loraledger deploy --network {chain.network.name}`",
        )
    return _on_chain(chain, _read_record(path))
