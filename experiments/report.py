"""Writing an experiment's results: ``results.md``, ``results.json`` and PNG plots.

``results.md`` carries the tables, the configuration, where it ran and the exact command
that reproduces it; ``results.json`` the same numbers for scripts. Plots use matplotlib's
Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loraledger.errors import ConfigError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Series:
    """One line of a plot: y per x, with a label."""

    label: str
    x: Sequence[float]
    y: Sequence[float]


@dataclass(frozen=True)
class Table:
    """A result table: a heading, column names and rows of cells."""

    heading: str
    headers: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


@dataclass
class Report:
    """An experiment's output, assembled by the experiment and written by :meth:`write`."""

    experiment: str
    title: str
    command: str
    config: dict[str, Any]
    environment: dict[str, Any]
    summary: str = ""
    tables: list[Table] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    plots: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)
    notes: list[str] = field(default_factory=list)

    def add_table(
        self, heading: str, headers: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        self.tables.append(Table(heading, tuple(headers), tuple(tuple(row) for row in rows)))

    def write(self, folder: Path) -> list[Path]:
        """Write ``results.md`` and ``results.json`` (plots are written as they are made)."""
        folder.mkdir(parents=True, exist_ok=True)
        md = folder / "results.md"
        md.write_text(self.markdown(), encoding="utf-8")
        js = folder / "results.json"
        payload = {
            "format_version": FORMAT_VERSION,
            "experiment": self.experiment,
            "command": self.command,
            "config": self.config,
            "environment": self.environment,
            "results": self.data,
            "plots": [name for name, _ in self.plots],
        }
        js.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return [md, js, *(folder / name for name, _ in self.plots)]

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        if self.summary:
            lines += [self.summary, ""]
        lines += ["Reproduce with:", "", "```sh", self.command, "```", ""]
        for table in self.tables:
            lines += [f"## {table.heading}", "", markdown_table(table.headers, table.rows), ""]
        for name, caption in self.plots:
            lines += [f"![{caption}]({name})", ""]
        if self.notes:
            lines += ["## Notes", ""] + [f"- {note}" for note in self.notes] + [""]
        lines += ["## Configuration", "", markdown_table(["setting", "value"], _flat(self.config))]
        lines += ["", "## Environment", ""]
        lines += [markdown_table(["item", "value"], _flat(self.environment)), ""]
        return "\n".join(lines)


def _flat(values: Mapping[str, Any]) -> list[list[object]]:
    return [
        [key, ", ".join(map(str, value)) if isinstance(value, list | tuple) else value]
        for key, value in values.items()
    ]


def fmt(value: object) -> str:
    """Numbers with 4 significant decimals; everything else as text."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"a result is not finite ({value})")
        return f"{value:.4f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(out)


def line_plot(
    path: Path,
    series: Sequence[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str = "held-out eval loss",
) -> Path:
    """A PNG with one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for s in series:
        axes.plot(list(s.x), list(s.y), marker="o", markersize=3, label=s.label)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def bar_plot(
    path: Path,
    groups: Sequence[str],
    bars: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str = "held-out eval loss",
) -> Path:
    """A PNG of grouped bars: one group per entry of ``groups``, one bar per key of ``bars``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    width = 0.8 / max(1, len(bars))
    for k, (label, values) in enumerate(bars.items()):
        xs = [g + (k - (len(bars) - 1) / 2) * width for g in range(len(groups))]
        axes.bar(xs, list(values), width=width, label=label)
    axes.set_xticks(range(len(groups)), list(groups), fontsize=8)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
