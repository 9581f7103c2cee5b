"""Reading a ``loraledger`` command line the way click will: which command it invokes."""

from __future__ import annotations

from collections.abc import Sequence

import click

__all__ = ["given_on_line", "long_name", "resolve"]


def _load(command: click.Command) -> click.Command:
    load = getattr(command, "load", None)  # the root's lazily imported groups
    return load() if callable(load) else command


def resolve(root: click.Group, words: Sequence[str]) -> tuple[click.Command, list[str]] | None:
    """The (sub)command ``words`` invoke (its group imported), and the words left for it;
    ``None`` when they name none."""
    command: click.Command = root
    rest = list(words)
    while isinstance(command, click.Group):
        while rest and rest[0].startswith("-"):  # a group's own options (-v): no values
            rest.pop(0)
        if not rest:
            return None
        found = command.get_command(click.Context(command), rest[0])
        if found is None:
            return None
        command, rest = _load(found), rest[1:]
    return command, rest


def given_on_line(words: Sequence[str], param: click.Parameter) -> bool:
    """Whether ``words`` name the option ``param`` (``--opt VALUE``, ``--opt=VALUE``, ``-o``)."""
    return any(w == opt or w.startswith(opt + "=") for opt in param.opts for w in words)


def long_name(param: click.Parameter) -> str:
    """The option's long form (``--network``), else its first one."""
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])
