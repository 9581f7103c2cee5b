"""``loraledger validator``: one of a task's validators (docs/accountability.md).

A validator locks its bond (``bond``), then ``run``: every round, once reveals are over, it
checks every revealed update, scores them on its own private held-out data
(``--validation-data``) and posts the score sheet; it reviews each proposed result with the
audit's own checks and signs only one that holds; when none it can sign comes in time it
proposes the result it derives; once a round is finalized it challenges a reward paid to an
account that took no part and reports conflicting proposals. ``status`` shows its bond, its
sheets and signatures round by round and its pay; ``claim`` takes its share of settled rounds;
``withdraw-bond`` takes the bond back once the task is over.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

import typer

from loraledger.display import chain_time, tokens
from scripts.console import console, err_console
from scripts.console import table as new_table
from scripts.options import (
    ConfirmationsOption,
    IpfsOption,
    JsonOption,
    NetworkOption,
    RoundOptions,
    TaskOption,
    open_cli_session,
    with_round_options,
)

if TYPE_CHECKING:
    from chain.session import Session

app = typer.Typer(no_args_is_help=True)

ValidatorAccountOption = typer.Option(
    "dev:1",
    "--account",
    "-a",
    envvar="LORALEDGER_VALIDATOR_ACCOUNT",
    help="One of the task's validators: dev:N, env:VAR or keystore:PATH (default dev:1, the "
    "validator `task create` names on local chains when given none).",
)


@app.callback()
def _group() -> None:
    """Score rounds on private held-out data, sign the results that hold (a task's
    validators)."""


def _validator_session(task: int, network: str, account: str, ipfs: str | None) -> Session:
    """The session of one of the task's validators (its local state apart from the
    aggregator's); an error naming the task's validators for any other account."""
    from loraledger.errors import ChainError
    from loraledger.paths import home

    session = open_cli_session(network, ipfs, account)
    validators = session.ledger.validators(task)  # LedgerUnknownTask for a wrong id
    if session.address.lower() not in {v.lower() for v in validators}:
        raise ChainError(
            f"{session.address} is not a validator of task {task}",
            hint=f"run with one of its validators' --account (`loraledger task show {task}` "
            "lists them)",
        )
    return dataclasses.replace(session, state_root=home() / "validators" / session.address)


def post_bond_and_report(session: Session, task: int) -> None:
    """Lock this account's bond for ``task`` (as its aggregator or a validator) unless it is
    posted already; print what it holds (``aggregator bond`` and ``validator bond``)."""
    from aggregator.validator import post_bond

    before = session.ledger.bond_of(task, session.address)
    if before.posted:
        held = "it was slashed" if before.slashed else f"{tokens(before.amount)} held"
        console.print(f"{session.address} already posted its bond for task {task}: {held}")
        return
    amount = post_bond(session, task)
    console.print(
        f"{session.address} posted its bond for task {task}: {tokens(amount)} locked"
        + ("" if amount else " (the task asks none)")
    )


def withdraw_bond_and_report(session: Session, task: int) -> None:
    """Take this account's bond back (``withdrawBond``) and print it; one clear error while
    the task runs or a round can still slash it."""
    from chain import errors
    from loraledger.errors import ChainError

    ledger, address = session.ledger, session.address
    bond = ledger.bond_of(task, address)
    try:
        ledger.withdraw_bond(task, session.signer)
    except errors.LedgerTaskNotComplete as exc:
        raise ChainError(
            f"task {task} is still running ({exc.rounds_ended} of {exc.max_rounds} rounds ended)",
            hint="bonds come back once the task is complete or cancelled",
        ) from None
    except errors.LedgerBondLocked as exc:
        raise ChainError(
            f"the bond of {address} in task {task} is locked until "
            f"{chain_time(int(exc.unlocks_at), ledger.chain.timestamp())}",
            hint="a round's slashes can be made until its slash window ends",
        ) from None
    except errors.LedgerBondSlashed:
        raise ChainError(
            f"the bond of {address} in task {task} was slashed into the task's pool",
            hint=f"`loraledger task show {task}` shows every bond",
        ) from None
    except (errors.LedgerNotBondholder, errors.LedgerBondNotPosted, errors.LedgerZeroAmount):
        raise ChainError(
            f"{address} holds no bond in task {task} (never posted, or withdrawn already)"
        ) from None
    console.print(f"returned the bond of {tokens(bond.amount)} to {address}")


@app.command("bond")
def bond_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = ValidatorAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Lock the validator's bond the task asks (approving the ledger for it first); a
    validator posts score sheets and signs only once it is posted."""
    post_bond_and_report(_validator_session(task, network, account, ipfs), task)


