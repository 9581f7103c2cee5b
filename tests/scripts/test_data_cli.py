"""``loraledger data``: sample, split and check through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from fl_node.data import load_examples


def loraledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "200", "PATH": ""},
    )


def test_sample_then_split_by_label_writes_one_topic_per_node(tmp_path: Path) -> None:
    made = loraledger(
        "data",
        "sample",
        "s.jsonl",
        "--topic",
        "ai",
        "--topic",
        "food",
        "--topic",
        "sports",
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    assert Counter(e.label for e in load_examples(tmp_path / "s.jsonl")) == {
        "ai": 105,
        "sports": 24,
        "food": 17,
    }
    split = loraledger(
        "data", "split", "s.jsonl", "--nodes", "3", "--strategy", "label", "-o", "out", cwd=tmp_path
    )
    assert split.returncode == 0, split.stderr
    shards = [load_examples(tmp_path / "out" / f"node-{i}.jsonl") for i in range(3)]
    assert sorted({e.label for e in shard}.pop() for shard in shards) == ["ai", "food", "sports"]
    assert all(len({e.label for e in shard}) == 1 for shard in shards)
    checked = loraledger("data", "check", "out/node-0.jsonl", cwd=tmp_path)
    assert checked.returncode == 0 and "105" in checked.stdout


def test_bad_data_file_is_one_error_line_with_a_hint_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    result = loraledger("data", "split", "bad.jsonl", "--nodes", "2", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: bad.jsonl:1: missing columns") and lines[1].startswith(
        "hint:"
    )


def test_more_nodes_than_labels_is_refused_with_a_hint(tmp_path: Path) -> None:
    assert loraledger("data", "sample", "s.jsonl", "--topic", "food", cwd=tmp_path).returncode == 0
    result = loraledger("data", "split", "s.jsonl", "-N", "2", "-s", "label", cwd=tmp_path)
    assert result.returncode == 1 and "1 labels cannot fill 2 shards" in result.stderr
    assert "dirichlet" in result.stderr


def test_sample_list_needs_no_file_and_a_sample_without_one_is_a_usage_error(
    tmp_path: Path,
) -> None:
    listed = loraledger("data", "sample", "--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {"ai", "food", "sports"} <= set(listed.stdout.split())
    missing = loraledger("data", "sample", cwd=tmp_path)
    assert missing.returncode == 2 and "give the JSONL file to write" in missing.stderr
    assert list(tmp_path.iterdir()) == []
