from __future__ import annotations

import pytest

from loraledger.display import chain_time, compact_time, relative


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
