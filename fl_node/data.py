"""Training data: the files users already have, the bundled sample, node shards, tokenization.

Every format is read into :class:`Example` (a chat: a tuple of messages, plus an optional
label used for non-IID splits):

* Alpaca-style JSON array or JSONL: ``instruction``, optional ``input``, ``output``;
* chat JSON/JSONL: a ``messages`` list of ``{"role", "content"}`` ending with an assistant turn;
* CSV with ``instruction``/``input``/``output`` columns (or ``prompt``/``response``);
* a local Hugging Face dataset folder made of such files (``data/train-*.jsonl`` etc.).

An optional ``label``/``topic``/``category`` field becomes :attr:`Example.label`.
Every problem with a file raises :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml

from loraledger.errors import ConfigError, TrainingError

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]
Strategy = Literal["iid", "label", "dirichlet"]
IGNORE_INDEX = -100
LABEL_FIELDS = ("label", "topic", "category")
DATA_SUFFIXES = (".jsonl", ".json", ".csv")
FALLBACK_PROMPT = "### Instruction:\n{prompt}\n\n### Response:\n"
"""How a tokenizer without a chat template sees a user turn."""


class DataError(TrainingError):
    """A data file is unreadable, malformed, or yields no usable example."""


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Example:
    """One training conversation; the loss covers the assistant turns only."""

    messages: tuple[Message, ...]
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in self.messages]
        }
        if self.label is not None:
            out["label"] = self.label
        return out


@dataclass(frozen=True)
class NodeData:
    """A node's local data: what it trains on and what it evaluates on (may be empty)."""

    train: tuple[Example, ...]
    eval: tuple[Example, ...] = ()

    def __post_init__(self) -> None:
        if not self.train:
            raise DataError(
                "the training shard is empty", hint="give the node at least one example"
            )


@dataclass(frozen=True)
class Encoded:
    """Token ids of one example; ``labels`` is ``IGNORE_INDEX`` outside assistant replies."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def num_target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


# --------------------------------------------------------------------------- reading files


def load_examples(path: Path) -> list[Example]:
    """Read examples from a JSON, JSONL or CSV file, a folder of such files, or a Hugging Face
    dataset saved with ``save_to_disk``."""
    path = Path(path)
    if path.is_dir():
        examples = _load_folder(path)
    elif not path.is_file():
        raise DataError(f"{path} does not exist")
    else:
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            examples = list(_read_jsonl(path))
        elif suffix == ".json":
            examples = _read_json(path)
        elif suffix == ".csv":
            examples = list(_read_csv(path))
        else:
            raise DataError(
                f"{path}: unknown data format {suffix!r}", hint="use .jsonl, .json or .csv"
            )
    if not examples:
        raise DataError(f"{path} holds no examples", hint="an empty shard cannot be trained on")
    return examples


def _load_folder(folder: Path) -> list[Example]:
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        return _load_hf_dataset(folder)
    candidates = sorted(p for p in folder.rglob("*") if p.suffix.lower() in DATA_SUFFIXES)
    preferred = [p for p in candidates if "train" in p.name.lower()] or candidates
    if not preferred:
        raise DataError(f"{folder} contains no .jsonl, .json or .csv files")
    examples: list[Example] = []
    for file in preferred:
        examples.extend(load_examples(file))
    return examples


def _load_hf_dataset(folder: Path) -> list[Example]:
    """A Hugging Face dataset saved with ``save_to_disk`` (a Dataset, or a DatasetDict whose
    ``train`` split is used), read with the ``datasets`` library."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as exc:
        raise DataError(
            f"{folder}: not a readable Hugging Face dataset ({type(exc).__name__}: {exc})"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise DataError(
                f"{folder}: the dataset has no 'train' split (splits: {sorted(loaded)})"
            )
        loaded = loaded["train"]
    return [example_from_record(row, f"{folder} row {i}") for i, row in enumerate(loaded)]


def _read_jsonl(path: Path) -> Iterator[Example]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{number}: not valid JSON ({exc.msg})",
                    hint="the file may be truncated or not JSON Lines",
                ) from None
            yield example_from_record(record, f"{path}:{number}")


