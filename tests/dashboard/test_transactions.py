"""What the transaction and block views accept as a hash or a number (the rest of
:mod:`dashboard.transactions` is exercised through the feed and the server in test_server)."""

from __future__ import annotations

import pytest

from dashboard.transactions import parse_block_number, parse_tx_hash

HASH = "0x" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (HASH, HASH),
        (HASH.upper().replace("0X", "0x"), HASH),  # hex digits in either case
        (HASH[2:], None),  # no 0x
        ("0X" + HASH[2:], None),
        (HASH + "0", None),
        (HASH[:-1], None),
        (HASH[:-1] + "g", None),
        (HASH + "\n", None),
        ("", None),
    ],
)
def test_a_transaction_hash_is_0x_and_64_hex_digits(text: str, parsed: str | None) -> None:
    assert parse_tx_hash(text) == parsed


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0", 0),
        ("42", 42),
        ("999999999999999999", 10**18 - 1),
        ("1000000000000000000", None),  # past any chain's height
        ("042", None),
        ("-1", None),
        ("+1", None),
        ("1.0", None),
        ("0x2a", None),
        (" 1", None),
        ("", None),
        ("١٢", None),  # digits of other scripts are not block numbers
    ],
)
def test_a_block_number_is_a_plain_decimal_integer(text: str, parsed: int | None) -> None:
    assert parse_block_number(text) == parsed
