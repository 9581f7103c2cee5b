"""Crafted containers: every input parses or is an UpdateRejected with a format code, never
another exception and never a crash; a task's caps come from its start adapter."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loraledger.errors import UpdateRejected
from loraledger.update import (
    FORMAT_VERSION,
    METADATA_BUDGET,
    METADATA_KEY,
    REASONS,
    Expected,
    GlobalAdapterMetadata,
    build_global_adapter,
    build_update,
    check_structure,
    header_budget,
    load_json_limited,
    parse_global_adapter,
    parse_update,
    peft_adapter_config,
    update_budget,
)
from tests.loraledger.test_update import lora_tensors, metadata

REPO = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(data: bytes, expected: Expected | None = None) -> str | None:
    """``None`` when the bytes parse, else the rejection's code (which must be a format code)."""
    try:
        parse_update(data, expected)
    except UpdateRejected as exc:
        assert exc.reason in REASONS
        return exc.reason
    return None


def container(header: dict[str, Any] | str | bytes, body: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else str(header).encode()
    if isinstance(header, dict):
        raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def valid_metadata() -> str:
    return json.dumps(metadata().model_dump(mode="json"))


def nest(levels: int, open_: str = "[", close: str = "]") -> str:
    return open_ * levels + close * levels


# --------------------------------------------------------------------------- JSON limits


@pytest.mark.parametrize("brackets", [("[", "]"), ('{"a":', "}")])
def test_nesting_of_100000_levels_is_rejected_before_json_parses_it(
    brackets: tuple[str, str],
) -> None:
    text = nest(100_000, *brackets)
    with pytest.raises(UpdateRejected, match="deeper than 16 levels") as info:
        load_json_limited(text, max_bytes=len(text) * 7, max_depth=16)
    assert info.value.reason == "bad_metadata"


def test_json_limits_on_size_duplicates_utf8_strings_and_huge_numbers() -> None:
    def reason(text: str | bytes, **kw: int) -> str:
        with pytest.raises(UpdateRejected) as info:
            load_json_limited(text, max_bytes=kw.get("max_bytes", 1 << 20), max_depth=4)
        return info.value.reason

    assert load_json_limited('{"a":[1,{"b":"[[[["}]}', max_bytes=100, max_depth=3) == {
        "a": [1, {"b": "[[[["}]
    }
    assert reason("[1]" * 10, max_bytes=5) == "too_large"
    assert reason('{"a":1,"a":2}') == "bad_metadata"
    assert reason(b'{"a":"\xff"}') == "bad_metadata"
    assert reason('{"a":"unterminated [[[[[') == "bad_metadata"
    assert reason("]]][[[") == "bad_metadata"
    assert reason("1" * 5000) == "bad_metadata"  # over Python's int digit limit
    assert load_json_limited('"\\"[[[[["', max_bytes=100, max_depth=1) == '"[[[[['


def test_deep_nesting_under_a_recursion_limit_of_100000_is_rejected_not_a_crash() -> None:
    """The reported crash: ``py_ecc`` raises the recursion limit at import, then json.loads
    of deep nesting overflowed the C stack (SIGSEGV). In a subprocess, so a regression fails
    this test instead of killing the test run."""
    script = f"""
import sys, struct
import py_ecc  # noqa: F401
assert sys.getrecursionlimit() >= 100_000
from safetensors.torch import save
import torch
from loraledger.update import parse_update, METADATA_KEY
from loraledger.errors import UpdateRejected
deep = "[" * 200_000 + "]" * 200_000
header = ('{{"x":' + deep + "}}").encode()
for data in (save({{"t": torch.zeros(2, 2)}}, metadata={{{METADATA_KEY!r}: deep}}),
             struct.pack("<Q", len(header)) + header):
    try:
        parse_update(data)
    except UpdateRejected as exc:
        print(exc.reason)
"""
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["bad_metadata", "not_safetensors"]


# --------------------------------------------------------------------------- crafted headers

DTYPES = st.sampled_from(["F32", "F16", "BF16", "F64", "I8", "U8", "BOOL", "f32", "", 3, None])
COUNTS = st.one_of(
    st.integers(0, 64),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63, 2**64 - 1, 2**64, 10**30, True]),
)
ENTRY = st.fixed_dictionaries(
    {
        "dtype": DTYPES,
        "shape": st.one_of(st.lists(COUNTS, max_size=4), st.just("2x2"), st.none()),
        "data_offsets": st.one_of(st.lists(COUNTS, min_size=0, max_size=3), st.none()),
    }
)
METADATA = st.one_of(
    st.just(valid_metadata()),
    st.sampled_from(["{}", "[]", "null", "{", nest(5000), '{"a":1,"a":1}', "\ud800"]),
    st.text(max_size=40),
)


@FUZZ
@given(
    entries=st.dictionaries(st.text(max_size=12), ENTRY, max_size=4),
    meta=st.one_of(st.none(), METADATA, st.integers()),
    body=st.binary(max_size=96),
)
def test_crafted_headers_parse_or_are_a_specific_rejection(
    entries: dict[str, Any], meta: object, body: bytes
) -> None:
    header: dict[str, Any] = dict(entries)
    if meta is not None:
        header["__metadata__"] = {METADATA_KEY: meta}
    try:
        raw = json.dumps(header).encode("utf-8", "surrogatepass")
    except UnicodeEncodeError:
        return
    outcome(container(raw, body))


