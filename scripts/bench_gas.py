"""``loraledger bench gas``: gas per contract function and per round size."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from chain.gas import measure, render_markdown
from loraledger.paths import REPO_ROOT
from scripts.console import console
from scripts.options import NetworkOption, open_chain

REPORT = REPO_ROOT / "docs" / "gas-report.md"


def gas(
    sizes: str = typer.Option("1,3,10,100", "--sizes", help="Round sizes (nodes) to finalize and claim, comma-separated."),
    network: str = NetworkOption,
    write: Path | None = typer.Option(None, "--write", help=f"Also write the markdown report here (e.g. {REPORT})."),
) -> None:
    """Measure gas per function, finalize vs number of nodes (flat) and claim vs table size (log N)."""
    try:
        counts = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"--sizes must be integers, got {sizes!r}") from exc
    if not counts or min(counts) < 1:
        raise typer.BadParameter("--sizes needs positive node counts")
    chain = open_chain(network)
    with console.status("measuring gas") as status:
        rows = measure(chain, sorted(counts), progress=lambda msg: status.update(f"measuring gas: {msg}"))
    table = Table("function", "scenario", "gas")
    for r in rows:
        table.add_row(r.function, r.scenario, f"{r.gas:,}")
    console.print(table)
    finals = [r for r in rows if r.function == "finalizeRound" and r.scenario.startswith("N=")]
    if len(finals) >= 2:
        console.print(f"finalizeRound {finals[-1].scenario} / {finals[0].scenario}: {finals[-1].gas / finals[0].gas:.3f}x")
    if write is not None:
        command = f"loraledger bench gas --sizes {','.join(map(str, sorted(counts)))} --network {chain.network.name}"
        write.write_text(render_markdown(rows, network=chain.network.name, command=command))
        console.print(f"wrote {write}")


def register(app: typer.Typer) -> None:
    app.command("gas")(gas)
