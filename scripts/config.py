"""The project or user config file: a default network, store and account per command group.

Like ``foundry.toml`` or ``brownie-config.yaml``, a TOML file saves repeating options::

    network = "ganache"                 # --network of every command that takes one
    ipfs = "http://127.0.0.1:5001"      # --ipfs

    [accounts]                          # --account, per command group
    default = "dev:0"
    node = "keystore:/home/me/node.json"
    aggregator = "dev:1"
    validator = "dev:5"

The file is ``$LORALEDGER_CONFIG`` when set (it must exist), else ``./loraledger.toml`` in the
current folder, else ``$LORALEDGER_HOME/config.toml``; the first found is the only one read.
What the command line says wins, then the option's environment variable
(``LORALEDGER_NETWORK``, ``LORALEDGER_IPFS``; ``LORALEDGER_NODE_ACCOUNT``,
``LORALEDGER_AGGREGATOR_ACCOUNT``, ``LORALEDGER_VALIDATOR_ACCOUNT`` for their groups,
``LORALEDGER_ACCOUNT`` for the others), then the file, then the
built-in default. Keys are never kept here: accounts are ``dev:N``, ``env:VAR`` or
``keystore:PATH`` specs, or an address to look at read-only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loraledger.errors import ConfigError
from loraledger.paths import home
from scripts.commandline import given_on_line, long_name, resolve

__all__ = ["CONFIG_ENV", "CliConfig", "apply_config", "find_config", "load_config"]

CONFIG_ENV = "LORALEDGER_CONFIG"
PROJECT_FILE = "loraledger.toml"


class CliConfig(BaseModel):
    """What a config file may set (anything else is refused, naming the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: str | None = Field(default=None, min_length=1)
    ipfs: str | None = Field(default=None, min_length=1)
    accounts: dict[str, str] = Field(default_factory=dict)

    def account_for(self, group: str) -> str | None:
        """The ``--account`` of the commands of ``group`` (``node``, ``aggregator`` ...)."""
        return self.accounts.get(group, self.accounts.get("default"))


def find_config(cwd: Path | None = None) -> Path | None:
    """The config file in effect (see the module docstring), ``None`` when there is none."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"${CONFIG_ENV} names {path}, which is not a file",
                hint=f"create it, or unset {CONFIG_ENV}",
            )
        return path
    for path in ((cwd or Path.cwd()) / PROJECT_FILE, home() / "config.toml"):
        if path.is_file():
            return path
    return None


def load_config(path: Path) -> CliConfig:
    """Read and check a config file; one :class:`ConfigError` naming the file and the problem."""
    try:
        body = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from exc
    try:
        return CliConfig.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise ConfigError(
            f"the config file {path}: {where}: {first['msg']}",
            hint="it may set network, ipfs and [accounts] (one account spec per command group)",
        ) from None


def apply_config(config: CliConfig, root: click.Group, argv: Sequence[str]) -> list[str]:
    """``argv`` with the file's values added as options of the command it invokes, for each of
    ``--network``, ``--ipfs`` and ``--account`` that the command takes and that neither the
    command line nor the option's environment variable sets."""
    words = list(argv)
    resolved = resolve(root, words)
    if resolved is None:
        return words
    command, _ = resolved
    group = next((w for w in words if not w.startswith("-")), "")
    wanted = {"network": config.network, "ipfs": config.ipfs, "account": config.account_for(group)}
    added: list[str] = []
    for param in command.params:
        value = wanted.get(param.name or "")
        if value is None or not isinstance(param, click.Option):
            continue
        if given_on_line(words, param):
            continue  # the command line says
        envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
        if any(os.environ.get(name) for name in envvars):
            continue  # the environment says
        added += [long_name(param), value]
    if not added:
        return words
    end = words.index("--") if "--" in words else len(words)
    return [*words[:end], *added, *words[end:]]
