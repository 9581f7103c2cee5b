"""How amounts and chain times are shown to people: one home for every command's messages.

An amount of tokens is held in base units (18 decimals). People read it in tokens with the
symbol, ``1,234.5 LLT``, cut (never rounded up) to :data:`SHOWN_DECIMALS` decimals with a
trailing ``…`` when digits were cut; ``loraledger --exact-amounts`` (or
``LORALEDGER_EXACT_AMOUNTS=1``) shows every digit. ``--json`` outputs and reports keep the raw
base units, as decimal strings where they may exceed 2^53.

A chain time is the Unix timestamp of a block. People read it as a UTC date and time and, when
the chain's current time is known, as how far away it is (``in 26 s``, ``3 min ago``). Dev
chains can be moved forward (``evm_increaseTime``), so "now" is the chain's latest block time,
never the wall clock. Machine-readable outputs (``--json``, reports) keep the raw integers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = [
    "SHOWN_DECIMALS",
    "TOKEN_DECIMALS",
    "TOKEN_SYMBOL",
    "chain_time",
    "compact_time",
    "exact_amounts",
    "labelled",
    "relative",
    "set_exact_amounts",
    "short",
    "tokens",
    "transaction",
]

TOKEN_SYMBOL = "LLT"
"""The reward token's symbol (``LedgerToken.sol``: ERC20("LoRA Ledger Token", "LLT"))."""
TOKEN_DECIMALS = 18
SHOWN_DECIMALS = 6
"""Decimals shown unless exact amounts are asked for: a millionth of a token."""

_exact: bool | None = None


def set_exact_amounts(exact: bool) -> None:
    """Show every digit of amounts from now on (the root ``--exact-amounts`` flag)."""
    global _exact
    _exact = exact


def exact_amounts() -> bool:
    """Whether amounts are shown with every digit: the flag, else ``LORALEDGER_EXACT_AMOUNTS``."""
    if _exact is not None:
        return _exact
    return os.environ.get("LORALEDGER_EXACT_AMOUNTS", "").strip().lower() in ("1", "true", "yes")


def tokens(units: int, *, unit: bool = True, exact: bool | None = None) -> str:
    """Base units as tokens: ``1,234.5 LLT``, ``99.999999… LLT`` (cut, marked), ``0 LLT``.

    ``unit=False`` leaves the symbol out, for table columns whose title names it. Amounts are
    cut toward zero, never rounded up, so a balance is never shown larger than it is.
    """
    units = int(units)
    exact = exact_amounts() if exact is None else exact
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**TOKEN_DECIMALS)
    digits = f"{frac:0{TOKEN_DECIMALS}d}".rstrip("0")
    cut = not exact and len(digits) > SHOWN_DECIMALS
    if cut:  # the shown digits are kept whole: 20.000000… is more than 20
        digits = digits[:SHOWN_DECIMALS]
    if cut and whole == 0 and not digits.strip("0"):  # a dust amount, not nothing
        text = f"{sign}<0.{'0' * (SHOWN_DECIMALS - 1)}1"
    else:
        text = f"{sign}{whole:,}" + (f".{digits}" if digits else "") + ("…" if cut else "")
    return f"{text} {TOKEN_SYMBOL}" if unit else text


def relative(seconds: int) -> str:
    """A signed distance in time, rounded for reading: ``in 26 s``, ``12 min ago``,
    ``in 3.5 h``, ``in 4 days``, ``now``."""
    if seconds == 0:
        return "now"
    size = abs(seconds)
    if size < 120:
        amount = f"{size} s"
    elif size < 2 * 3600:
        amount = f"{size // 60} min"
    elif size < 48 * 3600:
        amount = f"{size / 3600:.1f} h"
    else:
        amount = f"{size / 86400:.1f} days"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def transaction(what: str, tx_hash: bytes | str, block: int, gas: int) -> str:
    """``join: 0x…(64 hex) in block 42, gas 85,123``: one mined write."""
    text = tx_hash.hex() if isinstance(tx_hash, bytes) else str(tx_hash)
    return f"{what}: 0x{text.removeprefix('0x')} in block {block}, gas {gas:,}"


def compact_time(timestamp: int) -> str:
    """``12-03 00:45:12``: month, day and UTC time, for table columns titled "(UTC)"."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%m-%d %H:%M:%S")


def chain_time(timestamp: int, now: int | None = None) -> str:
    """``2026-12-03 00:45:12 UTC``, and ``(in 26 s)`` when the chain's ``now`` is given."""
    when = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return when if now is None else f"{when} ({relative(timestamp - now)})"


def short(text: str, head: int = 6, tail: int = 4) -> str:
    """A long identifier cut in the middle: ``0x22d4…e32b``, ``bafkre…3ja4`` (kept when short)."""
    return text if len(text) <= head + tail + 1 else f"{text[:head]}…{text[-tail:]}"


def labelled(address: str, labels: Mapping[str, str] | None = None, *, full: bool = True) -> str:
    """An address with the name people know it by: ``0x22d4…e32b (dev:2)``, or the full address
    when ``full``; ``labels`` map lower-case addresses to names (``dev:2``, ``sponsor``)."""
    label = (labels or {}).get(address.lower())
    text = address if full else short(address)
    return f"{text} ({label})" if label else text
