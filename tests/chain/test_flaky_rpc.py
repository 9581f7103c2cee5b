"""Transactions through a JSON-RPC endpoint that drops, resets, duplicates and delays requests
(a real proxy in front of real Ganache and anvil processes): every transfer is mined exactly
once, nothing is double-spent, and a chain that cannot be reached is one clear error with
nothing sent. Two senders racing for one account's nonce both get through."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain import local
from chain.bindings import Token
from chain.deployments import deploy
from chain.errors import ChainUnavailable, NonceTaken
from chain.network import Chain, NetworkSpec, connect, dev_account
from chaos.flaky_rpc import FAULTS, FlakyRpc
from tests.support.chain import free_port

TRANSFERS = 20


@pytest.fixture(scope="module", params=["ganache", "anvil"])
def direct(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Chain]:
    """A real chain process of each kind, and a connection that does not go through the proxy."""
    kind = request.param
    root = Path(tmp_path_factory.mktemp(kind))
    process = local.start(kind, port=free_port(), root=root, fresh=True)
    try:
        yield connect(f"{kind}:{process.port}")
    finally:
        local.stop(kind, root=root)


def _funded_token(chain: Chain, owner: LocalAccount) -> Token:
    return deploy(chain, owner, aggregator=owner.address, save=False).token_contract(chain)


@pytest.mark.ganache
@pytest.mark.slow
def test_every_transaction_is_mined_once_through_a_flaky_endpoint(direct: Chain) -> None:
    sender = dev_account(direct.network, 15)
    recipient = Account.create().address
    assert direct.network.url is not None
    proxy = FlakyRpc(direct.network.url, seed=7, rate=0.35, late_s=1.5)
    with proxy.running():
        # the client gives up on a request after 1 s: a `late` reply comes after 1.5 s
        chain = connect(NetworkSpec("rpc", proxy.url), timeout=1.0)
        token = _funded_token(chain, sender)
        before = direct.w3.eth.get_transaction_count(sender.address)
        receipts = [token.transfer(recipient, i + 1, sender) for i in range(TRANSFERS)]
    assert all(r["status"] == 1 for r in receipts)
    # every transfer mined exactly once: one nonce each, the recipient holds the exact sum
    assert direct.w3.eth.get_transaction_count(sender.address) == before + TRANSFERS
    assert Token(direct, token.address).balance_of(recipient) == TRANSFERS * (TRANSFERS + 1) // 2
    assert len({bytes(r["transactionHash"]) for r in receipts}) == TRANSFERS
    # the proxy did its worst: every kind of fault, and transactions that reached the chain
    # more than once (a lost reply, a duplicate, a late reply), without a second transfer
    assert set(proxy.faults) == set(FAULTS), proxy.faults
    assert proxy.methods["eth_sendRawTransaction"] > TRANSFERS + 3  # + the 3 deployments


@pytest.mark.ganache
def test_a_chain_that_cannot_be_reached_is_one_clear_error_and_nothing_is_sent(
    direct: Chain,
) -> None:
    sender = dev_account(direct.network, 16)
    assert direct.network.url is not None
    proxy = FlakyRpc(direct.network.url, seed=1, rate=0.0, late_s=0.0)
    with proxy.running():
        chain = connect(NetworkSpec("rpc", proxy.url), timeout=1.0)
        token = Token(chain, _funded_token(direct, sender).address)
        before = direct.w3.eth.get_transaction_count(sender.address)
        proxy.down = True
        with pytest.raises(ChainUnavailable, match=f"the chain at {proxy.url} does not answer"):
            token.transfer(Account.create().address, 1, sender)
    assert proxy.faults["drop"] >= 6  # the request was tried again before giving up
    assert direct.w3.eth.get_transaction_count(sender.address) == before


@pytest.mark.ganache
def test_a_transaction_whose_nonce_another_one_took_is_nonce_taken_and_not_sent(
    direct: Chain,
) -> None:
    sender = dev_account(direct.network, 17)
    token = _funded_token(direct, sender)
    nonce = direct.w3.eth.get_transaction_count(sender.address, "pending")

    def signed(amount: int) -> bytes:
        fn = token.contract.functions.transfer(Account.create().address, amount)
        tx = fn.build_transaction(
            {"from": sender.address, "nonce": nonce, "gas": 100_000, "chainId": direct.chain_id}
        )
        return bytes(sender.sign_transaction(tx).raw_transaction)

    first, second = signed(1), signed(2)  # two processes signing with the same nonce
    assert direct.send_raw(first, "transfer", sender=sender.address, nonce=nonce)["status"] == 1
    with pytest.raises(NonceTaken, match=f"mined with nonce {nonce}"):
        direct.send_raw(second, "transfer", sender=sender.address, nonce=nonce)
    # the same bytes again are the same transaction: waited for, not an error, not sent twice
    assert direct.send_raw(first, "transfer", sender=sender.address, nonce=nonce)["status"] == 1
    assert direct.w3.eth.get_transaction_count(sender.address) == nonce + 1


@pytest.mark.ganache
def test_two_processes_sending_as_one_account_both_get_through(direct: Chain) -> None:
    sender = dev_account(direct.network, 18)
    token_address = _funded_token(direct, sender).address
    recipient = Account.create().address
    before = direct.w3.eth.get_transaction_count(sender.address)
    assert direct.network.url is not None
    failures: list[BaseException] = []

    def process(amount: int) -> None:
        chain = connect(NetworkSpec("rpc", direct.network.url))  # its own connection
        try:
            for _ in range(4):
                Token(chain, token_address).transfer(recipient, amount, sender)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=process, args=(amount,)) for amount in (1, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert direct.w3.eth.get_transaction_count(sender.address) == before + 8
    assert Token(direct, token_address).balance_of(recipient) == 4 * 1 + 4 * 10
