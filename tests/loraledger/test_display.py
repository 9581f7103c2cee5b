from __future__ import annotations

import pytest

from loraledger import display
from loraledger.display import chain_time, compact_time, labelled, relative, short, tokens
from tests.support.chain import LedgerEnv, embedded, embedded_env  # noqa: F401


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "now"),
        (26, "in 26 s"),
        (-26, "26 s ago"),
        (119, "in 119 s"),
        (120, "in 2 min"),
        (-3599, "59 min ago"),
        (7200, "in 2.0 h"),
        (-12_600, "3.5 h ago"),
        (4 * 86400, "in 4.0 days"),
    ],
)
def test_relative_times_read_as_people_say_them(seconds: int, text: str) -> None:
    assert relative(seconds) == text


def test_a_chain_time_is_utc_and_how_far_from_the_chains_now() -> None:
    assert chain_time(1796175477) == "2026-12-02 01:37:57 UTC"
    assert chain_time(1796175477, now=1796175451) == "2026-12-02 01:37:57 UTC (in 26 s)"
    assert chain_time(0, now=60) == "1970-01-01 00:00:00 UTC (60 s ago)"


def test_a_compact_time_fits_a_table_column() -> None:
    assert compact_time(1796175477) == "12-02 01:37:57"


@pytest.mark.parametrize(
    ("units", "shown", "exact"),
    [
        (0, "0 LLT", "0 LLT"),
        (10**18, "1 LLT", "1 LLT"),
        (1234 * 10**18 + 5 * 10**17, "1,234.5 LLT", "1,234.5 LLT"),
        # cut, never rounded up, and marked: 99.999999… is less than 100
        (99_999_999_999_999_999_997, "99.999999… LLT", "99.999999999999999997 LLT"),
        # the kept digits stay whole, so a cut amount never reads as a round one
        (20 * 10**18 + 3, "20.000000… LLT", "20.000000000000000003 LLT"),
        (10**12, "0.000001 LLT", "0.000001 LLT"),
        # dust is not nothing
        (1, "<0.000001 LLT", "0.000000000000000001 LLT"),
        (-3 * 10**17, "-0.3 LLT", "-0.3 LLT"),
        (10**27, "1,000,000,000 LLT", "1,000,000,000 LLT"),
    ],
)
def test_amounts_read_as_tokens_with_the_symbol_cut_or_exact(
    units: int, shown: str, exact: str
) -> None:
    assert tokens(units, exact=False) == shown
    assert tokens(units, exact=True) == exact
    assert tokens(units, exact=False, unit=False) == shown.removesuffix(" LLT")


def test_the_exact_flag_and_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    cut = 99_999_999_999_999_999_997
    monkeypatch.setattr(display, "_exact", None)
    monkeypatch.delenv("LORALEDGER_EXACT_AMOUNTS", raising=False)
    assert tokens(cut) == "99.999999… LLT"
    monkeypatch.setenv("LORALEDGER_EXACT_AMOUNTS", "1")
    assert tokens(cut) == "99.999999999999999997 LLT"
    display.set_exact_amounts(False)  # the flag wins over the environment
    assert tokens(cut) == "99.999999… LLT"


def test_the_token_constants_match_the_deployed_token(embedded: LedgerEnv) -> None:
    assert embedded.token.symbol() == display.TOKEN_SYMBOL
    assert embedded.token.decimals() == display.TOKEN_DECIMALS


def test_identifiers_are_cut_in_the_middle_and_addresses_carry_their_label() -> None:
    address = "0x22d491Bde2303f2f43325b2108D26f1eAbA1e32b"
    assert short(address) == "0x22d4…e32b"
    assert short("0x1234") == "0x1234"
    labels = {address.lower(): "dev:2"}
    assert labelled(address, labels) == f"{address} (dev:2)"
    assert labelled(address, labels, full=False) == "0x22d4…e32b (dev:2)"
    assert labelled(address.upper().replace("0X", "0x"), {}) == address.upper().replace("0X", "0x")
