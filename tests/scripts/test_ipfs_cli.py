"""``loraledger ipfs``: up, put, get from another process, same CID everywhere, down; bad input is
one line and exit code 1, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ipfs import compute_cid
from ipfs.daemon import DaemonStatus
from tests.support.cli import run_cli
from tests.support.ipfs import free_port, ipfs_daemon  # noqa: F401

# a separate process that only knows the store URL and the CID
READ_BACK = (
    "import sys; from ipfs import open_store\n"
    "print(open_store(sys.argv[1]).get_file(sys.argv[2], sys.argv[3]))"
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LORALEDGER_IPFS", raising=False)
    return tmp_path / "home"


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(os.urandom(3_700_000))  # the size of a SmolLM2 r=8 adapter
    return path


@pytest.mark.slow
@pytest.mark.ipfs_daemon
def test_up_store_read_back_in_another_process_same_cid_and_down(
    capsys: pytest.CaptureFixture[str], home: Path, adapter: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    code, out, _ = run_cli(capsys, "ipfs", "up", "--port", str(port))
    try:
        assert code == 0 and url in out
        assert "js-ipfs node ready" in out  # what runs, not only its RPC API's version
        code, again, _ = run_cli(capsys, "ipfs", "up", "--port", str(port))
        assert code == 0 and url in again  # idempotent
        code, out, _ = run_cli(capsys, "ipfs", "put", str(adapter), "--ipfs", url)
        assert code == 0
        cid = out.strip()
        assert cid == compute_cid(adapter)
        assert run_cli(capsys, "ipfs", "put", str(adapter))[1].strip() == cid  # embedded: same CID
        assert run_cli(capsys, "ipfs", "cid", str(adapter))[1].strip() == cid
        reader = subprocess.run(
            [sys.executable, "-c", READ_BACK, url, cid, str(tmp_path / "fetched.safetensors")],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert int(reader.stdout) == adapter.stat().st_size
        assert (tmp_path / "fetched.safetensors").read_bytes() == adapter.read_bytes()
        code, out, _ = run_cli(capsys, "ipfs", "status")
        assert code == 0 and "running" in out and "1 objects" in out
    finally:
        code, out, _ = run_cli(capsys, "ipfs", "down")
    assert code == 0 and "stopped" in out
    assert "no IPFS daemon" in run_cli(capsys, "ipfs", "down")[1]


@pytest.mark.ipfs_daemon
def test_push_pinned_moves_embedded_content_to_a_node_unchanged(
    capsys: pytest.CaptureFixture[str],
    home: Path,
    adapter: Path,
    ipfs_daemon: DaemonStatus,
    tmp_path: Path,
) -> None:
    cid = run_cli(capsys, "ipfs", "put", str(adapter))[1].strip()
    assert run_cli(capsys, "ipfs", "pin", cid)[0] == 0
    code, out, err = run_cli(capsys, "ipfs", "push", "--pinned", "--to", str(ipfs_daemon.api_url))
    assert code == 0, err
    assert "same CID" in out
    code, out, _ = run_cli(
        capsys, "ipfs", "get", cid, str(tmp_path / "back.bin"), "--ipfs", str(ipfs_daemon.api_url)
    )
    assert code == 0 and (tmp_path / "back.bin").read_bytes() == adapter.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ipfs", "get", "not-a-cid", "out"], "not a valid CID"),
        (["ipfs", "get", "QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51", "out"], "CIDv0"),
        (["ipfs", "get", compute_cid(b"never stored"), "out"], "is not in the store"),
        (["ipfs", "get", compute_cid(b"x"), "out", "--max-size", "lots"], "not a size"),
        (["ipfs", "put", "/no/such/file"], "is not a file"),
        (["ipfs", "put", __file__, "--ipfs", "ftp://host"], "unknown store"),
        (["ipfs", "has", "bafy"], "not a valid CID"),
        (["ipfs", "push", "--to", "embedded:{tmp}/elsewhere"], "nothing to copy"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_code_1(
    capsys: pytest.CaptureFixture[str],
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert code == 1
    assert "Traceback" not in err
    assert err.startswith("error:") and message in err.splitlines()[0]
    assert not (tmp_path / "out").exists()


def test_get_over_max_size_writes_nothing(
    capsys: pytest.CaptureFixture[str], home: Path, adapter: Path, tmp_path: Path
) -> None:
    cid = run_cli(capsys, "ipfs", "put", str(adapter))[1].strip()
    code, _, err = run_cli(capsys, "ipfs", "get", cid, str(tmp_path / "o"), "--max-size", "1M")
    assert code == 1 and "over the limit of 1048576" in err
    assert not (tmp_path / "o").exists()


def test_has_exit_code_says_whether_content_is_present(
    capsys: pytest.CaptureFixture[str], home: Path, adapter: Path
) -> None:
    cid = run_cli(capsys, "ipfs", "put", str(adapter))[1].strip()
    assert run_cli(capsys, "ipfs", "has", cid)[0] == 0
    assert run_cli(capsys, "ipfs", "has", compute_cid(b"absent"))[0] == 1
