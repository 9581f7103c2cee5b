"""CIDs as this project makes them: CIDv1, sha2-256, ``raw`` leaves or ``dag-pb`` nodes, base32.

The canonical text form is the one Kubo prints for CIDv1 (``b`` + lower-case base32, no
padding), so two CIDs are equal exactly when their strings are equal.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from ipfs.errors import InvalidCid

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
_DIGEST_LEN = 32
_CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb"}


@dataclass(frozen=True)
class Cid:
    """A parsed CIDv1 with a sha2-256 multihash."""

    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.codec not in _CODEC_NAMES:
            raise InvalidCid(
                f"unsupported CID codec 0x{self.codec:x}: only raw and dag-pb are used"
            )
        if len(self.digest) != _DIGEST_LEN:
            raise InvalidCid(f"a sha2-256 digest has 32 bytes, got {len(self.digest)}")

    @classmethod
    def of_block(cls, codec: int, block: bytes | memoryview) -> Cid:
        """The CID of a block of the given codec."""
        return cls(codec, hashlib.sha256(block).digest())

    def to_bytes(self) -> bytes:
        """Binary form: version, codec, multihash (all codes fit in one varint byte)."""
        return bytes((0x01, self.codec, SHA2_256, _DIGEST_LEN)) + self.digest

    def __str__(self) -> str:
        return "b" + base64.b32encode(self.to_bytes()).decode("ascii").lower().rstrip("=")

    @property
    def codec_name(self) -> str:
        return _CODEC_NAMES[self.codec]

    def matches(self, block: bytes | memoryview) -> bool:
        """Whether ``block`` hashes to this CID."""
        return hashlib.sha256(block).digest() == self.digest


def parse_cid(text: str) -> Cid:
    """Parse a CID string; raise ``InvalidCid`` naming what is wrong with it."""
    if not isinstance(text, str):
        raise InvalidCid(f"a CID is a string, got {type(text).__name__}")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if text.startswith("Qm") and len(text) == 46:
        raise InvalidCid(
            f"{shown!r} is a CIDv0; this project stores CIDv1 (raw leaves, 256 KiB chunks)",
            hint="re-add the content with `loraledger ipfs put` to get its CIDv1",
        )

    def bad(reason: str) -> InvalidCid:
        return InvalidCid(f"{shown!r} is not a valid CID: {reason}")

    if not text.startswith("b") or len(text) < 2:
        raise bad("expected base32 CIDv1 text starting with 'bafy' or 'bafk'")
    body = text[1:]
    if body != body.lower():
        raise bad("not in canonical lower-case base32")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except ValueError:
        raise bad("not base32") from None
    if len(raw) != 4 + _DIGEST_LEN or raw[0] != 0x01:
        raise bad("not a CIDv1 with a 32-byte multihash")
    if raw[2] != SHA2_256 or raw[3] != _DIGEST_LEN:
        raise bad("its hash is not sha2-256")
    if raw[1] not in _CODEC_NAMES:
        raise bad(f"codec 0x{raw[1]:x} is neither raw nor dag-pb")
    cid = Cid(raw[1], raw[4:])
    if str(cid) != text:  # non-canonical trailing bits
        raise bad("not canonical base32")
    return cid
