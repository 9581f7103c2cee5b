"""dag-pb / UnixFS file nodes: encoding matches js-ipfs byte for byte; decoding is strict."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from ipfs.cid import DAG_PB, RAW, Cid
from ipfs.errors import ContentMismatch, InvalidCid
from ipfs.unixfs import UNIXFS_FILE, Link, decode_file_node, encode_file_node, varint

# The root block js-ipfs 0.66.1 wrote for a 262145-byte file (two raw leaves), as `block get`
# showed.
_LEAF_1 = Cid(
    RAW, bytes.fromhex("0c2961bbbd8ca2d45b88480ae85a046ed5c3171c215868eaa931d0e939fff10a")
)
_JS_IPFS_PREFIX = bytes.fromhex(
    "122c0a24015512200c2961bbbd8ca2d45b88480ae85a046ed5c3171c215868eaa931d0e939fff10a120018808010"
)


def test_encoding_matches_the_layout_js_ipfs_writes() -> None:
    leaf_2 = Cid(RAW, hashlib.sha256(b"?").digest())
    block = encode_file_node([Link(_LEAF_1, 262144, 262144), Link(leaf_2, 1, 1)])
    assert block.startswith(_JS_IPFS_PREFIX)
    assert block.endswith(bytes.fromhex("0a0c080218818010208080102001"))


links = st.lists(
    st.builds(
        Link,
        cid=st.builds(Cid, st.sampled_from([RAW, DAG_PB]), st.binary(min_size=32, max_size=32)),
        tsize=st.integers(0, 2**40),
        filesize=st.integers(0, 2**40),
    ),
    min_size=1,
    max_size=174,
)


@given(children=links)
def test_decode_inverts_encode(children: list[Link]) -> None:
    node = decode_file_node(encode_file_node(children))
    assert node.kind == UNIXFS_FILE
    assert node.links == tuple(c.cid for c in children)
    assert node.tsizes == tuple(c.tsize for c in children)
    assert node.blocksizes == tuple(c.filesize for c in children)
    assert node.filesize == sum(c.filesize for c in children)


@given(junk=st.binary(max_size=300))
def test_decoding_junk_fails_only_with_storage_errors(junk: bytes) -> None:
    try:
        decode_file_node(junk)
    except (ContentMismatch, InvalidCid):
        pass


@given(value=st.integers(0, 2**64 - 1))
def test_varint_is_minimal_leb128(value: int) -> None:
    encoded = varint(value)
    assert sum(b << (7 * i) for i, b in enumerate(x & 0x7F for x in encoded)) == value
    assert all(b & 0x80 for b in encoded[:-1]) and not encoded[-1] & 0x80
