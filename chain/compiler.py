"""Offline compilation of the contracts with solc from npm, driven by py-solc-x.

No native solc can be installed here, so ``chain/toolchain/solc.js`` wraps the npm ``solc``
package as an executable that answers ``--version`` and ``--standard-json`` like native solc.
It is registered as ``solc-v<version>`` in py-solc-x's install folder (``~/.solcx`` or
``$SOLCX_BINARY_PATH``), where py-solc-x and eth-brownie find it with no download.

Artifacts (ABI, bytecode) are written to ``chain/artifacts/`` and are reproducible: compiling the
same sources with the same settings gives byte-identical files (``check_artifacts`` proves it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx

from loraledger.errors import ChainError
from loraledger.paths import REPO_ROOT, node_modules

logger = logging.getLogger(__name__)

SOLC_VERSION = "0.8.37"
EVM_VERSION = "shanghai"  # Ganache 7.9.2 runs at most shanghai
OPTIMIZER_RUNS = 200
#: Compile through the Yul IR: LoRALedger v3 fits the EIP-170 size limit (24,576 bytes) only so.
VIA_IR = True
CONTRACTS_DIR = REPO_ROOT / "contracts"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
WRAPPER = Path(__file__).resolve().parent / "toolchain" / "solc.js"
#: Contracts whose artifacts the project ships (the rest are interfaces and libraries).
DEPLOYABLE = ("LoRALedger", "LedgerToken")


@dataclass(frozen=True)
class Artifact:
    """ABI and bytecode of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str

    def to_json(self) -> str:
        body = {
            "contractName": self.name,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployedBytecode": self.deployed_bytecode,
            "compiler": {
                "solc": SOLC_VERSION,
                "evmVersion": EVM_VERSION,
                "optimizerRuns": OPTIMIZER_RUNS,
                "viaIR": VIA_IR,
            },
        }
        return json.dumps(body, indent=2, sort_keys=True) + "\n"


def solc_executable() -> Path:
    """Register (once) and return the offline solc wrapper in py-solc-x's install folder."""
    node = shutil.which("node")
    if node is None:
        raise ChainError(
            "node is not on PATH", hint="install Node.js (the project's setup does: make setup)"
        )
    if not (node_modules() / "solc" / "package.json").exists():
        raise ChainError(
            f"the npm solc package is missing under {node_modules()}",
            hint="run `npm ci` at the repository root (make setup does it)",
        )
    folder = solcx.get_solcx_install_folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"solc-v{SOLC_VERSION}"
    script = (
        f'#!/bin/sh\nLORALEDGER_NODE_MODULES="{node_modules()}" exec "{node}" "{WRAPPER}" "$@"\n'
    )
    if not target.exists() or target.read_text() != script:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(script)
        tmp.chmod(0o755)
        tmp.replace(target)
        logger.info("registered the offline solc wrapper at %s", target)
    return target


def standard_input(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    """The standard-JSON input for every ``.sol`` file under ``contracts_dir``."""
    sources = {
        f"contracts/{path.relative_to(contracts_dir).as_posix()}": {"content": path.read_text()}
        for path in sorted(contracts_dir.rglob("*.sol"))
    }
    if not sources:
        raise ChainError(f"no Solidity sources under {contracts_dir}")
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "viaIR": VIA_IR,
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def compile_contracts(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Artifact]:
    """Compile the sources and return the deployable contracts' artifacts by name."""
    try:
        output = solcx.compile_standard(
            standard_input(contracts_dir),
            solc_binary=solc_executable(),
            base_path=str(REPO_ROOT),
            allow_paths=[str(REPO_ROOT), str(node_modules())],
        )
    except solcx.exceptions.SolcError as exc:
        raise ChainError(f"solc failed: {exc.message}") from exc
    except subprocess.SubprocessError as exc:  # pragma: no cover - the wrapper could not start
        raise ChainError(f"could not run solc: {exc}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ChainError("solc failed: " + "; ".join(e["formattedMessage"].strip() for e in errors))
    artifacts: dict[str, Artifact] = {}
    for contracts in output["contracts"].values():
        for name, body in contracts.items():
            if name in DEPLOYABLE:
                artifacts[name] = Artifact(
                    name=name,
                    abi=body["abi"],
                    bytecode="0x" + body["evm"]["bytecode"]["object"],
                    deployed_bytecode="0x" + body["evm"]["deployedBytecode"]["object"],
                )
    missing = set(DEPLOYABLE) - set(artifacts)
    if missing:
        raise ChainError(f"compilation produced no artifact for {sorted(missing)}")
    return artifacts


def write_artifacts(artifacts: dict[str, Artifact], out_dir: Path = ARTIFACTS_DIR) -> list[Path]:
    """Write one JSON file per contract; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in sorted(artifacts.items()):
        path = out_dir / f"{name}.json"
        path.write_text(artifact.to_json())
        written.append(path)
    return written


def check_artifacts(out_dir: Path = ARTIFACTS_DIR) -> list[str]:
    """Recompile; list every committed artifact that differs from a fresh build (empty: in sync)."""
    drift = []
    for name, artifact in sorted(compile_contracts().items()):
        path = out_dir / f"{name}.json"
        if not path.exists():
            drift.append(f"{path.name}: missing")
        elif path.read_text() != artifact.to_json():
            drift.append(f"{path.name}: differs from a fresh compile of contracts/")
    return drift


def load_artifact(name: str, out_dir: Path = ARTIFACTS_DIR) -> Artifact:
    """Load a committed artifact (no compiler needed)."""
    path = out_dir / f"{name}.json"
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ChainError(
            f"no artifact for {name} at {path}", hint="run `loraledger contracts build`"
        ) from exc
    return Artifact(
        name=name,
        abi=body["abi"],
        bytecode=body["bytecode"],
        deployed_bytecode=body["deployedBytecode"],
    )


def bytecode_hash(artifact: Artifact) -> str:
    """sha256 of the runtime bytecode, recorded with deployments to spot stale ones."""
    return hashlib.sha256(bytes.fromhex(artifact.deployed_bytecode.removeprefix("0x"))).hexdigest()
