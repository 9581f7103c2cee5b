"""``loraledger data``: the bundled sample data set, node shards, and checking a data file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from fl_node.data import (
    Example,
    load_examples,
    sample_examples,
    sample_topics,
    split_shards,
    write_jsonl,
)
from loraledger.errors import ConfigError
from scripts.console import console
from scripts.console import table as new_table

app = typer.Typer(no_args_is_help=True)


def _labels(examples: list[Example], top: int = 3) -> str:
    counts = Counter(e.label or "-" for e in examples)
    shown = ", ".join(f"{label} {n}" for label, n in counts.most_common(top))
    return shown + (f" (+{len(counts) - top} more)" if len(counts) > top else "")


@app.command()
def sample(
    out: Path | None = typer.Argument(
        None, help="JSONL file to write (chat messages, labelled by topic); not with --list."
    ),
    topic: list[str] = typer.Option(
        [], "--topic", help="Only these topics (repeat the option); default all."
    ),
    list_topics: bool = typer.Option(False, "--list", help="List the topics and exit."),
) -> None:
    """Write the bundled sample data (chatterbot-corpus Q/A pairs, one topic per label)."""
    if list_topics:
        console.print(" ".join(sample_topics()))
        return
    if out is None:
        raise typer.BadParameter("give the JSONL file to write", param_hint="OUT")
    examples = sample_examples(topic or None)
    write_jsonl(examples, out)
    table = new_table("topic", "examples")
    for label, n in sorted(Counter(e.label or "-" for e in examples).items()):
        table.add_row(label, str(n))
    table.add_row("[bold]total", f"[bold]{len(examples)}")
    console.print(table)
    console.print(f"wrote [bold]{out}[/]")


@app.command()
def split(
    source: Path = typer.Argument(..., help="Data file or folder (JSON, JSONL, CSV)."),
    nodes: int = typer.Option(..., "--nodes", "-N", help="Number of node shards."),
    strategy: str = typer.Option(
        "iid", "--strategy", "-s", help="iid, label (whole labels per node) or dirichlet."
    ),
    alpha: float = typer.Option(
        0.5, "--alpha", help="Dirichlet concentration: smaller is more skewed (dirichlet only)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same shards)."),
    out_dir: Path = typer.Option(
        Path("shards"), "--out-dir", "-o", help="Where node-<i>.jsonl go."
    ),
) -> None:
    """Split a data set into N node shards (IID, by label, or Dirichlet non-IID)."""
    if strategy not in ("iid", "label", "dirichlet"):
        raise ConfigError(f"strategy must be iid, label or dirichlet, got {strategy!r}")
    examples = load_examples(source)
    shards = split_shards(examples, nodes, strategy, alpha=alpha, seed=seed)
    table = new_table("shard", "file", "examples", "labels")
    for i, shard in enumerate(shards):
        path = out_dir / f"node-{i}.jsonl"
        write_jsonl(shard, path)
        table.add_row(str(i), str(path), str(len(shard)), _labels(shard))
    console.print(table)


@app.command()
def check(
    source: Path = typer.Argument(..., help="Data file or folder to validate."),
) -> None:
    """Read a data file the way a node will and report what is in it."""
    examples = load_examples(source)
    turns = sum(1 for e in examples for m in e.messages if m.role == "assistant")
    table = new_table("examples", "assistant replies", "labels")
    table.add_row(str(len(examples)), str(turns), _labels(examples, top=5))
    console.print(table)
