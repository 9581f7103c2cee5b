"""Accounts of Flower nodes: the usual ``--account`` specs, plus dev accounts past the tenth.

A simulated federation of 32 nodes needs 34 funded accounts; local chains fund ten. Dev account
N of Ganache or anvil is the N-th key of its public mnemonic, so ``dev:N`` for any N names the
same key everywhere; :func:`fund_accounts` gives the accounts past the funded ten gas money.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.batch import BatchSender
from chain.bindings import Token
from chain.network import (
    ANVIL_MNEMONIC,
    DEV_ACCOUNTS,
    GANACHE_MNEMONIC,
    Chain,
    NetworkSpec,
    load_account,
)
from loraledger.errors import ConfigError

MAX_DEV_ACCOUNT = 1000


def resolve_account(spec: str, network: NetworkSpec) -> LocalAccount:
    """``dev:N`` (any N on ganache/anvil), ``env:VAR`` or ``keystore:PATH``
    (password from ``$LORALEDGER_KEYSTORE_PASSWORD``)."""
    kind, _, rest = spec.partition(":")
    if (
        kind == "dev"
        and rest.isdigit()
        and int(rest) >= DEV_ACCOUNTS
        and network.kind in ("ganache", "anvil")
    ):
        index = int(rest)
        if index > MAX_DEV_ACCOUNT:
            raise ConfigError(f"dev account index must be at most {MAX_DEV_ACCOUNT}, got {index}")
        mnemonic = ANVIL_MNEMONIC if network.kind == "anvil" else GANACHE_MNEMONIC
        Account.enable_unaudited_hdwallet_features()
        account: LocalAccount = Account.from_mnemonic(
            mnemonic, account_path=f"m/44'/60'/0'/0/{index}"
        )
        return account
    return load_account(spec, network, password=os.environ.get("LORALEDGER_KEYSTORE_PASSWORD"))


def fund_accounts(
    chain: Chain,
    funder: LocalAccount,
    token: Token,
    addresses: Sequence[str],
    *,
    ether: int,
    tokens: int,
) -> None:
    """Send gas money (wei, only to accounts that have less) and ``tokens`` token units to each,
    in batches (:class:`chain.batch.BatchSender`)."""
    sender = BatchSender(chain)
    w3 = chain.w3
    needy = [a for a in addresses if w3.eth.get_balance(Web3.to_checksum_address(a)) < ether]
    if needy:
        sender.value(funder, needy, ether)
    if tokens:
        transfer = token.contract.functions.transfer
        sender.calls(
            [(transfer(Web3.to_checksum_address(a), tokens), funder) for a in addresses],
            "token transfers",
        )
