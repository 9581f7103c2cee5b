"""The ``loraledger`` root command: every group is listed, and one that cannot be imported is an
error naming its module and the import error, never a group quietly missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from scripts import cli
from tests.support.cli import run_cli

BROKEN = ("broken_cli", "broken", "A group whose module imports something that is not there.")


@pytest.fixture
def broken_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A command group module on the path whose own import fails."""
    (tmp_path / "broken_cli.py").write_text("from no_such_package import app  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "_GROUPS", [*cli._GROUPS, BROKEN])
    return BROKEN[1]


def test_the_root_help_lists_every_group_without_importing_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for module, group, _help in cli._GROUPS:
        assert (group or module.removeprefix("scripts.").removesuffix("_cli")) in out


def test_a_group_whose_module_fails_to_import_is_listed_and_fails_naming_the_module_and_error(
    broken_group: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and broken_group in out  # still listed, not dropped

    code, out, err = run_cli(capsys, broken_group, "--help")
    assert code == 1
    assert "importing broken_cli failed" in err
    assert "No module named 'no_such_package'" in err
    assert "hint:" in err and "pip install -e ." in err
    assert "Traceback" not in err


def test_a_group_whose_module_is_missing_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_GROUPS", [*cli._GROUPS, ("scripts.gone_cli", "gone", "Moved away.")])
    code, _, err = run_cli(capsys, "gone", "status")
    assert code == 1
    assert "the `gone` command cannot be loaded: importing scripts.gone_cli failed" in err


@pytest.mark.parametrize(
    ("module", "group", "_help"), cli._GROUPS, ids=[m for m, _, _ in cli._GROUPS]
)
def test_every_group_imports_and_shows_its_help(
    module: str, group: str | None, _help: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = group or module.removeprefix("scripts.").removesuffix("_cli")
    code, out, err = run_cli(capsys, name, "--help")
    assert code == 0, err
    assert "Usage:" in out


# one letter, one meaning: the README's table of short options
SHORT_OPTIONS = {
    "-a": {"--account"},
    "-b": {"--batch-size"},
    "-d": {"--data"},
    "-k": {"--kind"},
    "-m": {"--model"},
    "-n": {"--network"},
    "-N": {"--nodes"},
    "-o": {"--out", "--out-dir"},
    "-p": {"--port"},
    "-r": {"--round", "--rounds"},
    "-s": {"--strategy"},
    "-S": {"--steps"},
    "-t": {"--task"},
    "-v": {"--verbose"},
    "-y": {"--yes"},
}


def _commands(command: click.Command, path: str = "") -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, cli._LazyCommand):
        command = command.load()
    yield path, command
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            child = command.get_command(context, name)
            if child is not None:
                yield from _commands(child, f"{path} {name}".strip())


def test_a_short_option_means_one_thing_in_every_command() -> None:
    seen: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for path, command in _commands(cli.build_command()):
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            long = next((o for o in param.opts if o.startswith("--")), param.opts[0])
            for short in (o for o in param.opts if len(o) == 2):
                seen.setdefault(short, set()).add(long)
                where.setdefault((short, long), path)
    unexpected = {
        short: {
            f"{long} ({where[short, long]})" for long in longs - SHORT_OPTIONS.get(short, set())
        }
        for short, longs in seen.items()
        if longs - SHORT_OPTIONS.get(short, set())
    }
    assert unexpected == {}
    assert {"-n", "-a", "-t", "-r", "-s", "-N", "-S"} <= seen.keys()  # the walk saw them


def test_a_docstrings_paragraphs_wrap_to_the_terminal_and_lists_keep_their_lines() -> None:
    text = """Open rounds.

    Defaults: 4 nodes, about 5-10
    minutes on 2 cores.

    - one item
    - another
    """
    assert cli.reflow(text) == (
        "Open rounds.\n\nDefaults: 4 nodes, about 5-10 minutes on 2 cores.\n\n- one item\n- another"
    )


def test_command_help_reads_as_paragraphs_at_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(capsys, "demo", "--help")
    assert code == 0
    # the docstring's source line breaks are gone: no half line before "minutes"
    assert "about 5-10 minutes on 2 CPU cores" in out
    assert max(len(line) for line in out.splitlines()) <= 80
