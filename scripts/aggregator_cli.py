"""``loraledger aggregator``: one-shot commands of the aggregator role.

The full round loop (fetch, verify, aggregate, publish, reward, finalize) is not built yet;
``open`` starts a round from the task's current global adapter.
"""

from __future__ import annotations

import typer

from scripts.console import console
from scripts.options import NetworkOption, open_chain, signer

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Verify, aggregate, publish and finalize rounds (the aggregator role)."""


@app.command("open")
def open_command(
    task: int = typer.Option(..., "--task", "-t", help="Task id."),
    network: str = NetworkOption,
    account: str = typer.Option("dev:1", "--account", "-a", envvar="LORALEDGER_AGGREGATOR_ACCOUNT",
                                help="An account holding AGGREGATOR_ROLE (dev:1 on local chains)."),  # fmt: skip
) -> None:
    """Open the next round of a task; nodes can submit until its window closes."""
    from chain.deployments import load_deployment

    chain = open_chain(network)
    ledger = load_deployment(chain).ledger_contract(chain)
    round_, _ = ledger.open_next_round(task, signer(account, chain.network))
    info = ledger.round(task, round_)
    console.print(f"opened round {round_} of task {task}; submissions accepted until chain time {info.deadline}")
