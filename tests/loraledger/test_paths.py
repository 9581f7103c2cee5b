"""State files are replaced whole or not at all: a full disk leaves the old file and no
temporary file, with one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraledger.errors import StorageError
from loraledger.paths import write_bytes_atomic, write_json_atomic
from tests.support.faults import disk_full_after


def test_a_full_disk_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "round-1.json"
    write_json_atomic(path, {"round": 1, "salt": "ab" * 32})
    before = path.read_bytes()
    with disk_full_after(64), pytest.raises(StorageError, match=r"cannot write .*round-1\.json"):
        write_json_atomic(path, {"round": 1, "salt": "ab" * 32, "cid": "bafk" + "x" * 100})
    assert path.read_bytes() == before  # the old journal, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["round-1.json"]  # no leftovers
    write_json_atomic(path, {"round": 1, "cid": "c"})  # room again: it works
    assert json.loads(path.read_text()) == {"round": 1, "cid": "c"}


def test_an_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StorageError, match="cannot write") as info:
        write_bytes_atomic(blocker / "update.safetensors", b"\0" * 10)
    assert info.value.hint is not None and "writable" in info.value.hint
