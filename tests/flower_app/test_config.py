"""The Flower app's configuration, messages and process commands, without any process: what a
SuperNode/ServerApp makes of its config, what messages carry (never tensors), which replies the
chain bears out, and that the commands and files we hand to Flower are ones Flower accepts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from eth_account import Account
from flwr.app import ArrayRecord, RecordDict

from chain.network import ANVIL_MNEMONIC, DEV_ACCOUNTS, dev_account, parse_network
from flower_app.accounts import resolve_account
from flower_app.config import LedgerConfig, NodeConfig, ServerConfig
from flower_app.deployment import (
    Tls,
    node_config_text,
    run_command,
    superlink_command,
    supernode_command,
    write_connection,
)
from flower_app.messages import Instruction, JoinReply, TrainReply, confirm
from flower_app.strategy import short_reason
from loraledger.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
LEDGER = "0x" + "ab" * 20
BASE = {"network": "anvil:8546", "ledger": LEDGER, "task-id": 3, "ipfs": "embedded:/tmp/store"}


def test_simulated_nodes_get_their_account_shard_and_rank_from_the_partition_id() -> None:
    run = {
        **BASE,
        "account-offset": 2,
        "ranks": "8,4",
        "num-partitions": 5,
        "drop-out-partitions": "3",
    }
    configs = [
        NodeConfig.from_config(run, {"partition-id": p, "num-partitions": 5}) for p in range(5)
    ]
    assert [c.account for c in configs] == ["dev:2", "dev:3", "dev:4", "dev:5", "dev:6"]
    assert [c.rank for c in configs] == [8, 4, 8, 4, 8]
    assert [c.alpha for c in configs] == [16.0, 8.0, 16.0, 8.0, 16.0]
    assert [c.drop_out for c in configs] == [False, False, False, True, False]
    assert configs[0].ledger == LedgerConfig(
        network="anvil:8546", ledger=LEDGER, task_id=3, ipfs="embedded:/tmp/store"
    )


def test_a_supernodes_own_config_overrides_the_run_config() -> None:
    run = {**BASE, "account-offset": -1, "ranks": "8", "model": "smollm2"}
    node = {
        "account": "keystore:/keys/node.json",
        "rank": 2,
        "network": "http://10.0.0.5:8545",
        "data": "/data/mine.jsonl",
        "model": "/models/smol",
    }
    config = NodeConfig.from_config(run, node)
    assert (config.account, config.rank, config.ledger.network, config.model) == (
        "keystore:/keys/node.json",
        2,
        "http://10.0.0.5:8545",
        "/models/smol",
    )
    assert config.data == Path("/data/mine.jsonl")


@pytest.mark.parametrize(
    ("run", "node", "message"),
    [
        ({**BASE, "account-offset": -1}, {}, "this SuperNode has no account"),
        ({**BASE, "network": "embedded", "account": "dev:2"}, {}, "embedded chain"),
        ({**BASE, "ledger": "0x1234", "account": "dev:2"}, {}, "ledger must be a contract address"),
        ({**BASE, "task-id": 0, "account": "dev:2"}, {}, "task-id must be positive, got 0"),
        ({**BASE, "account": "dev:2", "rank": 0}, {}, "rank must be positive, got 0"),
        ({**BASE, "account": "dev:2", "ranks": "8,x"}, {}, "ranks must be a comma-separated list"),
        (
            {**BASE, "account": "dev:2"},
            {"partition-id": 4, "num-partitions": 4},
            r"partition-id must be in 0..3, got 4",
        ),
        ({"ledger": LEDGER, "task-id": 1, "account": "dev:2"}, {}, "no 'network'"),
    ],
)
def test_bad_node_configs_fail_naming_the_value(run: dict, node: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NodeConfig.from_config(run, node)


def test_server_config_defaults_and_validation() -> None:
    config = ServerConfig.from_config(
        {**BASE, "rounds": 2, "strategy": "flexlora", "work-dir": "/tmp/w"}
    )
    assert (config.rounds, config.strategy, config.account, config.min_nodes, config.work_dir) == (
        2,
        "flexlora",
        "dev:1",
        2,
        Path("/tmp/w"),
    )
    with pytest.raises(ConfigError, match=r"strategy must be one of .* got 'fedsgd'"):
        ServerConfig.from_config({**BASE, "strategy": "fedsgd"})
    with pytest.raises(ConfigError, match=r"fraction-train must be in \(0, 1\], got 1.5"):
        ServerConfig.from_config({**BASE, "fraction-train": 1.5})


def test_messages_carry_scalars_only_and_round_trip() -> None:
    instruction = Instruction(LEDGER, 31337, 3, round=2)
    record = instruction.to_record()
    assert isinstance(record, RecordDict) and not record.array_records
    assert Instruction.from_record(record) == instruction
    reply = TrainReply(
        node="0x" + "11" * 20,
        round=2,
        cid="bafkreia",
        digest="ab" * 32,
        num_examples=17,
        rank=4,
        resumed=False,
        train_seconds=1.5,
        eval_loss_before=3.0,
        eval_loss_after=2.5,
    )
    content = reply.to_record()
    assert not content.array_records
    assert TrainReply.from_record(content) == reply
    no_eval = TrainReply(reply.node, 2, "bafk", "cd" * 32, 5, 8, True, 0.2)
    assert TrainReply.from_record(no_eval.to_record()) == no_eval
    join = JoinReply("0x" + "22" * 20, 8, True)
    assert JoinReply.from_record(join.to_record()) == join
    with pytest.raises(ConfigError, match="carries no 'loraledger-reply' record"):
        TrainReply.from_record(RecordDict({"arrays": ArrayRecord()}))


def test_a_node_refuses_instructions_for_another_ledger_chain_or_task() -> None:
    instruction = Instruction(LEDGER, 31337, 3, 1)
    instruction.check_against(
        LEDGER.upper().replace("0X", "0x"), 31337, 3
    )  # addresses compare case-blind
    for ledger, chain_id, task in [
        ("0x" + "cd" * 20, 31337, 3),
        (LEDGER, 1337, 3),
        (LEDGER, 31337, 4),
    ]:
        with pytest.raises(ConfigError, match="this node is configured for"):
            instruction.check_against(ledger, chain_id, task)


def test_only_replies_the_chain_bears_out_are_confirmed() -> None:
    a, b, c = ("0x" + x * 20 for x in ("aa", "bb", "cc"))
    replies = [
        TrainReply(a, 1, "bafk-a", "01" * 32, 5, 8, False, 1.0),
        TrainReply(b, 1, "bafk-b", "02" * 32, 5, 8, False, 1.0),  # digest differs on chain
        TrainReply(c, 1, "bafk-c", "03" * 32, 5, 8, False, 1.0),
    ]  # no commitment
    confirmed, unconfirmed = confirm(replies, {a.lower(): "01" * 32, b.lower(): "ff" * 32})
    assert [r.node for r in confirmed] == [a]
    assert [r.node for r in unconfirmed] == [b, c]


def test_a_clientapp_error_is_shortened_to_its_message() -> None:
    wrapped = (
        "<class 'ray.exceptions.RayTaskError(ClientAppException)'>:"
        "<'ray::ClientAppActor.run()\n  File x\n"
        "Exception ClientAppException occurred. "
        "Message: node 0xab is configured to drop out of round 1'>"
    )
    assert short_reason(wrapped) == "node 0xab is configured to drop out of round 1"
    assert short_reason("plain reason") == "plain reason"


def test_dev_accounts_past_the_funded_ones_are_the_mnemonics_keys() -> None:
    anvil = parse_network("anvil:8546")
    assert resolve_account("dev:3", anvil).address == dev_account(anvil, 3).address
    Account.enable_unaudited_hdwallet_features()
    expected = Account.from_mnemonic(ANVIL_MNEMONIC, account_path="m/44'/60'/0'/0/33")
    assert resolve_account("dev:33", anvil).address == expected.address
    with pytest.raises(
        ConfigError, match=rf"dev account index must be in 0..{DEV_ACCOUNTS - 1}, got 33"
    ):
        resolve_account("dev:33", parse_network("http://10.0.0.1:8545"))


def test_the_superlink_never_installs_dependencies_and_is_insecure_only_without_tls(
    tmp_path: Path,
) -> None:
    command = superlink_command(port=9999)
    assert "--disable-runtime-dependency-installation" in command and "--insecure" in command
    assert command[command.index("--port") + 1] == "9999"
    tls = Tls(
        ca_certfile=tmp_path / "ca.pem",
        certfile=tmp_path / "s.pem",
        keyfile=tmp_path / "s.key",
        supernode_auth=True,
    )
    secure = superlink_command(tls=tls)
    assert "--insecure" not in secure and "--enable-supernode-auth" in secure
    assert secure[secure.index("--ssl-ca-certfile") + 1] == str(tmp_path / "ca.pem")
    with pytest.raises(ConfigError, match="SuperNode authentication needs TLS"):
        superlink_command(tls=Tls(supernode_auth=True))
    with pytest.raises(
        ConfigError, match="needs --ssl-ca-certfile, --ssl-certfile and --ssl-keyfile"
    ):
        superlink_command(tls=Tls(ca_certfile=tmp_path / "ca.pem"))


def test_each_supernode_gets_its_port_and_a_node_config_flower_parses() -> None:
    from flwr.common.config import parse_config_args

    values = {
        "account": "dev:2",
        "partition-id": 0,
        "data": 'a "quoted" path',
        "model": "C:\\models\\smol",
        "drop-out": False,
        "alpha-per-rank": 2.0,
    }
    command = supernode_command("10.0.0.1:8000", 9101, values)
    assert command[command.index("--port") + 1] == "9101" and "--insecure" in command
    parsed = parse_config_args([command[command.index("--node-config") + 1]])
    assert parsed == values
    with_tls = supernode_command(
        "link:8000",
        9102,
        values,
        tls=Tls(ca_certfile=Path("/ca.pem"), supernode_private_key=Path("/k")),
    )
    assert (
        "--insecure" not in with_tls
        and with_tls[with_tls.index("--root-certificates") + 1] == "/ca.pem"
    )
    assert with_tls[with_tls.index("--auth-supernode-private-key") + 1] == "/k"
    with pytest.raises(ConfigError, match="both quote characters"):
        node_config_text({"data": 'it\'s "odd"'})


def test_flwr_reads_the_connection_we_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flwr.cli.flower_config import read_superlink_connection

    write_connection(tmp_path, "127.0.0.1:9123")
    monkeypatch.setenv("FLWR_HOME", str(tmp_path))
    connection = read_superlink_connection()
    assert (connection.name, connection.address, connection.insecure) == (
        "loraledger",
        "127.0.0.1:9123",
        True,
    )
    command = run_command(ROOT, {"task-id": 3, "network": "anvil:8546"})
    assert command[1:4] == ["run", str(ROOT), "loraledger"] and command[-1] == "--stream"


def test_the_repository_is_a_valid_flower_app_whose_run_config_covers_every_key() -> None:
    from flwr.common.config import validate_config

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ok, errors, _ = validate_config(config, check_module=True, project_dir=ROOT)
    assert ok, errors
    keys = set(config["tool"]["flwr"]["app"]["config"])
    # every run-config key the federation hands to `flwr run` must exist, or flwr refuses it
    from flower_app.federation import Federation, FederationPlan

    plan = FederationPlan(nodes=2, rounds=1, model="smollm2", work_dir=Path("/tmp/x"))
    federation = Federation(plan, "anvil:1", "embedded", LEDGER, LEDGER, 0, 1, "m", "dev:4")
    assert set(federation.run_config()) <= keys
    # and the defaults parse (with the three values every run must give)
    ServerConfig.from_config({**config["tool"]["flwr"]["app"]["config"], **BASE})
    NodeConfig.from_config(
        {**config["tool"]["flwr"]["app"]["config"], **BASE}, {"account": "dev:2"}
    )
