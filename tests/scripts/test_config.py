"""The config file: a default network, store and account per command group, below what the
command line and the environment say; a bad file is one line naming it and the key."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from chain import local
from loraledger.errors import ConfigError
from scripts.cli import _LazyCommand, build_command
from scripts.config import CliConfig, apply_config, find_config, load_config
from tests.support.cli import run_cli

ROOT = build_command()
CONFIG = CliConfig(
    network="ganache:9000",
    ipfs="embedded:/srv/store",
    accounts={"default": "dev:0", "node": "dev:4", "aggregator": "dev:1"},
)


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LORALEDGER_CONFIG", raising=False)
    for name in ("LORALEDGER_NETWORK", "LORALEDGER_ACCOUNT", "LORALEDGER_IPFS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def test_the_file_fills_the_options_each_command_takes_with_its_groups_account() -> None:
    assert apply_config(CONFIG, ROOT, ["node", "status", "--task", "1"]) == [
        "node",
        "status",
        "--task",
        "1",
        "--network",
        "ganache:9000",
        "--account",
        "dev:4",
        "--ipfs",
        "embedded:/srv/store",
    ]
    # another group, another account; a command without --account gets none
    assert "dev:1" in apply_config(CONFIG, ROOT, ["aggregator", "open", "--task", "1"])
    assert apply_config(CONFIG, ROOT, ["task", "show", "1"])[3:] == [
        "--network",
        "ganache:9000",
        "--ipfs",
        "embedded:/srv/store",
    ]
    assert apply_config(CONFIG, ROOT, ["data", "sample", "--list"]) == ["data", "sample", "--list"]
    assert apply_config(CONFIG, ROOT, ["--help"]) == ["--help"]


def test_the_command_line_and_the_environment_win(monkeypatch: pytest.MonkeyPatch) -> None:
    given = ["node", "status", "--task", "1", "-n", "anvil", "--account=dev:7"]
    assert apply_config(CONFIG, ROOT, given) == [*given, "--ipfs", "embedded:/srv/store"]
    monkeypatch.setenv("LORALEDGER_IPFS", "http://127.0.0.1:5001")
    assert apply_config(CONFIG, ROOT, given) == given


def test_node_commands_sign_as_a_node_by_default_never_as_the_sponsor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context = click.Context(ROOT)
    lazy = ROOT.get_command(context, "node")
    node = lazy.load() if isinstance(lazy, _LazyCommand) else lazy
    assert isinstance(node, click.Group)
    commands = [node.get_command(context, name) for name in node.list_commands(context)]
    # personalize signs nothing (a local fine-tune, never sent): it takes no account
    (personalize,) = [c for c in commands if c is not None and c.name == "personalize"]
    assert all(p.name != "account" for p in personalize.params)
    accounts = {
        c.name: next(p for p in c.params if p.name == "account")
        for c in commands
        if c is not None and c is not personalize
    }
    assert len(accounts) >= 8 and {a.default for a in accounts.values()} == {"dev:2"}
    assert {a.envvar for a in accounts.values()} == {"LORALEDGER_NODE_ACCOUNT"}
    # the node's variable wins over the file; the sponsor's (LORALEDGER_ACCOUNT) does not
    monkeypatch.setenv("LORALEDGER_ACCOUNT", "dev:9")
    assert "dev:4" in apply_config(CONFIG, ROOT, ["node", "join", "--task", "1"])
    monkeypatch.setenv("LORALEDGER_NODE_ACCOUNT", "dev:3")
    assert "--account" not in apply_config(CONFIG, ROOT, ["node", "join", "--task", "1"])


def test_the_first_file_found_is_read_and_a_named_one_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_config() is None
    (tmp_path / "home").mkdir()
    user = tmp_path / "home" / "config.toml"
    user.write_text('network = "anvil"\n')
    assert find_config() == user
    project = tmp_path / "loraledger.toml"
    project.write_text('network = "ganache"\n[accounts]\nnode = "dev:4"\n')
    assert find_config() == project and load_config(project).account_for("node") == "dev:4"
    monkeypatch.setenv("LORALEDGER_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml, which is not a file"):
        find_config()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('network = "ganache\n', "is not valid TOML"),
        ('netwrok = "ganache"\n', "netwrok: Extra inputs are not permitted"),
        ("network = 8545\n", "network: Input should be a valid string"),
        ("[accounts]\nnode = 4\n", "accounts.node: Input should be a valid string"),
    ],
)
def test_a_bad_file_is_one_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "loraledger.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_bad_file_stops_the_command_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "loraledger.toml").write_text('netwrok = "ganache"\n')
    code, out, err = run_cli(capsys, "task", "list")
    assert code == 1 and out == "" and "netwrok" in err and "Traceback" not in err


def test_commands_use_the_projects_network_from_its_folder(
    ganache_process: local.ChainProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network = f"ganache:{ganache_process.port}"
    (tmp_path / "loraledger.toml").write_text(f'network = "{network}"\n')
    code, _, err = run_cli(capsys, "deploy", "--dev-tokens", "0")
    assert code == 0, err
    code, out, err = run_cli(capsys, "deployments", "list", "--json")
    assert code == 0, err
    assert json.loads(out)["chain_id"] == 1337 and len(json.loads(out)["deployments"]) == 1