def _read_json(path: Path) -> list[Example]:
    with _open_text(path) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: not valid JSON at line {exc.lineno} ({exc.msg})",
                hint="the file may be truncated; a JSON file holds one array of records",
            ) from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    return [example_from_record(record, f"{path}[{i}]") for i, record in enumerate(data)]


def _read_csv(path: Path) -> Iterator[Example]:
    with _open_text(path, newline="") as handle:
        reader = csv.DictReader(handle, strict=True)
        try:
            for number, row in enumerate(reader, start=2):
                if None in row or any(value is None for value in row.values()):
                    raise DataError(
                        f"{path}:{number}: row has {len(row)} fields, the header has "
                        f"{len(reader.fieldnames or [])}",
                        hint="the file may be truncated or use another delimiter",
                    )
                yield example_from_record(row, f"{path}:{number}")
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


class _open_text:
    """Open a text file turning decoding problems into :class:`DataError`."""

    def __init__(self, path: Path, newline: str | None = None) -> None:
        self.path, self.newline = path, newline

    def __enter__(self) -> Any:
        try:
            self.handle = self.path.open(encoding="utf-8", newline=self.newline)
        except OSError as exc:
            raise DataError(f"{self.path}: cannot open ({exc.strerror})") from None
        return self.handle

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.handle.close()
        if isinstance(exc, UnicodeDecodeError):
            raise DataError(f"{self.path}: not UTF-8 text ({exc.reason})") from None


