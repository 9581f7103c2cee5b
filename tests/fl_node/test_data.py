"""Reading users' data files, the bundled sample, node shards, and reply-only loss masks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from fl_node.data import (
    IGNORE_INDEX,
    DataError,
    Example,
    Message,
    NodeData,
    encode_all,
    encode_example,
    load_examples,
    sample_examples,
    sample_topics,
    split_shards,
    train_eval_split,
    write_jsonl,
)
from loraledger.errors import ConfigError

ALPACA = [
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "label": "maths"},
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- formats


def test_alpaca_json_and_jsonl_give_the_same_examples(tmp_path: Path) -> None:
    from_json = load_examples(write(tmp_path / "a.json", json.dumps(ALPACA)))
    from_jsonl = load_examples(
        write(tmp_path / "a.jsonl", "\n".join(map(json.dumps, ALPACA)) + "\n\n")
    )
    assert from_json == from_jsonl
    assert from_json[1].messages == (
        Message("user", "Add the numbers.\n\n2 and 3"),
        Message("assistant", "5"),
    )
    assert [e.label for e in from_json] == [None, "maths"]


def test_chat_messages_keep_system_and_multi_turn(tmp_path: Path) -> None:
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Bye!"},
        ],
        "topic": "greetings",
    }
    [example] = load_examples(write(tmp_path / "c.jsonl", json.dumps(record)))
    assert [m.role for m in example.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert example.label == "greetings"


def test_csv_with_alpaca_or_prompt_response_columns(tmp_path: Path) -> None:
    alpaca = load_examples(
        write(tmp_path / "a.csv", 'instruction,input,output\n"Hi, you",,Hello\n')
    )
    assert alpaca[0].messages[0].content == "Hi, you"
    pr = load_examples(write(tmp_path / "p.csv", "prompt,response,category\nQ,A,x\n"))
    assert pr == [Example((Message("user", "Q"), Message("assistant", "A")), label="x")]


def test_dataset_folder_reads_its_train_files(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "train-00000.jsonl", json.dumps(ALPACA[0]) + "\n")
    write(tmp_path / "data" / "train-00001.jsonl", json.dumps(ALPACA[1]) + "\n")
    write(tmp_path / "data" / "test-00000.jsonl", json.dumps(ALPACA[0]) + "\n")
    assert len(load_examples(tmp_path)) == 2


def test_a_local_hugging_face_dataset_reads_like_the_same_rows_in_jsonl(tmp_path: Path) -> None:
    import datasets

    rows = [{"label": "", **r} for r in ALPACA]  # a table has every column in every row
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    write(tmp_path / "same.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert load_examples(tmp_path / "ds") == load_examples(tmp_path / "same.jsonl")
    assert load_examples(tmp_path / "ds")[1].label == "maths"
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows[:1]),
            "test": datasets.Dataset.from_list(rows[1:]),
        }
    )
    splits.save_to_disk(str(tmp_path / "dd"))
    assert load_examples(tmp_path / "dd") == load_examples(tmp_path / "same.jsonl")[:1]


def test_a_damaged_or_split_less_hugging_face_dataset_fails_with_one_error(tmp_path: Path) -> None:
    import datasets

    (tmp_path / "bad").mkdir()
    write(tmp_path / "bad" / "state.json", "{not json")
    with pytest.raises(DataError, match="not a readable Hugging Face dataset"):
        load_examples(tmp_path / "bad")
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(ALPACA)}).save_to_disk(
        str(tmp_path / "nosplit")
    )
    with pytest.raises(DataError, match="no 'train' split"):
        load_examples(tmp_path / "nosplit")
    datasets.Dataset.from_list([{"question": "q", "answer": "a"}]).save_to_disk(
        str(tmp_path / "cols")
    )
    with pytest.raises(DataError, match="missing columns"):
        load_examples(tmp_path / "cols")


def test_written_jsonl_reads_back_identically(tmp_path: Path, sample: list[Example]) -> None:
    write_jsonl(sample[:50], tmp_path / "s.jsonl")
    assert load_examples(tmp_path / "s.jsonl") == sample[:50]


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        (
            "cut.jsonl",
            json.dumps(ALPACA[0]) + "\n" + json.dumps(ALPACA[1])[:20],
            r"cut.jsonl:2: not valid JSON",
        ),
        ("cut.json", json.dumps(ALPACA)[:-5], r"cut.json: not valid JSON"),
        ("obj.json", '{"a": 1}', "expected a JSON array"),
        ("cols.jsonl", '{"question": "q", "answer": "a"}\n', r"cols.jsonl:1: missing columns"),
        ("cols.csv", "question,answer\nq,a\n", r"cols.csv:2: missing columns"),
        ("short.csv", "instruction,input,output\nonly one field\n", r"short.csv:2: row has"),
        ("empty.jsonl", "", "holds no examples"),
        ("empty.csv", "instruction,input,output\n", "holds no examples"),
        ("blank.jsonl", '{"instruction": "x", "output": "  "}\n', "'output' must be non-empty"),
        ("nolast.jsonl", '{"messages": [{"role": "user", "content": "x"}]}\n', "last message"),
        ("role.jsonl", '{"messages": [{"role": "bot", "content": "x"}]}\n', "role of system"),
        ("list.jsonl", "[1, 2]\n", "expected an object"),
        ("data.txt", "hello", "unknown data format"),
    ],
)
def test_malformed_data_files_fail_with_one_clear_error(
    tmp_path: Path, name: str, content: str, match: str
) -> None:
    with pytest.raises(DataError, match=match):
        load_examples(write(tmp_path / name, content))


def test_non_utf8_file_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "latin.jsonl").write_bytes(b'{"instruction": "caf\xe9", "output": "x"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        load_examples(tmp_path / "latin.jsonl")


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_examples(tmp_path / "nope.jsonl")


def test_empty_shard_cannot_be_trained_on() -> None:
    with pytest.raises(DataError, match="empty"):
        NodeData(train=())


# --------------------------------------------------------------------------- sample and splits


def test_bundled_sample_has_21_labelled_topics(sample: list[Example]) -> None:
    assert len(sample_topics()) == 21
    counts = Counter(e.label for e in sample)
    assert set(counts) == set(sample_topics())
    assert all(m.content for e in sample for m in e.messages)
    assert len(sample_examples(["food"])) == counts["food"]


def test_unknown_sample_topic_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown sample topic"):
        sample_examples(["astrology"])


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=8),
    nodes=st.integers(1, 6),
    strategy=st.sampled_from(["iid", "label", "dirichlet"]),
    alpha=st.floats(0.05, 100),
    seed=st.integers(0, 1000),
)
def test_shards_partition_the_data_into_non_empty_parts(
    sizes: list[int], nodes: int, strategy: str, alpha: float, seed: int
) -> None:
    examples = [
        Example((Message("user", f"q{label}-{i}"), Message("assistant", "a")), label=f"t{label}")
        for label, size in enumerate(sizes)
        for i in range(size)
    ]
    try:
        shards = split_shards(examples, nodes, strategy, alpha=alpha, seed=seed)
    except ConfigError:
        assert (
            len(examples) < nodes
            or (strategy == "label" and len(sizes) < nodes)
            or strategy == "dirichlet"
        )
        return
    assert len(shards) == nodes and all(shards)
    assert Counter(e.messages for s in shards for e in s) == Counter(e.messages for e in examples)
    if strategy == "label":
        owners = {e.label: i for i, s in enumerate(shards) for e in s}
        assert all(owners[e.label] == i for i, s in enumerate(shards) for e in s)
    if strategy == "iid":
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert split_shards(examples, nodes, strategy, alpha=alpha, seed=seed) == shards


def test_small_dirichlet_alpha_gives_more_skewed_shards(sample: list[Example]) -> None:
    overall = Counter(e.label for e in sample)

    def skew(alpha: float) -> float:
        """Mean total-variation distance of each shard's label mix from the whole data's."""
        shards = split_shards(sample, 5, "dirichlet", alpha=alpha, seed=1)
        distances = []
        for shard in shards:
            mix = Counter(e.label for e in shard)
            distances.append(
                sum(abs(mix[k] / len(shard) - overall[k] / len(sample)) for k in overall) / 2
            )
        return sum(distances) / len(distances)

    assert skew(100.0) < 0.1
    assert skew(0.1) > 0.4


def test_held_out_split_is_disjoint_and_sized(sample: list[Example]) -> None:
    data = train_eval_split(sample[:100], 0.2, seed=3)
    assert len(data.eval) == 20 and len(data.train) == 80
    assert not set(data.eval) & set(data.train)
    assert train_eval_split(sample[:1], 0.5).eval == ()
    with pytest.raises(ConfigError, match="eval fraction"):
        train_eval_split(sample, 1.0)


# --------------------------------------------------------------------------- masks


def _reply_text(tokenizer: object, ids: tuple[int, ...], labels: tuple[int, ...]) -> str:
    return tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX])


def test_loss_covers_only_assistant_replies_with_chat_template(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    example = Example(
        (
            Message("user", "What is AI?"),
            Message("assistant", "A field of science."),
            Message("user", "More?"),
            Message("assistant", "No."),
        )
    )
    encoded = encode_example(tokenizer, example, max_length=512)
    assert _reply_text(tokenizer, encoded.input_ids, encoded.labels) == (
        "A field of science.<|im_end|>\nNo.<|im_end|>\n"
    )
    full = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in example.messages], tokenize=False
    )
    assert tokenizer.decode(list(encoded.input_ids)) == full


def test_loss_covers_only_replies_without_chat_template(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tokenizer.chat_template = None
    example = Example((Message("user", "Hi"), Message("assistant", "Hello there")))
    encoded = encode_example(tokenizer, example, max_length=512)
    assert _reply_text(tokenizer, encoded.input_ids, encoded.labels) == "Hello there<|im_end|>"
    assert tokenizer.decode(list(encoded.input_ids)).startswith("<|im_start|>### Instruction:\nHi")


def test_examples_whose_reply_is_cut_off_are_dropped(tiny_dir: Path, sample: list[Example]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    encoded = encode_all(tokenizer, sample[:20], max_length=4)
    assert encoded == []
    kept = encode_all(tokenizer, sample[:20], max_length=256)
    assert len(kept) == 20 and all(len(e.input_ids) <= 256 for e in kept)
