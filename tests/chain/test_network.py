"""Networks, accounts and connecting: every bad value gives one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from chain import errors
from chain.network import NetworkSpec, connect, dev_account, load_account, parse_network
from loraledger.errors import ChainError, ConfigError
from tests.support.chain import LedgerEnv, free_port


def test_parse_network_accepts_names_ports_and_urls() -> None:
    assert parse_network(None) == NetworkSpec("embedded")
    assert parse_network("ganache") == NetworkSpec("ganache", "http://127.0.0.1:8545")
    assert parse_network("anvil:9000") == NetworkSpec("anvil", "http://127.0.0.1:9000")
    assert parse_network("https://rpc.example:8545") == NetworkSpec(
        "rpc", "https://rpc.example:8545"
    )


@pytest.mark.parametrize("bad", ["mainnet", "ganache:http", "ftp://x"])
def test_parse_network_refuses_unknown_values(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_network(bad)


def test_dev_accounts_are_the_well_known_ones_of_each_chain() -> None:
    # Ganache's --wallet.deterministic and anvil's default mnemonic, index 0
    assert (
        dev_account(parse_network("ganache"), 0).address
        == "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"
    )
    assert (
        dev_account(parse_network("anvil"), 0).address
        == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    )
    with pytest.raises(ConfigError, match="has no dev accounts"):
        dev_account(parse_network("http://127.0.0.1:1"), 0)
    with pytest.raises(ConfigError, match=r"0..19"):
        dev_account(parse_network("ganache"), 20)


def test_env_account_reads_the_key_and_names_a_missing_or_bad_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "0x" + "11" * 32
    monkeypatch.setenv("NODE_KEY", key)
    assert (
        load_account("env:NODE_KEY", NetworkSpec("embedded")).address
        == Account.from_key(key).address
    )
    monkeypatch.delenv("NODE_KEY")
    with pytest.raises(ConfigError, match="NODE_KEY is not set"):
        load_account("env:NODE_KEY", NetworkSpec("embedded"))
    monkeypatch.setenv("NODE_KEY", "not-a-key")
    with pytest.raises(ConfigError, match="does not hold a valid private key") as info:
        load_account("env:NODE_KEY", NetworkSpec("embedded"))
    assert "not-a-key" not in str(info.value)


def test_keystore_account_decrypts_and_refuses_a_wrong_password(tmp_path: Path) -> None:
    account = Account.create()
    path = tmp_path / "key.json"
    path.write_text(json.dumps(Account.encrypt(account.key, "s3cret", iterations=2)))
    assert (
        load_account(f"keystore:{path}", NetworkSpec("embedded"), password="s3cret").address
        == account.address
    )
    with pytest.raises(ConfigError, match="wrong password"):
        load_account(f"keystore:{path}", NetworkSpec("embedded"), password="nope")
    with pytest.raises(ConfigError, match="cannot read keystore"):
        load_account(f"keystore:{tmp_path / 'missing.json'}", NetworkSpec("embedded"), password="x")
    with pytest.raises(ConfigError, match="unknown account"):
        load_account("ledger:0", NetworkSpec("embedded"))


@pytest.mark.parametrize("kind", ["ganache", "anvil"])
def test_connect_to_a_server_that_is_down_fails_in_bounded_time_with_a_hint(kind: str) -> None:
    port = free_port()
    with pytest.raises(ChainError, match="no chain answers") as info:
        connect(f"{kind}:{port}", timeout=1.0)
    # the command that starts that chain, on that port
    assert info.value.hint == f"start it with `loraledger chain up --kind {kind} --port {port}`"


def test_advance_time_moves_the_embedded_clock() -> None:
    chain = connect("embedded")
    before = chain.timestamp()
    chain.advance_time(3600)
    assert chain.timestamp() >= before + 3600


@pytest.mark.ganache
def test_a_transaction_that_reverts_once_mined_is_decoded_by_replaying_it(
    ganache_env: LedgerEnv,
) -> None:
    """A check that held when the transaction was simulated can fail by the time it is mined
    (a window closes, another transaction comes first): the error is still named."""
    env = ganache_env
    chain, sender = env.chain, env.aggregator
    fn = env.ledger.contract.functions.openRound(999)  # no such task
    tx = fn.build_transaction(
        {
            "from": sender.address,
            "nonce": chain.w3.eth.get_transaction_count(sender.address, "pending"),
            "gas": 300_000,  # not estimated: sent as if the simulation had passed
            "chainId": chain.chain_id,
        }
    )
    raw = sender.sign_transaction(tx).raw_transaction
    with pytest.raises(errors.LedgerUnknownTask) as info:
        chain.send_raw(raw, "openRound")
    assert info.value.task_id == 999
