"""Writing an experiment's results: ``results.md``, ``results.json`` and PNG plots.

``results.md`` carries the tables, the configuration, where it ran and the exact command
that reproduces it; ``results.json`` the same numbers for scripts. Figures over several seeds
are :class:`~experiments.stats.Interval` cells (mean ± half-width); plots draw the mean with
the interval as a band (lines) or error bars (bars). Plots use matplotlib's Agg backend (no
display needed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.stats import Interval
from loraledger.errors import ConfigError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Series:
    """One line of a plot: the mean over seeds per x (with its interval as a band), labelled."""

    label: str
    x: Sequence[float]
    y: Sequence[Interval]


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
    """Numbers with 4 decimals, intervals as ``mean ± half-width``; everything else as text."""
    if isinstance(value, Interval):
        return value.cell()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"a result is not finite ({value})")
        return f"{value:.4f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(out)


def save_figure(figure: Any, path: Path) -> Path:
    """Lay ``figure`` out, write it to ``path`` (its folder made) and free it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def line_plot(
    path: Path,
    series: Sequence[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str = "held-out eval loss",
) -> Path:
    """A PNG with one line per series: the means, and their intervals as bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for s in series:
        (line,) = axes.plot(
            list(s.x), [i.mean for i in s.y], marker="o", markersize=3, label=s.label
        )
        if all(i.low is not None and i.high is not None for i in s.y):
            axes.fill_between(
                list(s.x),
                [i.low or 0.0 for i in s.y],
                [i.high or 0.0 for i in s.y],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return save_figure(figure, path)


def bar_plot(
    path: Path,
    groups: Sequence[str],
    bars: Mapping[str, Sequence[Interval]],
    *,
    title: str,
    ylabel: str = "held-out eval loss",
) -> Path:
    """A PNG of grouped bars: one group per entry of ``groups``, one bar per key of ``bars``;
    each bar the mean over seeds, with its interval as error bars where there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    width = 0.8 / max(1, len(bars))
    for k, (label, values) in enumerate(bars.items()):
        xs = [g + (k - (len(bars) - 1) / 2) * width for g in range(len(groups))]
        errors = [
            [i.mean - i.low if i.low is not None else 0.0 for i in values],
            [i.high - i.mean if i.high is not None else 0.0 for i in values],
        ]
        shown = any(i.available for i in values)
        axes.bar(
            xs,
            [i.mean for i in values],
            width=width,
            label=label,
            yerr=errors if shown else None,
            capsize=3 if shown else 0,
        )
    axes.set_xticks(range(len(groups)), list(groups), fontsize=8)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    return save_figure(figure, path)
