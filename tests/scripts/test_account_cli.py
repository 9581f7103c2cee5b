"""`loraledger account`: a keystore made or imported from the command line signs real
transactions with --account keystore:PATH; the key is never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account
from eth_tester.backends.pyevm.main import get_default_account_keys

from scripts.cli import build_command
from tests.support.cli import run_cli


def _account(*args: str, stdin: str = "", env: dict[str, str] | None = None):
    return CliRunner().invoke(build_command(), ["account", *args], input=stdin, env=env)


def test_a_new_keystore_asks_the_password_twice_and_never_shows_the_key(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    mismatch = _account("new", str(path), stdin="first password\nsecond password\n")
    assert mismatch.exit_code != 0 and not path.exists()
    made = _account("new", str(path), stdin="correct horse\ncorrect horse\n")
    assert made.exit_code == 0, made.output
    address = _account("show", str(path)).output.strip()
    said = "".join(made.output.split())  # rich wraps long paths anywhere
    assert f"keystore{path}holdsaccount{address}" in said
    assert f"--accountkeystore:{path}" in said
    key = Account.decrypt(path.read_text(), "correct horse")
    assert key.hex() not in made.output and Account.from_key(key).address == address


def _deploy_with(keystore: Path, password: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``loraledger deploy`` (embedded chain) signed by ``keystore``, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", "deploy", "--account", f"keystore:{keystore}"],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "LORALEDGER_HOME": str(home),
            "LORALEDGER_KEYSTORE_PASSWORD": password,
            "COLUMNS": "200",
        },
    )


def test_an_imported_key_signs_a_deployment_with_account_keystore(tmp_path: Path) -> None:
    key = get_default_account_keys()[0].to_hex()  # funded on the embedded chain
    path = tmp_path / "sponsor.json"
    imported = _account(
        "import",
        str(path),
        "--key-env",
        "SPONSOR_KEY",
        env={"SPONSOR_KEY": key, "LORALEDGER_KEYSTORE_PASSWORD": "correct horse"},
    )
    assert imported.exit_code == 0, imported.output
    assert key.removeprefix("0x") not in imported.output
    deployed = _deploy_with(path, "correct horse", tmp_path / "home")
    assert deployed.returncode == 0, deployed.stderr
    assert "LoRALedger" in deployed.stdout
    wrong = _deploy_with(path, "wrong password", tmp_path / "home")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith(f"error: cannot decrypt keystore {path}: wrong password")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["import", "{p}", "--key-env", "NOPE"], {}, "environment variable NOPE is not set"),
        (["import", "{p}", "--key-env", "K"], {"K": "0x12"}, "that is not a private key"),
        (
            ["new", "{p}"],
            {"LORALEDGER_KEYSTORE_PASSWORD": "short"},
            "the password must have at least 8",
        ),
    ],
)
def test_bad_input_is_one_error_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    path = tmp_path / "k.json"
    for name, value in {"LORALEDGER_KEYSTORE_PASSWORD": "correct horse", **env}.items():
        monkeypatch.setenv(name, value)
    code, _, err = run_cli(capsys, "account", *[a.format(p=path) for a in args])
    assert code == 1 and err.startswith(f"error: {message}") and not path.exists()
