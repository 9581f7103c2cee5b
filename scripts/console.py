"""What every command group shares: the console, logging setup and error exit."""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.logging import RichHandler

from loraledger.errors import LoRALedgerError

console = Console()
err_console = Console(stderr=True)


def setup_logging(verbose: int) -> None:
    """Configure handlers once, from the CLI only (libraries just log)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )


def fail(error: LoRALedgerError) -> typer.Exit:
    """Print one clear line (and the hint) for a user-facing error; return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    if error.hint:
        err_console.print(f"[dim]hint:[/] {error.hint}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)
