"""Keystores made here open with the loader every command uses (and with eth-account alone);
nothing is ever overwritten, and bad passwords, keys and files are one clear error."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from eth_account import Account

from chain.keystore import create_keystore, keystore_address
from chain.network import GANACHE_MNEMONIC, _mnemonic_key, load_account, parse_network
from loraledger.errors import ConfigError

PASSWORD = "correct horse"
GANACHE = parse_network("ganache")


def test_a_new_keystore_opens_with_its_password_only_and_only_its_owner_reads_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys" / "node.json"
    address = create_keystore(path, PASSWORD)
    assert keystore_address(path) == address
    assert load_account(f"keystore:{path}", GANACHE, password=PASSWORD).address == address
    assert Account.from_key(Account.decrypt(json.loads(path.read_text()), PASSWORD)).address == (
        address
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match="wrong password or corrupt file"):
        load_account(f"keystore:{path}", GANACHE, password="not the password")
    assert [p.name for p in path.parent.iterdir()] == ["node.json"]  # no temporary file left
    assert create_keystore(tmp_path / "other.json", PASSWORD) != address  # a new key each time


def test_an_imported_key_keeps_its_address(tmp_path: Path) -> None:
    key = _mnemonic_key(GANACHE_MNEMONIC, 3)
    for value in (key, key.hex(), "0x" + key.hex() + "\n"):
        path = tmp_path / f"{len(value)}.json"
        address = create_keystore(path, PASSWORD, value)
        assert address == Account.from_key(key).address
        assert load_account(f"keystore:{path}", GANACHE, password=PASSWORD).key == key


def test_an_existing_file_a_short_password_or_a_bad_key_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text("precious")
    with pytest.raises(ConfigError, match="exists: a keystore is never overwritten"):
        create_keystore(path, PASSWORD)
    assert path.read_text() == "precious"
    with pytest.raises(ConfigError, match="at least 8 characters"):
        create_keystore(tmp_path / "a.json", "short")
    for key in ("nothex", "0x1234", "00" * 32, "ff" * 32):  # zero and above the curve order
        with pytest.raises(ConfigError, match="not a private key"):
            create_keystore(tmp_path / "b.json", PASSWORD, key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.json"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "cannot read keystore"),
        ("[]", "is not a JSON keystore"),
        ('{"address": "ab"}', "is not a JSON keystore"),
        ('{"address": "zz", "crypto": {}}', "names an invalid address"),
    ],
)
def test_a_file_that_is_no_keystore_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        keystore_address(path)
    with pytest.raises(ConfigError, match="cannot read keystore"):
        keystore_address(tmp_path / "missing.json")
