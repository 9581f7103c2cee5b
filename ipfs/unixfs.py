"""The two block formats of a UnixFS file: dag-pb nodes holding UnixFS ``Data``, and raw leaves.

Only what a file needs is encoded (``Type=File``, ``filesize``, ``blocksizes``), byte for byte
as Kubo and js-ipfs write it: links before data, each link with an empty ``Name``.
Decoding is strict: unknown fields or wire types are an error, never skipped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ipfs.cid import DAG_PB, RAW, SHA2_256, Cid
from ipfs.errors import ContentMismatch, InvalidCid

UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2
_WIRE_VARINT = 0
_WIRE_LEN = 2


@dataclass(frozen=True)
class Link:
    """A link from a file node to a child block."""

    cid: Cid
    tsize: int  # bytes of the child's whole sub-DAG (encoded blocks)
    filesize: int  # bytes of file content under the child


@dataclass(frozen=True)
class FileNode:
    """A decoded dag-pb UnixFS node."""

    kind: int
    links: tuple[Cid, ...]
    tsizes: tuple[int, ...]
    blocksizes: tuple[int, ...]
    filesize: int | None
    data: bytes


def varint(value: int) -> bytes:
    """Unsigned LEB128, as protobuf and multiformats use it."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_file_node(children: Sequence[Link]) -> bytes:
    """Encode an internal file node over ``children`` (no inline data)."""
    filesize = sum(child.filesize for child in children)
    unixfs = bytearray(b"\x08" + varint(UNIXFS_FILE) + b"\x18" + varint(filesize))
    for child in children:
        unixfs += b"\x20" + varint(child.filesize)
    out = bytearray()
    for child in children:
        cid = child.cid.to_bytes()
        link = b"\x0a" + varint(len(cid)) + cid + b"\x12\x00" + b"\x18" + varint(child.tsize)
        out += b"\x12" + varint(len(link)) + link
    out += b"\x0a" + varint(len(unixfs)) + unixfs
    return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ContentMismatch("dag-pb block ends inside a varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ContentMismatch("dag-pb block holds a varint longer than 64 bits")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Split a protobuf message into (field number, value) pairs."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            value, pos = _read_varint(buf, pos)
            out.append((field, value))
        elif wire == _WIRE_LEN:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ContentMismatch("dag-pb block is truncated")
            out.append((field, buf[pos : pos + length]))
            pos += length
        else:
            raise ContentMismatch(
                f"dag-pb block uses protobuf wire type {wire}, which it never holds"
            )
    return out


def cid_from_bytes(raw: bytes) -> Cid:
    """Parse a binary CIDv1 (as found in dag-pb links)."""
    if len(raw) != 36 or raw[0] != 0x01 or raw[2] != SHA2_256 or raw[3] != 32:
        raise InvalidCid("a link holds a CID that is not CIDv1 with sha2-256")
    if raw[1] not in (RAW, DAG_PB):
        raise InvalidCid(f"a link holds a CID with unsupported codec 0x{raw[1]:x}")
    return Cid(raw[1], raw[4:])


def decode_file_node(block: bytes) -> FileNode:
    """Decode a dag-pb block holding UnixFS data; raise ``ContentMismatch`` if malformed."""
    links: list[Cid] = []
    tsizes: list[int] = []
    data: bytes | None = None
    for field, value in _fields(block):
        if field == 2 and isinstance(value, bytes):
            link_cid: Cid | None = None
            tsize = 0
            for lfield, lvalue in _fields(value):
                if lfield == 1 and isinstance(lvalue, bytes):
                    link_cid = cid_from_bytes(lvalue)
                elif lfield == 3 and isinstance(lvalue, int):
                    tsize = lvalue
                elif lfield != 2:
                    raise ContentMismatch(f"dag-pb link has unexpected field {lfield}")
            if link_cid is None:
                raise ContentMismatch("dag-pb link without a hash")
            links.append(link_cid)
            tsizes.append(tsize)
        elif field == 1 and isinstance(value, bytes):
            data = value
        else:
            raise ContentMismatch(f"dag-pb node has unexpected field {field}")
    if data is None:
        raise ContentMismatch("dag-pb node carries no UnixFS data")
    kind: int | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    inline = b""
    for field, value in _fields(data):
        if field == 1 and isinstance(value, int):
            kind = value
        elif field == 2 and isinstance(value, bytes):
            inline = value
        elif field == 3 and isinstance(value, int):
            filesize = value
        elif field == 4 and isinstance(value, int):
            blocksizes.append(value)
        elif field == 4 and isinstance(value, bytes):  # packed encoding
            pos = 0
            while pos < len(value):
                size, pos = _read_varint(value, pos)
                blocksizes.append(size)
        elif field in (5, 6, 7, 8):  # hash type, fanout, mode, mtime: not part of file bytes
            continue
        else:
            raise ContentMismatch(f"UnixFS data has unexpected field {field}")
    if kind is None:
        raise ContentMismatch("UnixFS data has no type")
    return FileNode(kind, tuple(links), tuple(tsizes), tuple(blocksizes), filesize, inline)