def example_from_record(record: Any, where: str) -> Example:
    """Turn one Alpaca, prompt/response or chat record into an :class:`Example`."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object, got {type(record).__name__}")
    label = next((str(record[f]) for f in LABEL_FIELDS if record.get(f) not in (None, "")), None)
    if "messages" in record:
        return Example(messages=_messages(record["messages"], where), label=label)
    if "instruction" in record and "output" in record:
        prompt, reply = _text(record, "instruction", where), _text(record, "output", where)
        extra = record.get("input") or ""
        if not isinstance(extra, str):
            raise DataError(f"{where}: 'input' must be text")
        user = f"{prompt}\n\n{extra}" if extra.strip() else prompt
    elif "prompt" in record and "response" in record:
        user, reply = _text(record, "prompt", where), _text(record, "response", where)
    else:
        raise DataError(
            f"{where}: missing columns: found {sorted(record)[:8]}",
            hint="need instruction+output (Alpaca), prompt+response, or messages",
        )
    return Example(messages=(Message("user", user), Message("assistant", reply)), label=label)


def _text(record: dict[str, Any], key: str, where: str) -> str:
    value = record[key]
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: {key!r} must be non-empty text, got {value!r:.40}")
    return value


def _messages(raw: Any, where: str) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: 'messages' must be a non-empty list")
    messages: list[Message] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("role") not in ("system", "user", "assistant"):
            raise DataError(f"{where}: message {i} needs a role of system, user or assistant")
        content = item.get("content")
        if not isinstance(content, str):
            raise DataError(f"{where}: message {i} has no text content")
        messages.append(Message(item["role"], content))
    if messages[-1].role != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's reply")
    return tuple(messages)


def write_jsonl(examples: Iterable[Example], path: Path) -> int:
    """Write examples as chat JSONL (the format :func:`load_examples` reads back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


# --------------------------------------------------------------------------- bundled sample


def sample_topics() -> list[str]:
    """The English topics of ``chatterbot-corpus`` (one natural non-IID shard each)."""
    return sorted(
        p.name.removesuffix(".yml") for p in _corpus_dir().iterdir() if p.name.endswith(".yml")
    )


def sample_examples(topics: Sequence[str] | None = None) -> list[Example]:
    """Q/A examples from ``chatterbot-corpus``, labelled by topic (e.g. ``ai``, ``food``)."""
    available = sample_topics()
    chosen = list(topics) if topics else available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise ConfigError(f"unknown sample topic(s) {unknown}", hint=f"choose from {available}")
    examples: list[Example] = []
    for topic in chosen:
        text = (_corpus_dir() / f"{topic}.yml").read_text(encoding="utf-8")
        for conversation in yaml.safe_load(text).get("conversations") or []:
            turns = [str(t).strip() for t in conversation if str(t).strip()]
            for question, answer in zip(turns[::2], turns[1::2], strict=False):
                examples.append(
                    Example((Message("user", question), Message("assistant", answer)), label=topic)
                )
    return examples


def _corpus_dir() -> Path:
    try:
        return Path(str(files("chatterbot_corpus") / "data" / "english"))
    except ModuleNotFoundError:
        raise ConfigError(
            "the sample data package is not installed", hint="pip install chatterbot-corpus==1.3.3"
        ) from None


# --------------------------------------------------------------------------- splits


def train_eval_split(examples: Sequence[Example], eval_fraction: float, seed: int = 0) -> NodeData:
    """Hold out ``eval_fraction`` of the examples (at least one when there are two or more)."""
    if not 0 <= eval_fraction < 1:
        raise ConfigError(f"eval fraction must be in [0, 1), got {eval_fraction}")
    order = list(examples)
    random.Random(seed).shuffle(order)
    n_eval = (
        0 if eval_fraction == 0 or len(order) < 2 else max(1, round(len(order) * eval_fraction))
    )
    return NodeData(train=tuple(order[n_eval:]), eval=tuple(order[:n_eval]))


def split_shards(
    examples: Sequence[Example],
    num_nodes: int,
    strategy: Strategy = "iid",
    *,
    alpha: float = 0.5,
    seed: int = 0,
) -> list[list[Example]]:
    """Split ``examples`` into ``num_nodes`` non-empty shards.

    ``iid``: shuffled, equal sizes. ``label``: whole labels per node (labels spread over the
    nodes, biggest first onto the smallest shard). ``dirichlet``: per label, proportions
    drawn from Dirichlet(``alpha``) over nodes - small alpha, very skewed shards.
    """
    if num_nodes < 1:
        raise ConfigError(f"number of nodes must be positive, got {num_nodes}")
    if len(examples) < num_nodes:
        raise ConfigError(f"{len(examples)} examples cannot fill {num_nodes} non-empty shards")
    rng = random.Random(seed)
    if strategy == "iid":
        order = list(examples)
        rng.shuffle(order)
        return [order[i::num_nodes] for i in range(num_nodes)]
    groups = _by_label(examples)
    if strategy == "label":
        if len(groups) < num_nodes:
            raise ConfigError(
                f"{len(groups)} labels cannot fill {num_nodes} shards by label",
                hint="use --strategy dirichlet or fewer nodes",
            )
        shards: list[list[Example]] = [[] for _ in range(num_nodes)]
        for _, group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            min(shards, key=len).extend(group)
        return shards
    if strategy == "dirichlet":
        if not (alpha > 0 and math.isfinite(alpha)):
            raise ConfigError(f"alpha must be positive, got {alpha}")
        for _ in range(100):
            shards = _dirichlet_once(groups, num_nodes, alpha, rng)
            if all(shards):
                return shards
        raise ConfigError(
            f"Dirichlet(alpha={alpha}) left a shard empty in 100 draws",
            hint="raise alpha or use fewer nodes",
        )
    raise ConfigError(f"strategy must be iid, label or dirichlet, got {strategy!r}")


def _by_label(examples: Sequence[Example]) -> dict[str, list[Example]]:
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[example.label or ""].append(example)
    return dict(groups)


def _dirichlet_once(
    groups: dict[str, list[Example]], num_nodes: int, alpha: float, rng: random.Random
) -> list[list[Example]]:
    shards: list[list[Example]] = [[] for _ in range(num_nodes)]
    for _, group in sorted(groups.items()):
        members = list(group)
        rng.shuffle(members)
        weights = [rng.gammavariate(alpha, 1.0) for _ in range(num_nodes)]
        total = sum(weights) or 1.0
        cuts = [0]
        acc = 0.0
        for w in weights[:-1]:
            acc += w / total
            cuts.append(round(acc * len(members)))
        cuts.append(len(members))
        for node in range(num_nodes):
            shards[node].extend(members[cuts[node] : cuts[node + 1]])
    for shard in shards:
        rng.shuffle(shard)
    return shards


# --------------------------------------------------------------------------- tokenization


def encode_example(tokenizer: Any, example: Example, max_length: int) -> Encoded:
    """Token ids with labels on the assistant replies only, cut to ``max_length``.

    With a chat template the conversation is rendered turn by turn: each assistant reply
    is the text between the prompt rendered with ``add_generation_prompt`` and the
    conversation rendered through that reply, so the masking is exact. Without one, the
    :data:`FALLBACK_PROMPT` layout is used and the reply ends with the EOS token.
    """
    return encode_all(tokenizer, [example], max_length, drop_empty=False)[0]


def _segments(tokenizer: Any, example: Example) -> list[tuple[str | int, bool]]:
    """The example as (text or special token id, trained?) pieces, in order."""
    out: list[tuple[str | int, bool]] = []
    messages = [{"role": m.role, "content": m.content} for m in example.messages]
    if getattr(tokenizer, "chat_template", None):
        rendered = ""
        for i, message in enumerate(messages):
            if message["role"] == "assistant":
                prompt = tokenizer.apply_chat_template(
                    messages[:i], tokenize=False, add_generation_prompt=True
                )
                out.append((_delta(rendered, prompt), False))
                rendered = prompt
            full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
            out.append((_delta(rendered, full), message["role"] == "assistant"))
            rendered = full
        return out
    if tokenizer.bos_token_id is not None:
        out.append((tokenizer.bos_token_id, False))
    for message in messages:
        if message["role"] == "assistant":
            out.append((message["content"], True))
            if tokenizer.eos_token_id is not None:
                out.append((tokenizer.eos_token_id, True))
        else:
            out.append((FALLBACK_PROMPT.format(prompt=message["content"]), False))
    return out


def _delta(before: str, after: str) -> str:
    if not after.startswith(before):
        raise DataError(
            "the tokenizer's chat template does not render conversations prefix by prefix",
            hint="use a model whose chat template appends turns (e.g. ChatML)",
        )
    return after[len(before) :]


def encode_all(
    tokenizer: Any, examples: Sequence[Example], max_length: int, *, drop_empty: bool = True
) -> list[Encoded]:
    """Encode ``examples`` (one batched tokenizer call), see :func:`encode_example`.

    Examples whose reply is cut off entirely by ``max_length`` are dropped (and logged)
    unless ``drop_empty`` is false.
    """
    if max_length < 2:
        raise ConfigError(f"max length must be at least 2, got {max_length}")
    pieces = [_segments(tokenizer, example) for example in examples]
    texts = [
        piece for segments in pieces for piece, _ in segments if isinstance(piece, str) and piece
    ]
    token_lists = iter(tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
    encoded: list[Encoded] = []
    for segments in pieces:
        ids: list[int] = []
        labels: list[int] = []
        for piece, train in segments:
            if isinstance(piece, int):
                tokens = [piece]
            elif piece:
                tokens = list(next(token_lists))
            else:
                continue
            ids.extend(tokens)
            labels.extend(tokens if train else [IGNORE_INDEX] * len(tokens))
        encoded.append(Encoded(tuple(ids[:max_length]), tuple(labels[:max_length])))
    if not drop_empty:
        return encoded
    kept = [e for e in encoded if e.num_target_tokens > 0]
    if len(kept) < len(encoded):
        logger.warning(
            "%s of %s examples have no reply tokens within max_length=%s and were dropped",
            len(encoded) - len(kept),
            len(encoded),
            max_length,
        )
    return kept
