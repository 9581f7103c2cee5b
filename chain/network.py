"""Chains the tool talks to, accounts that sign, and sending transactions.

Networks (``--network``):

- ``embedded``: an in-process chain (eth-tester on py-evm). No process to start; it lives as
  long as the Python process that made it, so it suits one-process runs (``demo``, tests).
- ``ganache`` / ``anvil``: local chains started by ``loraledger chain up`` (deterministic dev
  accounts, Ganache keeps its state on disk across restarts).
- any ``http(s)://`` or ``ws(s)://`` JSON-RPC URL.

Accounts (``--account``): ``dev:N`` (the N-th dev account of a local chain), ``env:VAR``
(a private key in an environment variable, default ``LORALEDGER_PRIVATE_KEY``) or
``keystore:PATH`` (an encrypted JSON keystore; the password comes from the caller). Keys are
only ever held in memory: nothing here logs or writes them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from chain.errors import (
    ChainUnavailable,
    ContractRevert,
    ErrorDecoder,
    NonceTaken,
    TransactionNotMined,
    TransactionReverted,
)
from loraledger.errors import ChainError, ConfigError, LoRALedgerError

logger = logging.getLogger(__name__)

NetworkKind = Literal["embedded", "ganache", "anvil", "rpc"]

GANACHE_MNEMONIC = "myth like bonus scare over problem client lizard pioneer submit female collect"
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_PORTS = {"ganache": 8545, "anvil": 8546}
DEV_ACCOUNTS = 20  # funded dev accounts of every local chain (embedded, ganache, anvil)
RPC_ATTEMPTS = 6
"""How often one JSON-RPC request is sent before its error stands (5 pauses, 3.9 s in all)."""
NONCE_ATTEMPTS = 5
"""How often :meth:`Chain.send` builds a transaction again when another took its nonce."""
RECEIPT_TIMEOUT = 120.0
"""Seconds a sent transaction may take to be mined before :class:`TransactionNotMined`."""


@dataclass(frozen=True)
class NetworkSpec:
    """Where a chain is: a kind and, for process chains, an RPC URL."""

    kind: NetworkKind
    url: str | None = None

    @property
    def name(self) -> str:
        return self.kind if self.kind != "rpc" else str(self.url)

    @property
    def is_local(self) -> bool:
        """A development chain with known dev accounts and time control."""
        return self.kind in ("embedded", "ganache", "anvil")


def parse_network(value: str | None) -> NetworkSpec:
    """``embedded`` (default), ``ganache[:PORT]``, ``anvil[:PORT]`` or a JSON-RPC URL."""
    text = (value or "embedded").strip()
    if text == "embedded":
        return NetworkSpec("embedded")
    kind, _, port = text.partition(":")
    if kind in ("ganache", "anvil"):
        if port and not port.isdigit():
            raise ConfigError(f"network port must be a number, got {port!r}")
        return NetworkSpec(kind, f"http://127.0.0.1:{port or DEFAULT_PORTS[kind]}")  # type: ignore[arg-type]
    if text.startswith(("http://", "https://", "ws://", "wss://")):
        return NetworkSpec("rpc", text)
    raise ConfigError(
        f"unknown network {text!r}",
        hint="use embedded, ganache, anvil (optionally :PORT) or a JSON-RPC URL such as http://127.0.0.1:8545",
    )


@functools.lru_cache(maxsize=64)
def _mnemonic_key(mnemonic: str, index: int) -> bytes:
    Account.enable_unaudited_hdwallet_features()
    return bytes(Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}").key)


def _from_key(key: bytes | str) -> LocalAccount:
    account: LocalAccount = Account.from_key(key)
    return account


def dev_account(network: NetworkSpec, index: int) -> LocalAccount:
    """The ``index``-th dev account of a local chain."""
    if not 0 <= index < DEV_ACCOUNTS:
        raise ConfigError(f"dev account index must be in 0..{DEV_ACCOUNTS - 1}, got {index}")
    if network.kind == "embedded":
        from eth_tester.backends.pyevm.main import get_default_account_keys

        return _from_key(get_default_account_keys(quantity=DEV_ACCOUNTS)[index].to_bytes())
    if network.kind == "ganache":
        return _from_key(_mnemonic_key(GANACHE_MNEMONIC, index))
    if network.kind == "anvil":
        return _from_key(_mnemonic_key(ANVIL_MNEMONIC, index))
    raise ConfigError(
        f"network {network.name} has no dev accounts",
        hint="use --account env:VAR or --account keystore:PATH",
    )


def load_account(spec: str, network: NetworkSpec, *, password: str | None = None) -> LocalAccount:
    """Resolve an ``--account`` value (``dev:N``, ``env:VAR``, ``keystore:PATH``)."""
    kind, _, rest = spec.partition(":")
    if kind == "dev":
        if not rest.isdigit():
            raise ConfigError(f"dev account must be dev:N with N a number, got {spec!r}")
        return dev_account(network, int(rest))
    if kind == "env":
        var = rest or "LORALEDGER_PRIVATE_KEY"
        key = os.environ.get(var)
        if not key:
            raise ConfigError(
                f"environment variable {var} is not set", hint=f"export {var}=0x<private key>"
            )
        try:
            return _from_key(key.strip())
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"environment variable {var} does not hold a valid private key"
            ) from exc
    if kind == "keystore":
        path = Path(rest).expanduser()
        try:
            keyfile = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read keystore {path}: {exc}") from exc
        if password is None:
            raise ConfigError(
                f"keystore {path} needs a password", hint="set LORALEDGER_KEYSTORE_PASSWORD"
            )
        try:
            return _from_key(Account.decrypt(keyfile, password))
        except ValueError as exc:
            raise ConfigError(
                f"cannot decrypt keystore {path}: wrong password or corrupt file"
            ) from exc
    raise ConfigError(f"unknown account {spec!r}", hint="use dev:N, env:VAR or keystore:PATH")


@dataclass(frozen=True)
class _CachedLogs:
    """What :meth:`Chain.logs` read for one query: its logs up to ``to_block`` (whose hash
    was ``block_hash`` when read)."""

    to_block: int
    block_hash: bytes
    logs: tuple[Any, ...]


@dataclass
class Chain:
    """A connection to one chain plus what is needed to send transactions to it."""

    w3: Web3
    network: NetworkSpec
    chain_id: int
    decoder: ErrorDecoder = field(default_factory=lambda: ErrorDecoder([]))
    # told of every transaction this connection got mined: what it was and its receipt (the
    # CLI prints hash, block and gas of every write through it)
    on_mined: Callable[[str, TxReceipt], None] | None = field(default=None, repr=False)
    # blocks an event must have on top of it before the long-running loops act on it
    # (``--confirmations``; 0: act on the head)
    confirmations: int = 0
    _log_cache: dict[tuple[Any, ...], _CachedLogs] = field(
        default_factory=dict, init=False, repr=False
    )

    # ------------------------------------------------------------ event logs

    def logs(self, event: Any, from_block: int, filters: dict[str, Any] | None) -> list[Any]:
        """Every log of ``event`` (a contract's ``ContractEvent``) matching ``filters`` from
        ``from_block`` to the head, read incrementally: a query asked before reads only the
        blocks mined since. The last block read is remembered by its hash; if that block is no
        longer the chain's (a reorganisation, or a reverted snapshot on a dev chain), the cache
        of every query is dropped and the logs are read again from ``from_block``."""
        head = int(self.w3.eth.block_number)
        key = (
            event.address,
            event.event_name,
            from_block,
            json.dumps(filters or {}, sort_keys=True, default=str),
        )
        cached = self._log_cache.get(key)
        if cached is not None and (
            cached.to_block > head
            or bytes(self.w3.eth.get_block(cached.to_block)["hash"]) != cached.block_hash
        ):
            self._log_cache.clear()
            cached = None
        start = from_block if cached is None else cached.to_block + 1
        fresh = (
            list(event.get_logs(from_block=start, to_block=head, argument_filters=filters))
            if start <= head
            else []
        )
        logs = fresh if cached is None else [*cached.logs, *fresh]
        block_hash = bytes(self.w3.eth.get_block(head)["hash"])
        self._log_cache[key] = _CachedLogs(head, block_hash, tuple(logs))
        return logs

    # ------------------------------------------------------------ transactions

    def send(
        self, fn: ContractFunction, account: LocalAccount, *, gas_margin: float = 1.25
    ) -> TxReceipt:
        """Simulate, sign locally, send and wait for ``fn``; reverts raise ``ContractRevert``.

        Sent once in effect: the signed bytes are re-sent as they are when a request fails
        (same nonce, so at most one is ever mined); when another process of the same account
        took the nonce first (:class:`NonceTaken`), it is simulated, signed and sent again with
        the next one, at most :data:`NONCE_ATTEMPTS` times."""
        attempt = 1
        while True:
            try:
                gas = fn.estimate_gas({"from": account.address})
            except Exception as exc:
                raise self._failed(fn, exc) from exc
            nonce = self.w3.eth.get_transaction_count(account.address, "pending")
            tx = fn.build_transaction(
                {
                    "from": account.address,
                    "nonce": nonce,
                    "gas": int(gas * gas_margin) + 10_000,
                    "chainId": self.chain_id,
                }
            )
            signed = account.sign_transaction(cast("dict[str, Any]", tx))
            try:
                return self.send_raw(
                    signed.raw_transaction, fn.fn_name, sender=account.address, nonce=nonce
                )
            except NonceTaken:
                if attempt == NONCE_ATTEMPTS:
                    raise
                attempt += 1
                logger.info(
                    "%s: nonce %s was taken by another transaction; again", fn.fn_name, nonce
                )

    def deploy(
        self, abi: list[dict[str, Any]], bytecode: str, args: list[Any], account: LocalAccount
    ) -> TxReceipt:
        """Deploy a contract from ``account``; returns the receipt (``contractAddress`` set)."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        constructor = factory.constructor(*args)
        gas = constructor.estimate_gas({"from": account.address})
        nonce = self.w3.eth.get_transaction_count(account.address, "pending")
        tx = constructor.build_transaction(
            {
                "from": account.address,
                "nonce": nonce,
                "gas": int(gas * 1.2) + 50_000,
                "chainId": self.chain_id,
            }
        )
        raw = account.sign_transaction(tx).raw_transaction
        return self.send_raw(raw, "deploy", sender=account.address, nonce=nonce)

    def send_raw(
        self, raw: bytes, what: str, *, sender: str | None = None, nonce: int | None = None
    ) -> TxReceipt:
        """Send signed bytes and wait for their receipt.

        A request that fails may still have reached the node (a reply lost, a timeout): the
        provider sends the same bytes again, and whatever the node answers then ("already
        known", "nonce too low"), the transaction is looked up by its hash (``keccak(raw)``)
        before anything is concluded. With ``sender`` and ``nonce`` given, a transaction the
        node never saw whose nonce another one used is :class:`NonceTaken`."""
        tx_hash = Web3.keccak(raw)
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            if not self._known(tx_hash):
                raise self._not_sent(what, exc, sender, nonce) from exc
            logger.info("%s: the node has transaction %s already", what, tx_hash.hex())
        receipt = self._receipt(tx_hash, what)
        if receipt["status"] != 1:
            decoded = self._replay_revert(tx_hash, int(receipt["blockNumber"]))
            if decoded is not None:
                raise decoded
            raise TransactionReverted(f"{what} reverted in transaction {tx_hash.hex()}")
        logger.debug(
            "%s mined in block %s, gas %s", what, receipt["blockNumber"], receipt["gasUsed"]
        )
        if self.on_mined is not None:
            self.on_mined(what, receipt)
        return receipt

    def _known(self, tx_hash: bytes) -> bool:
        """Whether the node has this transaction, pending or mined (``False`` when it cannot be
        asked either)."""
        try:
            self.w3.eth.get_transaction(cast("Any", tx_hash))
        except Exception:  # TransactionNotFound, or the node still unreachable
            return False
        return True

    def _not_sent(
        self, what: str, exc: Exception, sender: str | None, nonce: int | None
    ) -> ChainError:
        """The error for a transaction the node does not have after sending failed."""
        if isinstance(exc, ChainUnavailable):
            return exc
        mapped = self.decoder.from_exception(exc)
        if isinstance(mapped, ContractRevert):
            return mapped
        if sender is not None and nonce is not None and self._nonce_taken(sender, nonce):
            return NonceTaken(
                f"{what}: another transaction of {sender} was mined with nonce {nonce} "
                "(two processes signing as one account?); this one was not sent"
            )
        return ChainError(
            f"{what} could not be sent to {self.network.name}: {exc}",
            hint="nothing was sent; check the chain's RPC endpoint and run the command again",
        )

    def _nonce_taken(self, sender: str, nonce: int, wait: float = 3.0) -> bool:
        """Whether another transaction of ``sender`` was mined with ``nonce``, waiting up to
        ``wait`` seconds for one still being mined (Ganache answers "can't be replaced, mining
        has already started" or "transaction underpriced" while it is)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                if int(self.w3.eth.get_transaction_count(cast("Any", sender), "latest")) > nonce:
                    return True
            except Exception:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def _receipt(self, tx_hash: bytes, what: str, timeout: float = RECEIPT_TIMEOUT) -> TxReceipt:
        """Wait for a sent transaction's receipt, asking again through dropped connections and
        timeouts until ``timeout`` seconds have passed."""
        from web3.exceptions import TransactionNotFound

        deadline = time.monotonic() + timeout
        pause, last = 0.05, "not mined yet"
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(cast("Any", tx_hash))
            except TransactionNotFound:
                last = "not mined yet"
            except (ChainUnavailable, OSError, ValueError) as exc:  # no answer, for now
                last = f"{type(exc).__name__}: {exc}"
                logger.info("%s: asking for receipt of %s failed: %s", what, tx_hash.hex(), last)
            if time.monotonic() > deadline:
                raise TransactionNotMined(
                    f"{what}: transaction 0x{tx_hash.hex().removeprefix('0x')} has no receipt "
                    f"after {timeout:.0f} s ({last}); it may still be mined",
                    hint="look it up before sending again (`cast tx`, or the dashboard's "
                    "/api/tx/<hash>); a retry with the same nonce is safe, a new one is not",
                )
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _replay_revert(self, tx_hash: Any, block: int) -> ContractRevert | None:
        """Why a mined transaction reverted: the same call replayed on the state and time of
        the block it was mined in (a check that passed when it was simulated can fail by then,
        such as a window that closed), decoded like a simulation's revert; ``None`` when the
        replay does not revert (the block's earlier transactions made the difference)."""
        tx = self.w3.eth.get_transaction(tx_hash)
        call = {
            "from": tx["from"],
            "to": tx["to"],
            "data": tx["input"],
            "value": tx["value"],
            "gas": tx["gas"],
        }
        try:
            self.w3.eth.call(cast("Any", call), block_identifier=block)
        except Exception as exc:  # any revert shape; what is not a custom error falls through
            decoded = self.decoder.from_exception(exc)
            return decoded if isinstance(decoded, ContractRevert) else None
        return None

    def call(self, fn: ContractFunction) -> Any:
        """Call a view function; reverts raise ``ContractRevert``."""
        try:
            return fn.call()
        except Exception as exc:
            raise self._failed(fn, exc) from exc

    def _failed(self, fn: ContractFunction, exc: Exception) -> LoRALedgerError:
        """What a failed call or gas estimate of ``fn`` raises: our own errors as they are
        (``ChainUnavailable``), a revert decoded to its custom error, else one ChainError."""
        if isinstance(exc, LoRALedgerError):
            return exc
        mapped = self.decoder.from_exception(exc)
        if mapped is None:
            return ChainError(f"{fn.fn_name} failed on {self.network.name}: {exc}")
        return mapped

    # ------------------------------------------------------------ dev-chain helpers

    def depth(self, block: int) -> int:
        """Blocks mined on top of ``block`` (0: it is the head)."""
        return int(self.w3.eth.block_number) - block

    def confirmed(self, block: int) -> bool:
        """Whether ``block`` has :attr:`confirmations` blocks on top of it."""
        return self.confirmations <= 0 or self.depth(block) >= self.confirmations

    def timestamp(self) -> int:
        """Timestamp of the latest block."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def keep_clock(self) -> None:
        """On a local dev chain, mine an empty block so its clock follows the wall clock.

        Ganache and anvil mine only when a transaction arrives: while nobody submits, the latest
        block's timestamp stands still and a submission window would never close. Other chains
        produce blocks on their own; nothing to do there.
        """
        if self.network.kind in ("ganache", "anvil"):
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def advance_time(self, seconds: int) -> None:
        """Move a local chain's clock forward and mine a block (tests, demos)."""
        if self.network.kind == "embedded":
            tester = self.w3.provider.ethereum_tester  # type: ignore[attr-defined]
            tester.time_travel(self.timestamp() + seconds)
            tester.mine_blocks(1)
        elif self.network.kind in ("ganache", "anvil"):
            self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        else:
            raise ChainError(f"cannot move the clock of {self.network.name}: not a local chain")


def _estimate_in_one_run(state: Any, transaction: Any) -> int:
    """Gas estimation for the embedded chain in one execution at the block gas limit.

    py-evm's default estimator binary-searches the limit, running each transaction ~13 times
    (a third of an embedded demo's time). ``Chain.send`` adds a 25 % margin to the estimate, which
    covers the gas that calls must leave behind (EIP-150); gas figures come from receipts, so
    measurements do not change. A failing transaction raises its VM error, as py-evm's does."""
    from eth.vm.spoof import SpoofTransaction

    spoof = SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(spoof)
    finally:
        state.revert(snapshot)
    if computation.is_error:
        raise computation.error
    return int(state.gas_limit - computation.get_gas_remaining())


@functools.cache
def _index_embedded_lookups() -> None:
    """Find transactions by hash through py-evm's index on the embedded chain.

    eth-tester's ``_get_transaction_by_hash`` walks every block for each receipt, so every log
    query costs O(blocks^2) and a task's history took seconds to read after a few rounds. The
    chain database already indexes transactions by hash; this looks them up there (the pending
    block first, as eth-tester does) and falls back to the walk whenever the index disagrees.
    """
    from eth_tester.backends.pyevm import main as pyevm

    walk = getattr(pyevm, "_get_transaction_by_hash", None)
    if walk is None:  # another eth-tester: nothing to speed up
        return

    def lookup(chain: Any, transaction_hash: bytes) -> Any:
        head = chain.get_block()
        for index, tx in enumerate(head.transactions):
            if tx.hash == transaction_hash:
                return head, tx, index
        try:
            number, index = chain.chaindb.get_transaction_index(transaction_hash)
            block = chain.get_canonical_block_by_number(number)
            tx = block.transactions[index]
        except Exception:
            return walk(chain, transaction_hash)
        if tx.hash != transaction_hash:
            return walk(chain, transaction_hash)
        return block, tx, index

    pyevm._get_transaction_by_hash = lookup


def _provider(url: str, **kwargs: Any) -> Any:
    """web3's HTTP provider whose transport failures (after its retries) are one
    :class:`ChainUnavailable` naming the endpoint, wherever the chain is read or written."""
    import requests
    from web3 import HTTPProvider

    transport = (ConnectionError, requests.ConnectionError, requests.Timeout, requests.HTTPError)

    class Provider(HTTPProvider):
        def make_request(self, method: Any, params: Any) -> Any:
            try:
                return super().make_request(method, params)
            except transport as exc:
                raise ChainUnavailable(
                    f"the chain at {url} does not answer ({method}: {type(exc).__name__})",
                    hint="is the chain process running? (`loraledger chain status`)",
                ) from exc

    return Provider(url, **kwargs)


def _retries() -> Any:
    """Requests to an RPC endpoint are sent again, up to :data:`RPC_ATTEMPTS` times with a
    doubling pause from 0.125 s, when the connection drops, is reset, times out or answers an
    HTTP error. web3.py's default retries only the built-in ``ConnectionError``, which
    ``requests`` never raises, so a dropped connection failed at once. Re-sending a signed
    transaction is safe: its nonce lets at most one copy be mined (:meth:`Chain.send_raw`)."""
    import requests
    from web3.providers.rpc.utils import REQUEST_RETRY_ALLOWLIST, ExceptionRetryConfiguration

    return ExceptionRetryConfiguration(
        # reads (fee history too, which web3.py leaves out) and sending signed bytes
        method_allowlist=[*REQUEST_RETRY_ALLOWLIST, "eth_feeHistory", "eth_blobBaseFee", "web3"],
        errors=(
            ConnectionError,
            requests.ConnectionError,
            requests.Timeout,
            requests.HTTPError,
        ),
        retries=RPC_ATTEMPTS,
        backoff_factor=0.125,
    )


def connect(network: NetworkSpec | str | None, *, timeout: float = 5.0) -> Chain:
    """Connect to a chain; raises ``ChainError`` naming the URL when nobody answers."""
    spec = network if isinstance(network, NetworkSpec) else parse_network(network)
    if spec.kind == "embedded":
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider

        _index_embedded_lookups()
        genesis = PyEVMBackend.generate_genesis_state(num_accounts=DEV_ACCOUNTS)
        backend = PyEVMBackend(genesis_state=genesis)
        # the class too: reverting a snapshot may rebuild the chain object from it
        type(backend.chain).gas_estimator = staticmethod(_estimate_in_one_run)
        backend.chain.gas_estimator = _estimate_in_one_run
        w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
        chain_id = int(w3.eth.chain_id)
    else:
        if spec.url is None:
            raise ConfigError(f"network {spec.kind} needs an RPC URL")
        if spec.url.startswith("ws"):
            raise ConfigError(
                "websocket RPC URLs are not supported; use the chain's http(s) endpoint"
            )
        w3 = Web3(
            _provider(
                spec.url,
                request_kwargs={"timeout": timeout},
                exception_retry_configuration=_retries(),
            )
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                chain_id = int(w3.eth.chain_id)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    port = spec.url.rsplit(":", 1)[-1]
                    hint = (
                        f"start it with `loraledger chain up --kind {spec.kind} --port {port}`"
                        if spec.kind in ("ganache", "anvil")
                        else None
                    )
                    raise ChainUnavailable(
                        f"no chain answers at {spec.url} ({type(exc).__name__})", hint=hint
                    ) from exc
                time.sleep(0.2)
        from web3.middleware import ExtraDataToPOAMiddleware

        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    from chain.compiler import DEPLOYABLE, load_artifact

    decoder = ErrorDecoder(load_artifact(name).abi for name in DEPLOYABLE)
    return Chain(w3=w3, network=spec, chain_id=chain_id, decoder=decoder)
