"""The offline compiler: artifacts are reproducible from sources and drift is caught."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from chain import compiler
from loraledger.errors import ChainError


@pytest.mark.slow
def test_committed_artifacts_equal_a_fresh_compile_of_the_sources() -> None:
    assert compiler.check_artifacts() == []


@pytest.mark.slow
def test_check_artifacts_reports_a_stale_artifact(tmp_path: Path) -> None:
    shutil.copytree(compiler.ARTIFACTS_DIR, tmp_path, dirs_exist_ok=True)
    stale = json.loads((tmp_path / "LoRALedger.json").read_text())
    stale["bytecode"] = stale["bytecode"][:-2] + "00"
    (tmp_path / "LoRALedger.json").write_text(json.dumps(stale))
    (tmp_path / "LedgerToken.json").unlink()
    assert compiler.check_artifacts(tmp_path) == [
        "LedgerToken.json: missing",
        "LoRALedger.json: differs from a fresh compile of contracts/",
    ]


def test_solc_wrapper_answers_like_native_solc() -> None:
    out = subprocess.run(
        [str(compiler.solc_executable()), "--version"], capture_output=True, text=True, check=True
    )
    assert f"Version: {compiler.SOLC_VERSION}+commit." in out.stdout


def test_compile_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "Broken.sol").write_text("pragma solidity ^0.8.24; contract Broken { function f( }")
    with pytest.raises(ChainError, match=r"solc failed: .*ParserError"):
        compiler.compile_contracts(tmp_path)


def test_artifacts_target_shanghai_so_ganache_can_run_them() -> None:
    # PUSH0 (0x5f) is shanghai; MCOPY (0x5e) and TSTORE (0x5d) are cancun and would break Ganache 7.
    code = bytes.fromhex(compiler.load_artifact("LoRALedger").deployed_bytecode[2:])
    assert compiler.standard_input()["settings"]["evmVersion"] == "shanghai"
    assert len(code) < 24576  # EIP-170 size limit
