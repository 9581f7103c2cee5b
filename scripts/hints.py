"""Hints that paste as-is: a command a hint names gets the options the user gave.

Errors come from the libraries (``fl_node``, ``aggregator``, ``chain``), which do not know how
the command was invoked: ``has not joined task 1`` hints ``loraledger node join --task 1``,
which on ``--network anvil:8547 --account dev:4`` would join another chain as another account.
Before the CLI prints a hint, each ``loraledger ...`` command in backticks gets the
``--network``, ``--account`` and ``--ipfs`` given on this command line, where the hinted
command takes that option and does not name it already.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

import click
from click.core import ParameterSource

from scripts.commandline import given_on_line, long_name, resolve

__all__ = ["CARRIED", "pasteable"]

CARRIED = ("network", "account", "ipfs")
"""The options a hinted command inherits from the failed one (by parameter name)."""

_COMMAND = re.compile(r"`(loraledger [^`]+)`")


def _given(root: click.Group, argv: Sequence[str]) -> dict[str, str]:
    """The carried options given on the command line ``argv`` (not defaults or env vars)."""
    resolved = resolve(root, argv)
    if resolved is None:
        return {}
    command, rest = resolved
    try:
        ctx = command.make_context("loraledger", rest, resilient_parsing=True)
    except click.ClickException:
        return {}
    return {
        name: str(ctx.params[name])
        for name in CARRIED
        if ctx.params.get(name) is not None
        and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }


def _complete(root: click.Group, text: str, given: dict[str, str]) -> str:
    try:
        words = shlex.split(text)
    except ValueError:
        return text
    resolved = resolve(root, words[1:])
    if resolved is None:
        return text
    command, _ = resolved
    added: list[str] = []
    for param in command.params:
        if param.name not in given or not isinstance(param, click.Option):
            continue
        if given_on_line(words, param):
            continue
        added += [long_name(param), given[param.name]]
    return shlex.join([*words, *added]) if added else text


def pasteable(hint: str | None, root: click.Group, argv: Sequence[str]) -> str | None:
    """``hint`` with the options of ``argv`` carried into every ``loraledger`` command in it."""
    if not hint or "`loraledger " not in hint:
        return hint
    given = _given(root, argv)
    if not given:
        return hint
    return _COMMAND.sub(lambda m: f"`{_complete(root, m.group(1), given)}`", hint)
