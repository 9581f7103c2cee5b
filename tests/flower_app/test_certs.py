"""``loraledger flower certs``: a CA, a SuperLink certificate a real TLS client accepts,
SuperNode keys."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

from flower_app.certs import make_federation_files, make_node_key, make_tls_files
from loraledger.errors import ConfigError
from tests.support.cli import run_cli


def _handshake(files_dir: Path, server_name: str) -> str:
    """Serve TLS with the SuperLink's certificate on loopback; connect verifying against the CA."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(files_dir / "server.pem", files_dir / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(files_dir / "ca.crt"))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            data = tls.recv(2).decode()
        thread.join(timeout=10)
    return data


def test_the_superlink_certificate_is_signed_by_the_ca_for_every_host(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, ["superlink.example", "10.0.0.7", "127.0.0.1"])
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["superlink.example"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.7", "127.0.0.1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for key in (files.ca_key, files.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600  # private keys are owner-only
    assert _handshake(tmp_path, "127.0.0.1") == "ok"  # a verifying TLS client accepts it


def test_a_client_refuses_a_host_the_certificate_does_not_name(tmp_path: Path) -> None:
    make_tls_files(tmp_path, ["127.0.0.1"])
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tmp_path, "localhost")


def test_key_material_is_never_overwritten_and_bad_settings_are_refused(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    before = files.ca_key.read_bytes()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        make_tls_files(tmp_path)
    assert files.ca_key.read_bytes() == before
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "server.key").write_text("someone's key")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        make_tls_files(tmp_path / "partial")
    assert [p.name for p in (tmp_path / "partial").iterdir()] == ["server.key"]  # nothing half-made
    with pytest.raises(ConfigError, match="at least one host"):
        make_tls_files(tmp_path / "other", [" ", ""])
    with pytest.raises(ConfigError, match="at least a day"):
        make_tls_files(tmp_path / "other", days=0)
    fresh = tmp_path / "fresh"
    with pytest.raises(ConfigError, match="repeat"):
        make_federation_files(fresh, ["127.0.0.1"], ["a", "a"])
    with pytest.raises(ConfigError, match="plain file name"):
        make_federation_files(fresh, ["127.0.0.1"], ["a", "../b"])
    assert not fresh.exists()  # refused before the CA was written
    for name in ("", "../escape", ".hidden"):
        with pytest.raises(ConfigError, match="plain file name"):
            make_node_key(tmp_path, name)


def test_supernode_keys_are_p384_openssh_pairs(tmp_path: Path) -> None:
    key = make_node_key(tmp_path, "node-0")
    public = load_ssh_public_key(key.public_key.read_bytes())
    private = load_ssh_private_key(key.private_key.read_bytes(), password=None)
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp384r1"
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.public_key().public_numbers() == public.public_numbers()
    assert key.public_key.read_text().startswith("ecdsa-sha2-nistp384 ")
    assert stat.S_IMODE(key.private_key.stat().st_mode) == 0o600


def test_the_certs_command_adds_node_keys_to_an_existing_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    folder = tmp_path / "certs"
    code, stdout, stderr = run_cli(
        capsys, "flower", "certs", "--out", str(folder), "--node-keys", "node-0"
    )
    text = stdout + stderr
    assert code == 0, text
    assert f"--ssl-certfile {folder / 'server.pem'}" in text and "flower register" in text
    ca = (folder / "ca.crt").read_bytes()
    code, stdout, stderr = run_cli(
        capsys, "flower", "certs", "--out", str(folder), "--node-keys", "node-1"
    )
    text = stdout + stderr
    assert code == 0, text
    assert (folder / "ca.crt").read_bytes() == ca  # same CA, one more SuperNode
    assert sorted(p.name for p in (folder / "nodes").iterdir()) == [
        "node-0",
        "node-0.pub",
        "node-1",
        "node-1.pub",
    ]
    code, stdout, stderr = run_cli(capsys, "flower", "certs", "--out", str(folder))
    text = stdout + stderr
    assert code == 1 and "refusing to overwrite" in text and "Traceback" not in text
    code, stdout, stderr = run_cli(
        capsys, "flower", "certs", "--out", str(folder), "--node-keys", "node-2,node-0"
    )
    text = stdout + stderr
    assert code == 1 and "refusing to overwrite" in text and "Traceback" not in text
    assert not (folder / "nodes" / "node-2").exists()  # refused before writing any key
