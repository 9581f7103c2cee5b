"""Encrypted JSON keystores for ``--account keystore:PATH``: create one for a new key or an
existing one, and read its address without the password.

The file is the Web3 Secret Storage format (version 3, scrypt) that geth, Foundry's
``cast wallet``, MetaMask exports and eth-account read and write; eth-account does the
cryptography. A keystore is written once, readable by its owner only (mode 0600), and never
replaces an existing file: a lost key cannot be recovered.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from eth_account import Account
from eth_utils.address import to_checksum_address

from loraledger.errors import ConfigError

__all__ = ["MIN_PASSWORD_LENGTH", "create_keystore", "keystore_address"]

MIN_PASSWORD_LENGTH = 8


def create_keystore(path: Path, password: str, key: str | bytes | None = None) -> str:
    """Encrypt ``key`` (a new random key when ``None``) with ``password`` into ``path``;
    returns the account's checksum address. Raises :class:`ConfigError`, writing nothing, for
    a file that exists, a short password or a value that is not a private key."""
    path = path.expanduser()
    if path.exists():
        raise ConfigError(
            f"{path} exists: a keystore is never overwritten",
            hint="pick another path, or remove the old file yourself if it holds no key you need",
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if key is None:
        account = Account.create()
    else:
        try:
            account = Account.from_key(key.strip() if isinstance(key, str) else key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "that is not a private key (32 bytes, 64 hex digits, 0x optional)"
            ) from exc
    body = Account.encrypt(account.key, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails when the path appeared meanwhile: never overwrite
        except FileExistsError:
            raise ConfigError(f"{path} exists: a keystore is never overwritten") from None
    finally:
        os.unlink(tmp)
    return str(account.address)


def keystore_address(path: Path) -> str:
    """The checksum address a keystore file names (no password needed). Raises
    :class:`ConfigError` for a file that is not a keystore."""
    path = path.expanduser()
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read keystore {path}: {exc}") from None
    address = body.get("address") if isinstance(body, dict) else None
    if not isinstance(address, str) or not isinstance(body.get("crypto"), dict):
        raise ConfigError(f"{path} is not a JSON keystore (no address and crypto fields)")
    try:
        return to_checksum_address("0x" + address.removeprefix("0x"))
    except ValueError:
        raise ConfigError(f"{path} names an invalid address {address[:50]!r}") from None
