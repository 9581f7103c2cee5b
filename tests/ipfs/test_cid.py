"""CID text form: canonical CIDv1 base32 round trip, and clear errors for anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipfs.cid import DAG_PB, RAW, Cid, parse_cid
from ipfs.errors import InvalidCid


@given(codec=st.sampled_from([RAW, DAG_PB]), digest=st.binary(min_size=32, max_size=32))
def test_cid_text_round_trips_and_uses_the_kubo_prefixes(codec: int, digest: bytes) -> None:
    cid = Cid(codec, digest)
    text = str(cid)
    assert parse_cid(text) == cid
    assert text.startswith("bafk" if codec == RAW else "bafy")
    assert text == text.lower()


def test_empty_raw_block_has_the_well_known_cid() -> None:
    assert (
        str(Cid.of_block(RAW, b"")) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    )


def test_cidv0_is_refused_with_a_hint_to_re_add() -> None:
    with pytest.raises(InvalidCid, match="CIDv0") as caught:
        parse_cid("QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51")
    assert caught.value.hint and "ipfs put" in caught.value.hint


@pytest.mark.parametrize("bad", ["", "b", "bafy!!", "bafybei", "x" * 1000, "bafyBEI"])
def test_malformed_strings_raise_invalid_cid_naming_the_value(bad: str) -> None:
    with pytest.raises(InvalidCid) as caught:
        parse_cid(bad)
    shown = repr(bad) if len(bad) <= 80 else repr(bad[:77] + "...")
    assert shown in str(caught.value)


def test_non_string_is_refused() -> None:
    with pytest.raises(InvalidCid, match="bytes"):
        parse_cid(b"bafk")


@given(text=st.text(max_size=80))
def test_parse_cid_never_fails_with_anything_but_invalid_cid(text: str) -> None:
    try:
        parse_cid(text)
    except InvalidCid:
        pass


def test_other_codecs_and_digest_lengths_are_refused() -> None:
    with pytest.raises(InvalidCid, match="codec"):
        Cid(0x71, bytes(32))
    with pytest.raises(InvalidCid, match="32 bytes"):
        Cid(RAW, bytes(31))
