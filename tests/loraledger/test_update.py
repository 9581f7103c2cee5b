"""The update format: exact bytes, digests, and a specific rejection for every malformation."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from safetensors.torch import save as st_save

from loraledger.errors import ConfigError, UpdateRejected
from loraledger.update import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    FORMAT_VERSION,
    METADATA_KEY,
    REASONS,
    Expected,
    GlobalAdapterMetadata,
    LocalMetrics,
    PeftSpec,
    UpdateMetadata,
    build_global_adapter,
    build_update,
    pack_adapter_folder,
    parse_global_adapter,
    parse_update,
    peft_adapter_config,
    peft_spec_from_adapter_config,
    read_metadata_json,
    sha256_hex,
    unpack_global_adapter,
    verify_digest,
)

MODULES = ("q_proj", "v_proj")


def lora_tensors(
    rank: int = 4,
    layers: int = 2,
    width: int = 8,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for layer in range(layers):
        for module in MODULES:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            out[f"{prefix}.lora_A.weight"] = torch.randn(rank, width, generator=generator).to(dtype)
            out[f"{prefix}.lora_B.weight"] = torch.randn(width, rank, generator=generator).to(dtype)
    return out


def metadata(rank: int = 4, **changes: object) -> UpdateMetadata:
    fields: dict[str, object] = {
        "format_version": FORMAT_VERSION,
        "task_id": 7,
        "round": 3,
        "node": "0x00000000000000000000000000000000000000aa",
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "peft": PeftSpec(rank=rank, alpha=2.0 * rank, target_modules=MODULES),
        "num_examples": 12,
        "metrics": LocalMetrics(eval_loss_before=2.5, eval_loss_after=2.1, steps=5),
        "software": {"loraledger": "0.1.0"},
    }
    fields.update(changes)
    return UpdateMetadata.model_validate(fields)


def global_metadata(rank: int = 4) -> GlobalAdapterMetadata:
    spec = PeftSpec(rank=rank, alpha=2.0 * rank, target_modules=MODULES)
    return GlobalAdapterMetadata(
        format_version=FORMAT_VERSION,
        task_id=7,
        round=3,
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        peft=spec,
        adapter_config=peft_adapter_config(spec, "HuggingFaceTB/SmolLM2-135M-Instruct"),
        num_updates=3,
    )


def raw_artifact(tensors: dict[str, torch.Tensor], meta: dict[str, object] | str | None) -> bytes:
    """Bytes crafted around the builder, as a malicious or buggy node could send them."""
    if meta is None:
        return st_save(tensors)
    text = meta if isinstance(meta, str) else json.dumps(meta)
    return st_save(tensors, metadata={METADATA_KEY: text})


def rejected(data: bytes, expected: Expected | None = None, **kwargs: int) -> str:
    with pytest.raises(UpdateRejected) as info:
        parse_update(data, expected, **kwargs)
    assert info.value.reason in REASONS
    return info.value.reason


# --------------------------------------------------------------------------- round trips


@settings(max_examples=40, deadline=None)
@given(
    rank=st.integers(1, 8),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    seed=st.integers(0, 2**31),
)
def test_parsed_update_holds_bit_identical_tensors_and_equal_metadata(
    rank: int, dtype: torch.dtype, seed: int
) -> None:
    tensors = lora_tensors(rank=rank, dtype=dtype, seed=seed)
    data = build_update(tensors, metadata(rank))
    parsed = parse_update(data)
    assert parsed.metadata == metadata(rank)
    assert parsed.digest == sha256_hex(data)
    assert parsed.tensors.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert parsed.tensors[name].dtype == dtype
        assert torch.equal(parsed.tensors[name].view(torch.uint8), tensor.view(torch.uint8))


def test_build_update_is_deterministic_whatever_the_tensor_order() -> None:
    tensors = lora_tensors()
    reordered = dict(reversed(list(tensors.items())))
    assert build_update(tensors, metadata()) == build_update(reordered, metadata())


def test_a_file_carries_only_the_settings_its_method_uses() -> None:
    data = build_update(lora_tensors(), metadata())
    peft = read_metadata_json(data)["peft"]
    assert "num_virtual_tokens" not in peft and peft["rank"] == metadata().peft.rank
    prompt = PeftSpec(method="prompt_tuning", num_virtual_tokens=5).model_dump(mode="json")
    assert prompt == {"method": "prompt_tuning", "num_virtual_tokens": 5}
    # and what is left out comes back as the default, so a spec survives its round trip
    for spec in (metadata().peft, PeftSpec(method="prefix_tuning", num_virtual_tokens=7)):
        assert PeftSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_parsed_tensors_come_in_name_order_every_time() -> None:
    # safetensors' reader returns a file's tensors in a hash map's order, which changes from
    # call to call: a random draw per tensor (the demo's poisoner) or a float sum over modules
    # then differed between two processes reading the same bytes
    data = build_update(lora_tensors(), metadata())
    orders = {tuple(parse_update(data).tensors) for _ in range(20)}
    assert orders == {tuple(sorted(lora_tensors()))}


def test_digest_is_sha256_of_the_exact_bytes_and_accepts_0x_prefix() -> None:
    data = build_update(lora_tensors(), metadata())
    import hashlib

    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert verify_digest(data, "0x" + sha256_hex(data).upper()) == sha256_hex(data)
    assert parse_update(data, Expected(digest=sha256_hex(data))).digest == sha256_hex(data)


def test_update_is_plain_safetensors_readable_without_loraledger(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = tmp_path / "update.safetensors"
    path.write_bytes(build_update(lora_tensors(), metadata()))
    with safe_open(str(path), framework="pt") as handle:
        assert json.loads(handle.metadata()[METADATA_KEY])["kind"] == "update"
        assert set(handle.keys()) == set(lora_tensors())


# --------------------------------------------------------------------------- rejections


def test_bytes_that_are_not_safetensors_are_rejected() -> None:
    assert rejected(b"") == "not_safetensors"
    assert rejected(b"hello world, not an adapter") == "not_safetensors"
    assert rejected(struct.pack("<Q", 10**9) + b"{}") == "not_safetensors"
    assert rejected(struct.pack("<Q", 2) + b"[]") == "not_safetensors"


def test_a_pickled_state_dict_is_rejected_without_unpickling() -> None:
    buffer = io.BytesIO()
    torch.save(lora_tensors(), buffer)
    assert rejected(buffer.getvalue()) == "not_safetensors"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.floats(0.0, 0.999))
def test_any_truncation_of_an_update_is_rejected(cut: float) -> None:
    data = build_update(lora_tensors(), metadata())
    assert rejected(data[: int(len(data) * cut)]) in {"not_safetensors", "bad_metadata"}


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, 10**6), value=st.integers(0, 255))
def test_a_flipped_byte_is_either_harmless_or_a_specific_rejection(
    position: int, value: int
) -> None:
    data = bytearray(build_update(lora_tensors(), metadata()))
    data[position % len(data)] = value
    try:
        parsed = parse_update(bytes(data))
    except UpdateRejected as exc:
        assert exc.reason in REASONS
    else:
        assert all(torch.isfinite(t).all() for t in parsed.tensors.values())


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_never_raise_anything_but_update_rejected(data: bytes) -> None:
    rejected(data)


def test_oversized_update_is_rejected_before_parsing() -> None:
    data = build_update(lora_tensors(), metadata())
    assert rejected(data, max_bytes=len(data) - 1) == "too_large"


def test_safetensors_without_our_metadata_is_bad_metadata() -> None:
    assert rejected(raw_artifact(lora_tensors(), None)) == "bad_metadata"
    assert rejected(raw_artifact(lora_tensors(), "{not json")) == "bad_metadata"
    assert rejected(raw_artifact(lora_tensors(), "[1, 2]")) == "bad_metadata"


def test_metadata_missing_a_field_names_the_field() -> None:
    meta = metadata().model_dump(mode="json")
    del meta["num_examples"]
    with pytest.raises(UpdateRejected, match="num_examples") as info:
        parse_update(raw_artifact(lora_tensors(), meta))
    assert info.value.reason == "bad_metadata"


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_examples", 0), ("task_id", -1), ("node", ""), ("base_model", 5), ("unknown", 1)],
)
def test_metadata_with_invalid_values_is_bad_metadata(field: str, value: object) -> None:
    meta = metadata().model_dump(mode="json")
    meta[field] = value
    assert rejected(raw_artifact(lora_tensors(), meta)) == "bad_metadata"


def test_non_finite_metric_is_bad_metadata() -> None:
    meta = metadata().model_dump(mode="json")
    meta["metrics"]["eval_loss_after"] = float("nan")
    assert rejected(raw_artifact(lora_tensors(), json.dumps(meta))) == "bad_metadata"


def test_other_format_version_is_wrong_version() -> None:
    meta = metadata().model_dump(mode="json")
    meta["format_version"] = FORMAT_VERSION + 1
    assert rejected(raw_artifact(lora_tensors(), meta)) == "wrong_version"


def test_global_adapter_is_not_accepted_as_an_update_and_vice_versa() -> None:
    global_bytes = build_global_adapter(lora_tensors(), global_metadata())
    assert rejected(global_bytes) == "wrong_kind"
    with pytest.raises(UpdateRejected) as info:
        parse_global_adapter(build_update(lora_tensors(), metadata()))
    assert info.value.reason == "wrong_kind"


def test_nan_or_inf_tensors_are_refused_by_builder_and_parser() -> None:
    for bad in (float("nan"), float("inf")):
        tensors = lora_tensors()
        next(iter(tensors.values()))[0, 0] = bad
        with pytest.raises(UpdateRejected) as info:
            build_update(tensors, metadata())
        assert info.value.reason == "non_finite"
        crafted = raw_artifact(tensors, metadata().model_dump_json())
        assert rejected(crafted) == "non_finite"


def test_rank_that_disagrees_with_metadata_is_bad_shape() -> None:
    crafted = raw_artifact(lora_tensors(rank=3), metadata(rank=4).model_dump_json())
    assert rejected(crafted) == "bad_shape"


def test_one_dimensional_tensor_is_bad_shape() -> None:
    tensors = lora_tensors()
    name = next(iter(tensors))
    tensors[name] = tensors[name].flatten()
    assert rejected(raw_artifact(tensors, metadata().model_dump_json())) == "bad_shape"


def test_integer_tensor_is_bad_dtype() -> None:
    tensors = lora_tensors()
    name = next(iter(tensors))
    tensors[name] = tensors[name].to(torch.int64)
    assert rejected(raw_artifact(tensors, metadata().model_dump_json())) == "bad_dtype"


def test_foreign_tensor_names_are_bad_tensor_name() -> None:
    tensors = lora_tensors()
    tensors["model.embed_tokens.weight"] = torch.zeros(4, 8)
    assert rejected(raw_artifact(tensors, metadata().model_dump_json())) == "bad_tensor_name"
    outside = lora_tensors()
    outside["base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"] = torch.zeros(4, 8)
    outside["base_model.model.model.layers.0.mlp.up_proj.lora_B.weight"] = torch.zeros(8, 4)
    assert rejected(raw_artifact(outside, metadata().model_dump_json())) == "bad_tensor_name"


def test_lora_a_without_its_b_is_missing_tensors() -> None:
    tensors = lora_tensors()
    del tensors[next(name for name in tensors if name.endswith("lora_B.weight"))]
    assert rejected(raw_artifact(tensors, metadata().model_dump_json())) == "missing_tensors"


def test_update_without_tensors_is_no_tensors() -> None:
    with pytest.raises(UpdateRejected) as info:
        build_update({}, metadata())
    assert info.value.reason == "no_tensors"
    assert rejected(raw_artifact({}, metadata().model_dump_json())) == "no_tensors"


def test_expectations_reject_wrong_task_round_model_rank_and_digest() -> None:
    data = build_update(lora_tensors(rank=4), metadata(rank=4))
    assert rejected(data, Expected(task_id=8)) == "wrong_task"
    assert rejected(data, Expected(round=4)) == "wrong_round"
    assert rejected(data, Expected(base_model="other/model")) == "wrong_base_model"
    assert rejected(data, Expected(max_rank=2)) == "rank_too_large"
    assert rejected(data, Expected(digest="0" * 64)) == "digest_mismatch"
    assert rejected(data, Expected(digest="not-a-digest")) == "digest_mismatch"
    accepted = Expected(task_id=7, round=3, base_model=metadata().base_model, max_rank=4)
    assert parse_update(data, accepted).metadata.peft.rank == 4


def test_peft_spec_names_the_bad_value() -> None:
    with pytest.raises(ValidationError, match="rank"):
        PeftSpec(rank=0)
    with pytest.raises(ValidationError, match="not a module name"):
        PeftSpec(target_modules=("q_proj; rm -rf",))
    with pytest.raises(ValidationError, match="at least one"):
        PeftSpec(target_modules=())


# --------------------------------------------------------------------------- global adapters


def test_global_adapter_round_trips_through_a_peft_folder(tmp_path: Path) -> None:
    tensors = lora_tensors()
    data = build_global_adapter(tensors, global_metadata())
    adapter = parse_global_adapter(data, Expected(digest=sha256_hex(data), task_id=7))
    folder = unpack_global_adapter(adapter, tmp_path / "adapter")
    config = json.loads((folder / ADAPTER_CONFIG_NAME).read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4
    repacked = pack_adapter_folder(
        folder, task_id=7, round=3, base_model=adapter.metadata.base_model, num_updates=3
    )
    assert repacked == data
    for name, tensor in parse_global_adapter(repacked).tensors.items():
        assert torch.equal(tensor, tensors[name])


def test_global_adapter_whose_config_disagrees_with_its_peft_settings_is_rejected() -> None:
    meta = global_metadata().model_dump(mode="json")
    meta["adapter_config"]["r"] = 16
    with pytest.raises(UpdateRejected) as info:
        parse_global_adapter(raw_artifact(lora_tensors(), meta))
    assert info.value.reason == "bad_metadata"


def test_packing_an_incomplete_adapter_folder_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / ADAPTER_CONFIG_NAME).write_text("{}")
    with pytest.raises(ConfigError, match=ADAPTER_WEIGHTS_NAME):
        pack_adapter_folder(tmp_path, task_id=1, round=1, base_model="m")


def test_adapter_config_with_unsupported_peft_type_is_bad_metadata() -> None:
    with pytest.raises(UpdateRejected) as info:
        peft_spec_from_adapter_config({"peft_type": "IA3"})
    assert info.value.reason == "bad_metadata"
    for method in ("lora", "prompt_tuning", "prefix_tuning"):
        spec = PeftSpec(method=method, num_virtual_tokens=5)
        assert peft_spec_from_adapter_config(peft_adapter_config(spec, "m")).method == method
