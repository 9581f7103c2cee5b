"""``loraledger account``: encrypted keystores for ``--account keystore:PATH``.

``account new`` makes a key and its keystore, ``account import`` encrypts a key you have
(from an environment variable or a hidden prompt), ``account show`` names a keystore's address.
The password comes from ``$LORALEDGER_KEYSTORE_PASSWORD`` or a prompt asked twice; keys are
never printed or written unencrypted.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from chain.keystore import MIN_PASSWORD_LENGTH, create_keystore, keystore_address
from loraledger.errors import ConfigError
from scripts.console import console

app = typer.Typer(no_args_is_help=True)

PathArgument = typer.Argument(..., help="The keystore file (JSON).", show_default=False)


def _new_password() -> str:
    password = os.environ.get("LORALEDGER_KEYSTORE_PASSWORD")
    if password is None:
        password = typer.prompt(
            f"keystore password (at least {MIN_PASSWORD_LENGTH} characters)",
            hide_input=True,
            confirmation_prompt=True,
        )
    return password


def _created(path: Path, address: str) -> None:
    console.print(f"keystore [bold]{path}[/] holds account [bold]{address}[/]")
    console.print(
        f"use it with --account keystore:{path} (the password from "
        "$LORALEDGER_KEYSTORE_PASSWORD or a prompt); keep a copy: a lost keystore or password "
        "cannot be recovered",
        highlight=False,
    )


@app.command("new")
def new_command(path: Path = PathArgument) -> None:
    """Make a new random key and write it, encrypted, to a new keystore file."""
    _created(path, create_keystore(path, _new_password()))


@app.command("import")
def import_command(
    path: Path = PathArgument,
    key_env: str | None = typer.Option(
        None,
        "--key-env",
        help="Read the private key from this environment variable (default: a hidden prompt).",
    ),
) -> None:
    """Encrypt a private key you have into a new keystore file."""
    if key_env is not None:
        key = os.environ.get(key_env)
        if not key:
            raise ConfigError(f"environment variable {key_env} is not set")
    else:
        key = typer.prompt("private key (hex)", hide_input=True)
    _created(path, create_keystore(path, _new_password(), key))


@app.command("show")
def show_command(path: Path = PathArgument) -> None:
    """Print the address a keystore file holds (no password needed)."""
    console.print(keystore_address(path))
