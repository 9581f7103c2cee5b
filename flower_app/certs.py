"""Key material for a Flower federation with TLS and SuperNode authentication.

Flower's own examples make these with ``openssl`` and ``ssh-keygen`` shell scripts; here the
same files come from :mod:`cryptography` so one command works anywhere:

- a self-signed certificate authority (``ca.crt``, ``ca.key``) and a SuperLink server
  certificate it signs (``server.pem``, ``server.key``) for the names and addresses the
  SuperNodes dial (``--ssl-ca-certfile``, ``--ssl-certfile``, ``--ssl-keyfile`` of the
  SuperLink; ``--root-certificates`` of SuperNodes and ``flwr run``);
- per SuperNode an ECDSA P-384 key pair in OpenSSH format (``<name>``, ``<name>.pub``): the
  private key stays on the SuperNode (``--auth-supernode-private-key``), the public key is
  registered with ``flwr supernode register`` on a SuperLink started with
  ``--enable-supernode-auth``.

A production federation uses certificates from its own CA; these are for a federation whose
operator is its CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from loraledger.errors import ConfigError

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
VALID_DAYS = 365
TLS_FILE_NAMES = ("ca.crt", "ca.key", "server.pem", "server.key")


@dataclass(frozen=True)
class TlsFiles:
    """Where :func:`make_tls_files` wrote the CA and the SuperLink's certificate."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class NodeKey:
    """A SuperNode's authentication key pair (OpenSSH format)."""

    private_key: Path
    public_key: Path


def _write(path: Path, data: bytes, *, private: bool) -> Path:
    """Write ``data`` to ``path`` (owner-only for private keys), refusing to overwrite."""
    if path.exists():
        raise ConfigError(
            f"{path} exists; refusing to overwrite key material",
            hint="choose an empty folder or remove the old files",
        )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def _refuse_existing(paths: Sequence[Path]) -> None:
    """Refuse before writing anything, so a refused call leaves no partial set of files."""
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise ConfigError(
            f"{', '.join(existing)} exist(s); refusing to overwrite key material",
            hint="choose an empty folder or remove the old files",
        )


def _subject_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if not names:
        raise ConfigError("the SuperLink certificate needs at least one host name or address")
    return names


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def make_tls_files(
    out: Path, hosts: Sequence[str] = DEFAULT_HOSTS, *, days: int = VALID_DAYS
) -> TlsFiles:
    """A CA and a SuperLink certificate for ``hosts`` (DNS names or IP addresses) in ``out``."""
    if days < 1:
        raise ConfigError(f"certificates must be valid for at least a day, got {days}")
    hosts = [h.strip() for h in hosts if h.strip()]
    names = _subject_names(hosts)
    _refuse_existing([out / n for n in TLS_FILE_NAMES])
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days))

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LoRA Ledger federation CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )

    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    return TlsFiles(
        ca_cert=_write(out / "ca.crt", ca_cert.public_bytes(pem), private=False),
        ca_key=_write(out / "ca.key", _pem_key(ca_key), private=True),
        server_cert=_write(out / "server.pem", server_cert.public_bytes(pem), private=False),
        server_key=_write(out / "server.key", _pem_key(server_key), private=True),
    )


def node_key_paths(out: Path, name: str) -> tuple[Path, Path]:
    """Where :func:`make_node_key` writes ``name``'s private and public key."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"a key name must be a plain file name, got {name!r}")
    return out / name, out / f"{name}.pub"


def make_federation_files(
    out: Path, hosts: Sequence[str], node_names: Sequence[str], *, days: int = VALID_DAYS
) -> tuple[TlsFiles | None, list[NodeKey]]:
    """``flower certs``: the CA and SuperLink certificate in ``out`` plus node key pairs in
    ``out/nodes``; with node names and a CA already in ``out``, only the keys (same CA).

    All or nothing: bad, repeated or existing names and existing files are refused before
    anything is written.
    """
    if len(set(node_names)) < len(node_names):
        raise ConfigError(f"node key names repeat: {', '.join(node_names)}")
    key_paths = [path for name in node_names for path in node_key_paths(out / "nodes", name)]
    adding_keys = bool(node_names) and (out / "ca.crt").exists()
    _refuse_existing(key_paths + ([] if adding_keys else [out / n for n in TLS_FILE_NAMES]))
    files = None if adding_keys else make_tls_files(out, hosts, days=days)
    return files, [make_node_key(out / "nodes", name) for name in node_names]


def make_node_key(out: Path, name: str) -> NodeKey:
    """An ECDSA P-384 key pair for SuperNode authentication: ``out/name`` and ``out/name.pub``."""
    _refuse_existing(node_key_paths(out, name))
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return NodeKey(
        private_key=_write(out / name, private, private=True),
        public_key=_write(out / f"{name}.pub", public + b"\n", private=False),
    )
