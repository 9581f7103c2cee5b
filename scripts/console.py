"""What every command group shares: the console, logging setup and error exit."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Collection
from typing import Any

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from loraledger.display import labelled, short, transaction
from loraledger.errors import LoRALedgerError

console = Console()
err_console = Console(stderr=True)


WIDE = 120
"""From this many columns on, tables show addresses, CIDs and digests in full."""


class _FittedTable(Table):
    """A table that shares the terminal's width the way people read tables: value columns keep
    their full width, text columns wrap between words in what is left."""

    text_columns: frozenset[int] = frozenset()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self._fit(options.max_width)
        yield from super().__rich_console__(console, options)

    def _fit(self, max_width: int) -> None:
        columns = self.columns
        text = [i for i in range(len(columns)) if i in self.text_columns]

        def cells(column: Column) -> list[str]:
            return [str(column.header)] + [str(cell) for cell in column.cells]

        def longest(i: int) -> int:
            return max(cell_len(line) for c in cells(columns[i]) for line in c.split("\n"))

        def overhead() -> int:
            return self._extra_width + sum(self._get_padding_width(i) for i in range(len(columns)))

        def natural() -> int:
            return sum(longest(i) for i in range(len(columns))) + overhead()

        if natural() <= max_width:
            return  # every cell on one line
        for column in columns:  # a value column's title may take two lines rather than widen it
            header = str(column.header)
            widest = max((cell_len(str(c)) for c in column.cells), default=0)
            if column.no_wrap and cell_len(header) > widest:
                column.header = header.replace(" ", "\n")
        self.padding = (0, 0)  # one space between columns before any text wraps
        if natural() <= max_width:
            return
        room = (
            max_width - overhead() - sum(longest(i) for i in range(len(columns)) if i not in text)
        )
        words = {
            i: max((cell_len(w) for c in cells(columns[i]) for w in c.split()), default=1)
            for i in text
        }
        spare = room - sum(words.values())
        if spare < 0 or not text:
            # the values alone are too wide: they fold onto next lines, never lose a character
            for column in columns:
                column.no_wrap = False
            return
        slack = {i: longest(i) - words[i] for i in text}
        total = sum(slack.values()) or 1
        for i in text:
            columns[i].width = words[i] + spare * slack[i] // total


def table(*headers: str, title: str | None = None, text: Collection[str] = ()) -> Table:
    """A table that stays readable at 80 columns: values (numbers, amounts, identifiers) never
    wrap; the columns named in ``text`` (states, reasons, details) wrap between words to make
    room. Pair it with :func:`ident` and :func:`account` cells, which shorten when narrow."""
    made = _FittedTable(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )
    narrow = not wide()
    for header in headers:
        value = header not in text
        # a value column's title breaks between words when narrow: one word per line
        shown = header.replace(" ", "\n") if value and narrow else header
        made.add_column(shown, overflow="fold", no_wrap=value)
    made.text_columns = frozenset(i for i, h in enumerate(headers) if h in text)
    return made


def wide() -> bool:
    """Whether the terminal has room for full identifiers (``COLUMNS`` >= 120)."""
    return console.width >= WIDE


def ident(text: str) -> str:
    """A CID, digest or hash in a table cell: full when wide, else ``bafkre…3ja4``."""
    return text if wide() or text in ("", "-") else short(text)


def account(address: str, labels: dict[str, str] | None = None) -> str:
    """An address in a table cell: in full with its label (``0x22d4…e32b (dev:2)``) when wide;
    when narrow, the label alone (``dev:2``) or the address cut short (``0x22d4…e32b``)."""
    if wide():
        return labelled(address, labels)
    return (labels or {}).get(address.lower()) or short(address)


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
