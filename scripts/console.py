"""What every command group shares: the console, logging setup and error exit."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from loraledger.display import transaction
from loraledger.errors import LoRALedgerError

console = Console()
err_console = Console(stderr=True)


def report_transaction(what: str, receipt: Any) -> None:
    """One dim line on stderr for every write a command got mined (stdout stays the command's
    output, JSON included): what it called, the transaction hash, its block and gas."""
    err_console.print(
        transaction(
            what,
            bytes(receipt["transactionHash"]),
            int(receipt["blockNumber"]),
            int(receipt["gasUsed"]),
        ),
        style="dim",
        highlight=False,
        soft_wrap=True,
    )


def setup_logging(verbose: int) -> None:
    """Configure handlers once, from the CLI only (libraries just log)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if verbose == 0:
        # the CLI draws its own progress; third-party bars and deprecation chatter only at -v
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    # optional accelerations and hub chatter (bitsandbytes' "pip install kernels" at every model
    # load on some CPUs): a warning that asks nothing of the user is for -v
    for name in _LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR if verbose == 0 else logging.NOTSET)
    # -vv is this tool's debug output; the HTTP and RPC libraries' own lines need -vvv
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            max(level, logging.INFO) if verbose < 3 else logging.NOTSET
        )


_LIBRARIES = ("bitsandbytes", "peft", "accelerate", "huggingface_hub")
"""Libraries whose warnings the CLI shows only from -v on (transformers sets its own level
when imported: ``TRANSFORMERS_VERBOSITY`` above quiets it)."""

_CHATTY = (
    "urllib3",
    "httpx",
    "httpcore",
    "web3.providers",
    "web3.manager",
    "web3.RequestManager",
    "web3._utils.http_session_manager",
    "filelock",
    "asyncio",
    "matplotlib",
    "PIL",
    "fsspec",
)
"""Third-party loggers whose debug lines drown the tool's own at -vv."""


def fail(error: LoRALedgerError) -> typer.Exit:
    """Print one clear line (and the hint) for a user-facing error; return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    if error.hint:
        err_console.print(f"[dim]hint:[/] {error.hint}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def step_progress() -> Progress:
    """The transient step bar long-running commands share (description, bar, steps, time)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
