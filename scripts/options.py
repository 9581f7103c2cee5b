"""Options shared by every command group, written once (as Ape's ``cli/options.py``)."""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import typer

from loraledger.errors import ConfigError

if TYPE_CHECKING:  # web3 and eth-account load slowly: commands that need them import them
    from eth_account.signers.local import LocalAccount

    from chain.network import Chain, NetworkSpec
    from chain.session import Session

TOKEN_DECIMALS = 18

NetworkOption = typer.Option(
    "embedded",
    "--network",
    "-n",
    envvar="LORALEDGER_NETWORK",
    help="embedded (in-process, this command only), ganache[:PORT], anvil[:PORT] "
    "or a JSON-RPC URL.",
)
AccountOption = typer.Option(
    "dev:0",
    "--account",
    "-a",
    envvar="LORALEDGER_ACCOUNT",
    help="Signing account: dev:N (local chains), env:VAR (private key in $VAR) or keystore:PATH.",
)
YesOption = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def open_chain(network: str) -> Chain:
    from chain.network import connect, parse_network

    return connect(parse_network(network))


def signer(spec: str, network: NetworkSpec) -> LocalAccount:
    """Resolve ``--account``; a keystore's password comes from $LORALEDGER_KEYSTORE_PASSWORD
    or a prompt."""
    from chain.network import load_account

    return load_account(spec, network, password=_password(spec))


def open_cli_session(network: str, ipfs: str | None, account: str | None = None) -> Session:
    """The session of a command: ``--network`` (its recorded deployment), ``--ipfs`` and
    ``--account`` (``None``: read-only), opened by :func:`chain.session.open_session`."""
    from chain.session import open_session

    password = _password(account) if account else None
    return open_session(network, account=account, ipfs=ipfs, password=password)


def _password(spec: str) -> str | None:
    """A keystore's password: $LORALEDGER_KEYSTORE_PASSWORD, else a prompt."""
    if not spec.startswith("keystore:"):
        return None
    password = os.environ.get("LORALEDGER_KEYSTORE_PASSWORD")
    if password is None:
        password = typer.prompt("keystore password", hide_input=True)
    return password


def parse_amount(text: str) -> int:
    """Token amount in whole tokens (``1.5`` -> 1.5 * 10**18 base units)."""
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ConfigError(f"amount must be a number, got {text!r}") from exc
    if value < 0:
        raise ConfigError(f"amount must not be negative, got {text}")
    units = value * (10**TOKEN_DECIMALS)
    if units != units.to_integral_value():
        raise ConfigError(f"amount {text} has more than {TOKEN_DECIMALS} decimals")
    return int(units)


def format_amount(units: int) -> str:
    """Base units as whole tokens, trailing zeros trimmed."""
    text = f"{Decimal(units) / (10**TOKEN_DECIMALS):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


IpfsOption = typer.Option(
    None,
    "--ipfs",
    envvar="LORALEDGER_IPFS",
    help="Where content lives: 'embedded' (default, $LORALEDGER_HOME/store), 'embedded:/dir', "
    "or a Kubo RPC API URL such as http://127.0.0.1:5001.",
)
"""The store option every command that reads or writes content shares."""
