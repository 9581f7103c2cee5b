"""``loraledger demo``'s accountability options: validators, quorum and lying parties, with
the table of the aggregator and validators (and the same in the summary)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import invoke, user_error


@pytest.mark.slow
def test_demo_with_malicious_nodes_adds_a_lying_aggregator_and_validator_and_tables_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    out_dir = tmp_path / "out"
    output = invoke(
        "demo",
        "--tiny",
        "--nodes",
        "2",
        "--rounds",
        "1",
        "--malicious",
        "1",
        "--attack",
        "zero",
        "--steps",
        "2",
        "--out",
        str(out_dir),
    )
    assert "3 validators (a majority signs), a lying aggregator and a lying validator" in output
    assert "aggregator and validators" in output and "no (lies)" in output
    parties = json.loads((out_dir / "summary.json").read_text())["parties"]
    assert [(p["role"], p["honest"]) for p in parties] == [
        ("aggregator", False),
        ("validator", True),
        ("validator", True),
        ("validator", False),
    ]
    assert all(int(p["earned"]) >= 0 and int(p["bond_slashed"]) >= 0 for p in parties)


def test_demo_refuses_too_few_validators_for_the_liars_and_bad_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    err = user_error(capsys, "demo", "--tiny", "--validators", "2", "--malicious", "1")
    assert "error: a lying validator is outvoted only by two honest ones" in err
    assert "hint: use --validators 3 or more" in err
    err = user_error(capsys, "demo", "--tiny", "--validators", "0")
    assert "--validators must be in 1..5, got 0" in err
    # without liars any count of 1..5 will do; here the dev accounts run out
    err = user_error(
        capsys,
        "demo",
        "--tiny",
        "--validators",
        "5",
        "--no-liars",
        "--malicious",
        "1",
        "--nodes",
        "13",
    )
    assert "dev accounts left after the sponsor, the aggregator and 5 validators" in err
