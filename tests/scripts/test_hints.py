"""Hints that paste as-is: the commands a hint names get the options given on the command line
that failed, where they take them."""

from __future__ import annotations

import pytest

from scripts.cli import build_command
from scripts.hints import pasteable

ROOT = build_command()
ON_ANVIL = ["node", "train", "--task", "1", "--network", "anvil:8547", "--account", "dev:4"]


def test_a_hinted_command_gets_the_network_and_account_of_the_failed_one() -> None:
    hint = pasteable("`loraledger node join --task 1`", ROOT, ON_ANVIL)
    assert hint == "`loraledger node join --task 1 --network anvil:8547 --account dev:4`"


def test_only_the_options_the_hinted_command_takes_are_carried() -> None:
    hint = pasteable("see `loraledger task show 1` and `loraledger audit rounds 1`", ROOT, ON_ANVIL)
    assert hint == (
        "see `loraledger task show 1 --network anvil:8547` and "
        "`loraledger audit rounds 1 --network anvil:8547`"
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # short forms are carried in their long form
        (["node", "train", "--task", "1", "-n", "ganache:9000"], "--network ganache:9000"),
        (["node", "train", "--task", "1", "--network=ganache:9000"], "--network ganache:9000"),
        (["-v", "node", "train", "--task", "1", "--ipfs", "embedded:/s"], "--ipfs embedded:/s"),
    ],
)
def test_long_short_and_equals_forms_are_read(argv: list[str], expected: str) -> None:
    hint = pasteable("`loraledger node status --task 1`", ROOT, argv)
    assert hint == f"`loraledger node status --task 1 {expected}`"


@pytest.mark.parametrize(
    "hint",
    [
        None,
        "wait for the next round",
        "`loraledger node join --task 1 --network ganache`",  # names its own network
        "`loraledger no-such-group run`",
        "`loraledger node join --task 'unbalanced`",
    ],
)
def test_hints_without_a_command_to_complete_are_left_alone(hint: str | None) -> None:
    result = pasteable(hint, ROOT, ON_ANVIL)
    if hint is not None and "--network ganache`" in hint:
        assert result == hint.replace("ganache`", "ganache --account dev:4`")
    else:
        assert result == hint


def test_defaults_and_environment_are_not_carried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORALEDGER_NETWORK", "ganache")  # the hinted command reads it as well
    hint = "`loraledger node join --task 1`"
    assert pasteable(hint, ROOT, ["node", "train", "--task", "1"]) == hint
