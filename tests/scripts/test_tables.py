"""Tables at 80 columns: every value whole, nothing cut, text wrapping between words."""

from __future__ import annotations

import pytest
from rich.console import Console

from loraledger.display import tokens
from scripts.console import account, ident, table

ADDRESS = "0x22d491Bde2303f2f43325b2108D26f1eAbA1e32b"
CID = "bafkreihv3rrxibuumdpfbqbvl4zncyziuocfrflhzc4zrf62bcplednqsa"


def _render(width: int, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    labels = {ADDRESS.lower(): "dev:2"}
    made = table(
        "round",
        "state",
        "node",
        "submitted / accepted / rejected",
        "reasons",
        "eval loss",
        "reserved (LLT)",
        "claimed (LLT)",
        *(["report"] if width >= 120 else []),  # as `audit rounds`: the CID only when wide
        text=("state", "reasons"),
    )
    for r in (1, 2, 3):
        made.add_row(
            str(r),
            "finalized (challengeable until 12-03 04:33:49)",
            account(ADDRESS, labels),
            "5/4/1",
            "norm_outlier x1, replayed_update x2",
            "6.2311",
            tokens(99_999_999_999_999_999_997, unit=False),
            tokens(1_234_000 * 10**18, unit=False),
            *([ident(CID)] if width >= 120 else []),
        )
    out = Console(width=width, record=True, file=None)
    with out.capture() as captured:
        out.print(made)
    return captured.get()


def test_at_80_columns_values_stay_whole_and_text_wraps(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _render(80, monkeypatch)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for value in ("99.999999…", "1,234,000", "6.2311", "5/4/1", "dev:2"):
        assert text.count(value) == 3, value  # one whole value on one line per row
    for word in ("finalized", "challengeable", "norm_outlier", "replayed_update"):
        assert text.count(word) == 3, word  # text breaks between words, never inside one
    # every header word shows whole
    for word in ("submitted", "accepted", "rejected", "reserved", "claimed", "(LLT)"):
        assert word in text, word


def test_wide_terminals_show_full_identifiers_with_labels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = _render(200, monkeypatch)
    assert f"{ADDRESS} (dev:2)" in text and CID in text
    assert max(len(line) for line in text.splitlines()) <= 200


def test_a_narrow_cell_is_a_short_identifier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert ident(CID) == "bafkre…nqsa" and ident("-") == "-"
    assert account(ADDRESS) == "0x22d4…e32b" and account(ADDRESS, {ADDRESS.lower(): "x"}) == "x"


def test_values_too_wide_for_the_terminal_fold_and_never_lose_a_character(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    made = table("ledger", "other ledger", "block")  # no text column to give room
    made.add_row(ADDRESS, ADDRESS.lower(), "420")
    out = Console(width=60, record=True)
    with out.capture() as captured:
        out.print(made)
    text = captured.get()
    assert max(len(line) for line in text.splitlines()) <= 60 and "…" not in text
    # every character of every cell and header is still there, folded onto next lines
    cells = ["ledger", "other", "ledger", "block", ADDRESS, ADDRESS.lower(), "420"]
    assert sorted("".join(text.split()).replace("─", "")) == sorted("".join(cells))