@app.command("withdraw-bond")
def withdraw_bond_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = ValidatorAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Take the bond back once the task is over and no round can slash it any more."""
    withdraw_bond_and_report(_validator_session(task, network, account, ipfs), task)


@app.command("run")
@with_round_options
def run_command(
    task: int = TaskOption,
    rounds: int | None = typer.Option(
        None,
        "--rounds",
        help="Stop after this many rounds were seen finalized (default: until the task is over).",
    ),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between chain polls."),
    propose_after: float = typer.Option(
        30.0,
        "--propose-after",
        help="Seconds a closed round may wait for a result this validator can sign before it "
        "proposes the one it derives itself.",
    ),
    network: str = NetworkOption,
    account: str = ValidatorAccountOption,
    ipfs: str | None = IpfsOption,
    confirmations: int = ConfirmationsOption,
    *,
    opts: RoundOptions,
) -> None:
    """Validate the task's rounds as they come, until it is over: post a score sheet made on
    --validation-data, sign the results that hold, challenge the ones that do not.

    The round options (--strategy and the rest) are the settings this validator expects results
    to be made with: it signs no result made otherwise.
    """
    from aggregator.validator import Validator
    from chain.recovery import outlast
    from loraledger.errors import ChainError

    settings = opts.settings()
    # started while the chain or the IPFS node restarts: wait for them, as the loop does
    session = outlast(
        lambda: _validator_session(task, network, account, ipfs), f"validator run of task {task}"
    )
    session.ledger.chain.confirmations = confirmations
    bond = session.ledger.bond_of(task, session.address)
    if not bond.posted or bond.slashed:
        raise ChainError(
            f"{session.address} "
            + ("was slashed in" if bond.slashed else "has not posted its bond for")
            + f" task {task}: it may not post score sheets or sign",
            hint=None if bond.slashed else f"`loraledger validator bond --task {task}` first",
        )
    evaluator = opts.evaluator()
    if evaluator is None:
        err_console.print(
            "[yellow]no --validation-data:[/] this validator's sheets carry verdicts but no "
            "contribution scores",
            highlight=False,
        )
    validator = Validator(session, task, evaluator, settings, propose_after=propose_after)
    with console.status(f"validating task {task} as {session.address}") as status:
        seen = validator.run(
            poll_seconds=poll,
            max_rounds=rounds,
            on_wait=lambda text: status.update(f"validating task {task}: {text}"),
        )
    console.print(f"task {task}: {seen} round(s) seen finalized while validating")
    _print_status(session, task, as_json=False)


@app.command("status")
def status_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = ValidatorAccountOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
) -> None:
    """The validator's bond, and round by round: its score sheet, its signature on the
    finalized result, its agreement with the consensus and its pay."""
    _print_status(_validator_session(task, network, account, ipfs), task, as_json=as_json)


@app.command("claim")
def claim_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = ValidatorAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Claim the validator's share of every settled round, in one transaction."""
    from fl_node.node import claim
    from scripts.node_cli import print_claims

    session = _validator_session(task, network, account, ipfs)
    print_claims(session, task, claim(session, task))


def _print_status(session: Session, task: int, *, as_json: bool) -> None:
    from chain.bindings import ZERO_DIGEST
    from fl_node.node import status
    from loraledger.errors import LoRALedgerError
    from loraledger.report import fetch_report

    ledger, address = session.ledger, session.address
    info = ledger.task(task)
    validators = [v.lower() for v in ledger.validators(task)]
    index = validators.index(address.lower())
    bond = ledger.bond_of(task, address)
    reports = {f.round: f.report_cid for f in session.history.finalized(task)}
    mine = status(session, task)
    rows: list[dict[str, Any]] = []
    for r in mine.rounds:
        agreement = None
        if r.round in reports:
            try:
                report = fetch_report(session.store, reports[r.round])
            except LoRALedgerError:
                pass  # the audit reports an unreadable report; here it shows as unknown
            else:
                line = next(
                    (v for v in report.validators if v.validator.lower() == address.lower()),
                    None,
                )
                agreement = line.agreement if line else None
        rows.append(
            {
                "round": r.round,
                "state": ledger.round_state(task, r.round).name.lower(),
                "sheet_posted": ledger.scores_of(task, r.round, address) != ZERO_DIGEST,
                "signed": bool(ledger.round(task, r.round).signers >> index & 1),
                "agreement": agreement,
                "reward": str(r.reward),
                "claimed": r.claimed,
            }
        )
    if as_json:
        body = {
            "task_id": task,
            "validator": address,
            "index": index,
            "quorum": info.quorum,
            "validators": len(validators),
            "bond": {"posted": bond.posted, "slashed": bond.slashed, "amount": str(bond.amount)},
            "claimable": str(mine.claimable),
            "pending": str(mine.pending),
            "claimed": str(mine.claimed),
            "rounds": rows,
        }
        console.print_json(json.dumps(body))
        return
    held = "slashed" if bond.slashed else tokens(bond.amount) if bond.posted else "not posted"
    console.print(
        f"{address}: validator {index} of {len(validators)} in task {task} (quorum "
        f"{info.quorum}); bond {held}",
        highlight=False,
    )
    table = new_table(
        "round",
        "state",
        "score sheet",
        "signed result",
        "agreement",
        "pay (LLT)",
        "claimed (LLT)",
        text=("state",),
    )
    for row in rows:
        table.add_row(
            str(row["round"]),
            row["state"],
            "posted" if row["sheet_posted"] else "-",
            "yes" if row["signed"] else "-",
            "-" if row["agreement"] is None else f"{row['agreement']:.3f}",
            tokens(int(row["reward"]), unit=False),
            "yes" if row["claimed"] else "no",
        )
    console.print(table)
    console.print(
        f"claimable {tokens(mine.claimable)}, waiting for a challenge window "
        f"{tokens(mine.pending)}, claimed {tokens(mine.claimed)}"
    )
