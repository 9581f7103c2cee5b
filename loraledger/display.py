"""How chain times are shown to people: one home for every command's messages.

A chain time is the Unix timestamp of a block. People read it as a UTC date and time and, when
the chain's current time is known, as how far away it is (``in 26 s``, ``3 min ago``). Dev
chains can be moved forward (``evm_increaseTime``), so "now" is the chain's latest block time,
never the wall clock. Machine-readable outputs (``--json``, reports) keep the raw integers.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["chain_time", "compact_time", "relative", "transaction"]


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
