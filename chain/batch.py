"""Many transactions at once: signed and sent without waiting for each, then awaited together.

Set-up work (gas money and tokens for hundreds of accounts, the joins, commitments and reveals
of synthetic nodes in benchmarks) does not need :meth:`chain.network.Chain.send`'s simulation
and receipt wait per transaction. :class:`BatchSender` builds each with a fixed gas limit and
price, counts nonces itself (one ``eth_getTransactionCount`` per account and batch), sends up
to ``in_flight`` transactions before it waits for their receipts, and raises
:class:`~loraledger.errors.ChainError` naming the batch when any of them reverted. The receipts
come back to the caller (gas used); ``Chain.on_mined`` is not told of set-up transactions.

The one home of sending in bulk: the gas benchmark (:mod:`chain.gas`), the Flower federation's
funding (:func:`flower_app.accounts.fund_accounts`) and the load benchmark (:mod:`bench.load`)
use it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import Nonce, TxParams, TxReceipt, Wei

from chain.network import RECEIPT_TIMEOUT, Chain
from loraledger.errors import ChainError, ConfigError

logger = logging.getLogger(__name__)

IN_FLIGHT = 50
"""Transactions sent before waiting for them (a local chain's pool stays small)."""
CALL_GAS = 1_000_000
"""The gas limit of every contract call in a batch (it only caps what one may use)."""
TRANSFER_GAS = 21_000


class BatchSender:
    """Sends batches of transactions on ``chain`` at one fixed gas price: ``gas_price`` wei, or
    twice the node's suggestion read once (on anvil, paying the suggestion with a margin raises
    the next suggestion, so the price is fixed, not read again for every transaction)."""

    def __init__(
        self, chain: Chain, *, gas_price: int | None = None, in_flight: int = IN_FLIGHT
    ) -> None:
        if in_flight < 1:
            raise ConfigError(f"in_flight must be positive, got {in_flight}")
        self.chain = chain
        self.gas_price = gas_price if gas_price is not None else 2 * int(chain.w3.eth.gas_price)
        self.in_flight = in_flight

    def calls(
        self, calls: Sequence[tuple[ContractFunction, LocalAccount]], what: str
    ) -> list[TxReceipt]:
        """Send every ``(function, signer)`` in order (one signer's calls keep their order) and
        return the receipts in the same order."""
        nonces: dict[str, int] = {}
        signed = []
        for fn, account in calls:
            params: TxParams = {
                "from": account.address,
                "nonce": Nonce(self._next_nonce(nonces, account.address)),
                "gas": CALL_GAS,
                "gasPrice": Wei(self.gas_price),
                "chainId": self.chain.chain_id,
            }
            tx = fn.build_transaction(params)
            signed.append(account.sign_transaction(cast("dict[str, Any]", tx)).raw_transaction)
        return self._send(signed, what)

    def value(
        self, funder: LocalAccount, addresses: Sequence[str], amount: int, what: str = "gas money"
    ) -> list[TxReceipt]:
        """Send ``amount`` wei from ``funder`` to each address."""
        nonces: dict[str, int] = {}
        signed = []
        for address in addresses:
            tx: dict[str, Any] = {
                "to": Web3.to_checksum_address(address),
                "value": amount,
                "gas": TRANSFER_GAS,
                "gasPrice": self.gas_price,
                "nonce": self._next_nonce(nonces, funder.address),
                "chainId": self.chain.chain_id,
            }
            signed.append(funder.sign_transaction(tx).raw_transaction)
        return self._send(signed, what)

    def _next_nonce(self, nonces: dict[str, int], address: str) -> int:
        if address not in nonces:
            w3 = self.chain.w3
            nonces[address] = int(w3.eth.get_transaction_count(cast("Any", address), "pending"))
        nonce = nonces[address]
        nonces[address] = nonce + 1
        return nonce

    def _send(self, signed: Sequence[bytes], what: str) -> list[TxReceipt]:
        receipts: list[TxReceipt] = []
        for start in range(0, len(signed), self.in_flight):
            hashes = [
                self.chain.w3.eth.send_raw_transaction(raw)
                for raw in signed[start : start + self.in_flight]
            ]
            receipts += [self._receipt(tx_hash, what) for tx_hash in hashes]
        logger.debug("%s: %s transactions mined", what, len(receipts))
        return receipts

    def _receipt(self, tx_hash: Any, what: str) -> TxReceipt:
        receipt = self.chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
        if receipt["status"] != 1:
            raise ChainError(f"{what}: transaction {tx_hash.hex()} reverted")
        return receipt
