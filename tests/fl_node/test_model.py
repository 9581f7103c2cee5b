"""Loading base models through from_pretrained: ids, dtype/device, quantization, SmolLM2."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from fl_node.model import (
    MODEL_ID_FILE,
    SMOLLM2_ID,
    ModelConfig,
    ensure_smollm2,
    ensure_tiny,
    load_base_model,
    resolve_device,
    resolve_dtype,
)
from loraledger.errors import ConfigError
from tests.support.chain import free_port


def test_tiny_model_loads_from_its_folder_with_recorded_id_and_chat_template(
    tiny_dir: Path,
) -> None:
    loaded = load_base_model(ModelConfig(source=str(tiny_dir)))
    assert loaded.model_id == "loraledger/tiny-llama"
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.float32
    assert loaded.tokenizer.chat_template and loaded.tokenizer.pad_token_id is not None
    ids = loaded.tokenizer("What is AI?", return_tensors="pt")
    assert loaded.model(**ids).logits.shape[-1] == len(loaded.tokenizer)


def test_model_id_can_be_overridden_and_defaults_to_folder_name(
    tiny_dir: Path, tmp_path: Path
) -> None:
    assert load_base_model(ModelConfig(source=str(tiny_dir), model_id="org/x")).model_id == "org/x"
    copy = tmp_path / "my-model"
    copy.mkdir()
    for file in tiny_dir.iterdir():
        if file.name != MODEL_ID_FILE:
            (copy / file.name).write_bytes(file.read_bytes())
    assert load_base_model(ModelConfig(source=str(copy))).model_id == "my-model"


def test_sixteen_bit_loading_gives_bf16_weights(tiny_dir: Path) -> None:
    loaded = load_base_model(ModelConfig(source=str(tiny_dir), dtype="bfloat16"))
    assert loaded.dtype == torch.bfloat16
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize(
    ("quantization", "layer"), [("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")]
)
def test_bitsandbytes_loading_replaces_linear_layers(
    tiny_dir: Path, quantization: str, layer: str
) -> None:
    loaded = load_base_model(ModelConfig(source=str(tiny_dir), quantization=quantization))
    assert loaded.quantized
    assert type(loaded.model.model.layers[0].self_attn.q_proj).__name__ == layer


def test_auto_picks_cpu_and_fp32_without_cuda() -> None:
    expected = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto") == expected
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"source": " "}, "must not be empty"),
        ({"quantization": "3bit"}, "quantization must be"),
        ({"dtype": "float8"}, "dtype must be"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_invalid_model_settings_name_the_bad_value(changes: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**changes)


def test_asking_for_cuda_without_cuda_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    with pytest.raises(ConfigError, match="no CUDA"):
        ModelConfig(device="cuda")


def test_missing_local_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_base_model(ModelConfig(source=str(tmp_path / "absent")))


def test_folder_that_is_not_a_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load model"):
        load_base_model(ModelConfig(source=str(tmp_path)))


@pytest.mark.slow
def test_smollm2_is_converted_once_then_loads_from_its_safetensors_cache(smollm2_dir: Path) -> None:
    assert (smollm2_dir / "model.safetensors").is_file()
    began = time.perf_counter()
    assert ensure_smollm2(smollm2_dir.parent) == smollm2_dir
    assert time.perf_counter() - began < 1.0  # cached: no second conversion
    loaded = load_base_model(ModelConfig(source=str(smollm2_dir)))
    assert loaded.model_id == SMOLLM2_ID
    assert sum(p.numel() for p in loaded.model.parameters()) == 134_515_008
    prompt = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = loaded.model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = loaded.tokenizer.decode(out[0, prompt["input_ids"].shape[1] :])
    assert "Paris" in answer


def test_a_hub_id_while_the_hub_is_unreachable_fails_at_once_with_the_offline_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody listens
    with pytest.raises(ConfigError, match="the hub is not reachable and the model is not") as info:
        load_base_model(ModelConfig(source="someorg/no-such-model"))
    assert info.value.hint is not None and "--model tiny" in info.value.hint


def test_model_tiny_is_built_once_and_the_same_on_every_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    loaded = load_base_model(ModelConfig(source="tiny"))
    assert loaded.model_id == "loraledger/tiny-llama"
    folder = ensure_tiny()
    assert folder == tmp_path / "home" / "models" / "tiny-llama"
    built_at = (folder / "config.json").stat().st_mtime_ns
    assert ensure_tiny() == folder and (folder / "config.json").stat().st_mtime_ns == built_at
    # another machine (another home) builds the same weights
    elsewhere = load_base_model(ModelConfig(source=str(ensure_tiny(tmp_path / "other"))))
    mine, theirs = loaded.model.state_dict(), elsewhere.model.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
