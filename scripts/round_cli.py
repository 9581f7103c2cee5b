"""``loraledger round``: what anyone may do to a round that nobody finalized in time.

``round abandon`` ends a round once its grace period is over (``abandonRound``): the pool keeps
nothing reserved for it, the stakes its commitments locked come free, and the task can go on
with its next round, or be cancelled by its sponsor. Challenging a finalized round's result is
``loraledger challenge``.
"""

from __future__ import annotations

import typer

from loraledger.display import chain_time
from scripts.console import console
from scripts.options import AccountOption, NetworkOption, TaskOption, open_chain, signer

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Abandon a round nobody finalized within its grace period (anyone may)."""


@app.command("abandon")
def abandon_command(
    task: int = TaskOption,
    round_: int | None = typer.Option(
        None, "--round", "-r", help="Round (default: the last one opened)."
    ),
    network: str = NetworkOption,
    account: str = AccountOption,
) -> None:
    """Abandon a round nobody finalized within the task's grace period after its reveal
    deadline: nothing of it stays reserved, its commitments unlock, the next round can open."""
    from chain import errors
    from chain.deployments import load_deployment
    from loraledger.errors import ChainError

    chain = open_chain(network)
    caller = signer(account, chain.network)
    ledger = load_deployment(chain).ledger_contract(chain)
    number = round_ or ledger.task(task).rounds_opened  # LedgerUnknownTask for a wrong id
    if number == 0:
        raise ChainError(f"task {task} has no round yet", hint="there is nothing to abandon")
    try:
        ledger.abandon_round(task, number, caller)
    except errors.LedgerRoundNotAbandonable as exc:
        raise ChainError(
            f"round {number} of task {task} can be abandoned from "
            f"{chain_time(int(exc.abandonable_at), chain.timestamp())}",
            hint="until then its aggregator and validators may still finalize it (its reveal "
            "deadline plus the task's grace period)",
        ) from None
    except errors.LedgerUnexpectedRoundState as exc:
        raise ChainError(
            f"round {number} of task {task} is {exc.current.name.lower()}: only an open, "
            "revealing or closed round can be abandoned",
            hint=f"see the task's rounds: `loraledger task show {task}`",
        ) from None
    info = ledger.round(task, number)
    console.print(
        f"abandoned round {number} of task {task}: nothing of the pool is reserved for it, and "
        f"the stakes of the {info.commits} node(s) that committed in it are no longer locked "
        "by it"
    )
    if ledger.is_complete(task):
        console.print(
            f"it was the task's last round: the task is over; the sponsor takes back the pool "
            f"with `loraledger task withdraw {task}`"
        )
    else:
        console.print(
            f"the aggregator may open round {number + 1}; the sponsor may instead cancel the "
            f"task (`loraledger task cancel {task}`)"
        )
