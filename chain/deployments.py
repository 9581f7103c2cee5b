"""Deploying the contracts and finding them again, per chain id.

A deployment record is a small JSON file, ``<home>/deployments/<chain id>.json``, holding
addresses, the deploy block and the runtime bytecode hash: every other command finds the
contracts through it without being told addresses. Records never contain keys.

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
from loraledger.errors import ChainError
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


def deploy(
    chain: Chain,
    deployer: LocalAccount,
    *,
    aggregator: str | None = None,
    initial_supply: int = 10**9 * 10**18,
    save: bool = True,
    root: Path | None = None,
) -> Deployment:
    """Deploy LedgerToken and LoRALedger and record the deployment for this chain id.

    LoRALedger has no global role: each task names its own aggregator and validators.
    ``aggregator`` (default: the deployer) is only recorded, as the account local tooling
    proposes as a new task's aggregator."""
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
    if save and chain.network.kind != "embedded":
        save_deployment(deployment, root=root)
    return deployment


def save_deployment(deployment: Deployment, root: Path | None = None) -> Path:
    """Write the record atomically (a crash never leaves half a file)."""
    path = record_path(deployment.chain_id, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".deployment-")
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(deployment), handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def load_deployment(chain: Chain, root: Path | None = None) -> Deployment:
    """The recorded deployment for the connected chain, checked against the chain itself."""
    path = record_path(chain.chain_id, root)
    if chain.network.kind == "embedded":
        raise ChainError(
            "the embedded chain lives inside one process and has no recorded deployment",
            hint="use --network ganache (after `loraledger chain up`) for commands run one by one",
        )
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ChainError(
            f"no deployment recorded for chain id {chain.chain_id} ({chain.network.name})",
            hint=f"run `loraledger deploy --network {chain.network.name}`",
        ) from exc
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
    code = chain.w3.eth.get_code(Web3.to_checksum_address(deployment.ledger))
    if len(code) == 0:
        raise ChainError(
            f"no contract at {deployment.ledger} on chain id {chain.chain_id}: the chain was reset "
            "since the deployment was recorded",
            hint=f"run `loraledger deploy --network {chain.network.name}` again",
        )
    return deployment
