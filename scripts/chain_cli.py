"""``loraledger chain``: local chain processes (Ganache, anvil) and their dev accounts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from chain import local
from chain.network import DEV_ACCOUNTS, dev_account
from loraledger.display import tokens
from loraledger.paths import home
from scripts.console import console
from scripts.console import table as new_table
from scripts.options import NetworkOption, open_chain

app = typer.Typer(no_args_is_help=True)

KindOption = typer.Option("ganache", "--kind", "-k", help="ganache or anvil.")


def _kind(value: str) -> Literal["ganache", "anvil"]:
    if value not in ("ganache", "anvil"):
        raise typer.BadParameter(f"kind must be ganache or anvil, got {value!r}")
    return value


@app.command()
def up(
    kind: str = KindOption,
    port: int | None = typer.Option(None, "--port", help="RPC port (ganache 8545, anvil 8546)."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the chain's saved state first."),
) -> None:
    """Start a local chain in the background (idempotent); its state survives restarts."""
    process = local.start(_kind(kind), port=port, fresh=fresh)
    console.print(
        f"{process.kind} is up at [bold]{process.url}[/] (pid {process.pid}, state "
        f"{process.state_dir})"
    )
    console.print(
        f"use it with [bold]--network {process.kind}" + (f":{process.port}" if port else "") + "[/]"
    )


@app.command()
def down(
    kind: str = KindOption,
    port: int | None = typer.Option(
        None,
        "--port",
        help="Stop the Ganache or anvil process listening on this port, whichever home "
        "started it (see `chain status`); anything else on the port is left alone.",
    ),
) -> None:
    """Stop the local chain; its state stays on disk for the next `chain up`."""
    if port is not None:
        stopped = local.stop_port(port)
        if stopped is None:
            console.print(f"nothing listens on port {port}")
        else:
            where = f" (state in {stopped.state_dir})" if stopped.state_dir else ""
            console.print(f"{stopped.kind} on port {port} stopped{where}")
        return
    if local.stop(_kind(kind)):
        console.print(f"{kind} stopped")
    else:
        console.print(f"{kind} was not running")


@app.command()
def status() -> None:
    """Show the local chains: this home's, and any other Ganache or anvil process listening on
    this machine (started from another home or by hand)."""
    table = new_table(
        "chain",
        "state",
        "url",
        "pid",
        "started from",
        text=(
            "state",
            "started from",
        ),
    )
    here = home() / "chains"
    ours: set[int] = set()
    for kind in ("ganache", "anvil"):
        process = local.status(kind)
        if process is None:
            table.add_row(kind, "[dim]down[/]", "", "", "this home")
        else:
            ours.add(process.pid)
            table.add_row(kind, "[green]up[/]", process.url, str(process.pid), "this home")
    for other in local.running():
        if other.pid in ours:
            continue
        state = Path(other.state_dir) if other.state_dir else None
        origin = (
            "this home (not recorded)"
            if state is not None and state.parent == here
            else str(state.parent.parent)
            if state is not None
            else "unknown"
        )
        table.add_row(other.kind, "[green]up[/]", other.url, str(other.pid), origin)
    console.print(table)
    if len(table.rows) > 2:
        console.print("[dim]stop another home's chain with `loraledger chain down --port PORT`[/]")


@app.command()
def accounts(network: str = NetworkOption) -> None:
    """List the dev accounts of a local chain with their ether and LedgerToken balances (never
    their keys); the token column needs a recorded deployment."""
    from chain.deployments import load_deployment
    from loraledger.errors import ChainError

    chain = open_chain(network)
    try:
        token = load_deployment(chain).token_contract(chain)
    except ChainError:  # nothing deployed (or the chain was reset): ether only
        token = None
    table = new_table("account", "address", "ETH", *(["LLT"] if token else []))
    for index in range(DEV_ACCOUNTS):
        address = dev_account(chain.network, index).address
        row = [f"dev:{index}", address, tokens(chain.w3.eth.get_balance(address), unit=False)]
        if token is not None:
            row.append(tokens(token.balance_of(address), unit=False))
        table.add_row(*row)
    console.print(table)
