"""``loraledger deployments``: every deployment recorded for a chain, and which one is current.

Commands find the contracts through the chain's current record (``deploy`` writes it). A new
deployment on a chain whose recorded ledger is still there needs ``deploy --replace``, and the
earlier one stays here: ``use`` makes it current again, with its tasks and unclaimed rewards.
"""

from __future__ import annotations

import json

import typer

from chain.deployments import deployment_history, has_code, recorded, use_deployment
from chain.network import Chain
from scripts.console import console
from scripts.console import table as new_table
from scripts.options import JsonOption, NetworkOption, open_chain

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """The deployments recorded for a chain: list them, make an earlier one current again."""


def _tasks(chain: Chain, ledger: str) -> int | None:
    """The ledger's task count, ``None`` when it is not on the chain any more."""
    from chain.bindings import Ledger

    return Ledger(chain, ledger).task_count() if has_code(chain, ledger) else None


@app.command("list")
def list_command(network: str = NetworkOption, as_json: bool = JsonOption) -> None:
    """Every deployment recorded for the chain, oldest first: the current one, which are still
    on the chain and how many tasks each holds."""
    chain = open_chain(network)
    current = recorded(chain.chain_id)
    rows = []
    for d in deployment_history(chain.chain_id):
        tasks = _tasks(chain, d.ledger)
        rows.append(
            {
                "ledger": d.ledger,
                "token": d.token,
                "deployed_at": d.deployed_at,
                "block": d.block,
                "current": current is not None and current.ledger.lower() == d.ledger.lower(),
                "on_chain": tasks is not None,
                "tasks": tasks,
            }
        )
    if as_json:
        console.print_json(json.dumps({"chain_id": chain.chain_id, "deployments": rows}))
        return
    if not rows:
        console.print(
            f"no deployment recorded for chain id {chain.chain_id} (`loraledger deploy "
            f"--network {chain.network.name}`)"
        )
        return
    title = f"chain id {chain.chain_id}"
    table = new_table(
        "", "LoRALedger", "deployed", "block", "tasks", title=title, text=("deployed", "tasks")
    )
    for row in rows:
        table.add_row(
            "current" if row["current"] else "",
            str(row["ledger"]),  # in full: `deployments use` takes it
            str(row["deployed_at"]).replace("T", " "),
            str(row["block"]),
            str(row["tasks"]) if row["on_chain"] else "gone (chain reset)",
        )
    console.print(table)


@app.command("use")
def use_command(
    ledger: str = typer.Argument(..., help="The LoRALedger address of a recorded deployment."),
    network: str = NetworkOption,
) -> None:
    """Make a recorded deployment current again (every command then uses it)."""
    chain = open_chain(network)
    deployment = use_deployment(chain, ledger)
    console.print(
        f"chain id {chain.chain_id}: LoRALedger {deployment.ledger} (deployed "
        f"{deployment.deployed_at}) is current, with {_tasks(chain, deployment.ledger)} task(s)"
    )
