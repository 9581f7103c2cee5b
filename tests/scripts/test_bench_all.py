"""``loraledger bench all``: every area's table in one BENCHMARKS.md, with the machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scripts.bench_all import git_commit
from scripts.bench_cli import app


def _ratios(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)x", line)]


@pytest.mark.slow
def test_bench_all_quick_writes_every_area_with_machine_and_ratios(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    result = CliRunner().invoke(
        app, ["all", "--quick", "--no-gpu", "--out", str(out)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = out.read_text()
    assert f"`loraledger bench all --quick --out {out} --no-gpu`" in text
    for heading in ("## Machine", "## Aggregation", "## Storage", "## Training", "## Gas",
                    "## Round overhead of chain + IPFS"):  # fmt: skip
        assert heading in text
    for item in ("| CPU |", "| cores |", "| RAM |", "| GPU |", "| torch |", "| peft |",
                 "| web3 |", "| flwr |", "| python |", "| git commit |"):  # fmt: skip
        assert item in text
    assert "not measured" not in text

    lines = text.splitlines()
    fedavg = [line for line in lines if re.match(r"\| [23] \| \d", line)]
    assert len(fedavg) >= 2  # 2 and 3 updates, in memory (and streamed)
    assert all(r > 0 for line in fedavg for r in _ratios(line))
    cid = next(line for line in lines if line.startswith("| CID of bytes (local) |"))
    assert "sha256" in cid and _ratios(cid)[0] > 0
    train = next(line for line in lines if line.startswith("| fp32 cpu |"))
    plain_loss, ours_loss = re.findall(r"(\d+\.\d{4}) / (\d+\.\d{4})", train)[0]
    assert plain_loss == ours_loss  # the same maths in both loops

    rounds = {
        int(m.group(1)): (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
        for m in re.finditer(r"^\| (\d+) \| ([\d,]+) \| [\d.]+x \| ([\d,]+) \|", text, re.MULTILINE)
    }
    assert set(rounds) == {1, 10}
    finalize_1, claim_1 = rounds[1]
    finalize_10, claim_10 = rounds[10]
    assert abs(finalize_10 - finalize_1) / finalize_1 < 0.01  # flat in N
    assert claim_10 > claim_1  # a longer Merkle proof

    # whole Flower rounds, 2 and 3 nodes, with the ledger and without: seconds and the share
    section = text.split("## Round overhead of chain + IPFS")[1].split("\n## ")[0]
    overhead = re.findall(r"^\| ([23]) \| ([\d.]+) \| ([\d.]+) \| ([+-][\d.]+) \| (-?[\d.]+)%", section,
                          re.MULTILINE)  # fmt: skip
    assert [int(row[0]) for row in overhead] == [2, 3], section
    for _, plain, ledger, difference, share in overhead:
        assert float(plain) > 0 and float(ledger) > 0
        assert abs(float(ledger) - float(plain) - float(difference)) < 0.011
        # the share is computed before rounding: allow the seconds' rounding (+-0.005 s each)
        slack = (0.01 + 0.005 * abs(float(difference)) / float(ledger)) / float(ledger) + 0.0005
        assert abs(float(share) / 100 - float(difference) / float(ledger)) <= slack
    assert "Time per extra node:" in section and "--round-model smollm2" in section


def test_git_commit_reads_head_loose_and_packed_refs(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    assert git_commit(tmp_path) is None
    (git / "packed-refs").write_text("# pack-refs\n" + "a" * 40 + " refs/heads/main\n")
    assert git_commit(tmp_path) == "a" * 40
    (git / "refs" / "heads" / "main").write_text("b" * 40 + "\n")
    assert git_commit(tmp_path) == "b" * 40
    (git / "HEAD").write_text("c" * 40 + "\n")  # detached
    assert git_commit(tmp_path) == "c" * 40