@FUZZ
@given(
    shape=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=6),
    begin=st.integers(0, 2**64 - 1),
    end=st.integers(0, 2**64 - 1),
)
def test_huge_shapes_and_offsets_are_not_safetensors(
    shape: list[int], begin: int, end: int
) -> None:
    header = {
        "t": {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]},
        "__metadata__": {METADATA_KEY: valid_metadata()},
    }
    assert outcome(container(header, b"\0" * 16)) in {"not_safetensors", None}


def test_overlapping_gapped_and_out_of_range_offsets_and_size_mismatches() -> None:
    meta = {METADATA_KEY: valid_metadata()}
    a = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    b = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"

    def two(offsets_a: list[int], offsets_b: list[int], body: int = 32, dtype: str = "F32") -> str:
        header = {
            a: {"dtype": dtype, "shape": [1, 4], "data_offsets": offsets_a},
            b: {"dtype": "F32", "shape": [4, 1], "data_offsets": offsets_b},
            "__metadata__": meta,
        }
        reason = outcome(container(header, b"\0" * body))
        assert reason is not None
        return reason

    assert two([0, 16], [8, 24]) == "not_safetensors"  # overlap
    assert two([0, 16], [20, 36], body=36) == "not_safetensors"  # gap
    assert two([0, 16], [16, 32], body=31) == "not_safetensors"  # past the end
    assert two([0, 16], [16, 32], body=40) == "not_safetensors"  # trailing bytes
    assert two([0, 8], [8, 24], dtype="F32") == "not_safetensors"  # element size
    assert two([0, 16], [16, 32], dtype="F64") == "bad_dtype"
    assert two([0, 16], [16, 32], dtype="XYZ") == "bad_dtype"
    assert two([0, 16], [16, 32]) not in {"not_safetensors", "bad_dtype"}  # well formed


def test_duplicate_keys_non_utf8_and_extra_fields_are_rejected() -> None:
    good = build_update(lora_tensors(), metadata())
    (size,) = struct.unpack("<Q", good[:8])
    header = good[8 : 8 + size].decode()
    name = next(k for k in json.loads(header) if k != "__metadata__")
    twice = header.replace(
        "{", "{" + json.dumps(name) + ":" + json.dumps(json.loads(header)[name]) + ",", 1
    )
    assert outcome(container(twice.encode(), good[8 + size :])) == "not_safetensors"
    assert outcome(container(b'{"a":"\xff\xfe"}')) == "not_safetensors"
    meta = json.loads(json.loads(header)["__metadata__"][METADATA_KEY])
    doubled = '{"node":"0x0",' + json.dumps(meta, sort_keys=True)[1:]
    assert outcome(build_raw(doubled)) == "bad_metadata"
    extra = json.loads(header)
    extra[name]["more"] = 1
    assert outcome(container(json.dumps(extra).encode(), good[8 + size :])) == "not_safetensors"


def build_raw(meta: str) -> bytes:
    from safetensors.torch import save

    return save(lora_tensors(), metadata={METADATA_KEY: meta})


def test_every_truncation_of_an_update_is_a_specific_rejection() -> None:
    data = build_update(lora_tensors(layers=1, width=2), metadata())
    for cut in range(len(data)):
        assert outcome(data[:cut]) in {"not_safetensors", "bad_metadata"}, cut
    assert outcome(data) is None


# --------------------------------------------------------------------------- caps


def start_adapter(rank: int = 4) -> Any:
    spec = metadata(rank).peft
    meta = GlobalAdapterMetadata(
        format_version=FORMAT_VERSION,
        task_id=7,
        round=2,
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        peft=spec,
        adapter_config=peft_adapter_config(spec, "HuggingFaceTB/SmolLM2-135M-Instruct"),
    )
    return parse_global_adapter(build_global_adapter(lora_tensors(rank=rank), meta))


def test_caps_are_derived_from_the_start_adapter_and_fit_a_real_update() -> None:
    start = start_adapter()
    names = sum(len(name) for name in start.tensors)
    assert header_budget(start) == 2 * (names + 136 * len(start.tensors)) + METADATA_BUDGET + 8
    assert header_budget(start) < 80 << 10  # kilobytes, not the old 100 MiB
    # 8 tensors of width 8 (A: [r, 8], B: [8, r]) at max_rank 16, 4 bytes per element
    assert update_budget(start, 16) == 8 + header_budget(start) + 8 * 8 * 16 * 4
    expected = Expected(max_rank=16).capped_for(start)
    assert expected.max_header_bytes == header_budget(start)
    assert expected.max_bytes == update_budget(start, 16)
    assert Expected(max_rank=16, max_bytes=100).capped_for(start).max_bytes == 100
    real = build_update(lora_tensors(rank=16), metadata(16))
    assert parse_update(real, expected).metadata.peft.rank == 16


def test_an_update_over_the_tasks_caps_is_too_large() -> None:
    start = start_adapter()
    expected = Expected(max_rank=4).capped_for(start)
    big_rank = build_update(lora_tensors(rank=64, width=256), metadata(64))
    assert outcome(big_rank, expected) == "too_large"
    padded = metadata(software={f"pkg{i}": "x" * 100 for i in range(800)})
    assert outcome(build_update(lora_tensors(), padded), expected) == "too_large"
    assert outcome(build_update(lora_tensors(), padded)) is None  # no task caps: it parses


@settings(max_examples=30, deadline=None)
@given(cut=st.integers(0, 200))
def test_structure_check_agrees_with_the_full_parse(cut: int) -> None:
    data = build_update(lora_tensors(layers=1), metadata())[: cut * 8]
    try:
        check_structure(data)
    except UpdateRejected as exc:
        assert outcome(data) == exc.reason
    else:
        assert outcome(data) in {None, "bad_metadata", "bad_shape", "no_tensors"}
