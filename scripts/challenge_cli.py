"""``loraledger challenge``: anyone holds a finalized round to account in its challenge window.

A finalized round's rewards wait for its challenge window (docs/accountability.md). During it,
anyone may show the contract that the round's reward table pays an account that neither
revealed an update in the round nor is a validator whose score sheet the result used
(:func:`aggregator.audit.reward_challenges` finds them in the round's report): the round is
voided, back to closed for a new result, and the bonds of the result's proposer and signers
are slashed into the task's pool. What the contract cannot check is the validators' quorum's
to decide; ``loraledger audit verify`` re-checks everything off chain.
"""

from __future__ import annotations

import json

import typer

from loraledger.display import tokens
from scripts.console import console
from scripts.console import table as new_table
from scripts.options import (
    AccountOption,
    IpfsOption,
    JsonOption,
    NetworkOption,
    TaskOption,
    open_cli_session,
)


def register(app: typer.Typer) -> None:
    app.command("challenge")(challenge_command)


def challenge_command(
    task: int = TaskOption,
    round_: int | None = typer.Option(
        None,
        "--round",
        "-r",
        help="A finalized round (default: every round of the task in its challenge window).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the challenges only; send nothing (needs no account)."
    ),
    network: str = NetworkOption,
    account: str = AccountOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
) -> None:
    """Challenge finalized rounds that pay an account that took no part: each such round is
    voided and the bonds of its proposer and signers are slashed."""
    from aggregator.audit import RewardChallenge, reward_challenges
    from chain import errors
    from chain.events import BondSlashReason
    from chain.round_state import RoundState
    from loraledger.errors import ChainError

    session = open_cli_session(network, ipfs, None if dry_run else account)
    ledger = session.ledger
    opened = ledger.task(task).rounds_opened  # LedgerUnknownTask for a wrong id
    if round_ is None:
        numbers = [
            r for r in range(1, opened + 1) if ledger.round_state(task, r) is RoundState.FINALIZED
        ]
    else:
        state = ledger.round_state(task, round_)
        if state is not RoundState.FINALIZED:
            raise ChainError(
                f"round {round_} of task {task} is {state.name.lower()}: only a finalized round "
                "can be challenged, during its challenge window",
                hint="a settled round's window is over (`loraledger audit verify` still "
                "re-checks it); a round not finalized yet has no result to challenge",
            )
        numbers = [round_]
    found: dict[int, list[RewardChallenge]] = {
        n: reward_challenges(ledger, session.history, session.store, task, n) for n in numbers
    }
    sent: dict[int, RewardChallenge] = {}
    if not dry_run:
        for number, challenges in found.items():
            for challenge in challenges:
                try:
                    challenge.send(ledger, session.signer)
                except errors.LedgerRewardJustified:
                    continue  # the contract finds the account took part: the next one
                except errors.LedgerUnexpectedRoundState:
                    break  # voided meanwhile, or its window just ended
                sent[number] = challenge  # one voids the round: the others are moot
                break
    if as_json:
        body = {
            "task_id": task,
            "rounds": numbers,
            "challenges": [
                {
                    "round": c.round,
                    "account": c.account,
                    "amount": str(c.amount),
                    "why": c.why,
                    "sent": sent.get(c.round) == c,
                }
                for challenges in found.values()
                for c in challenges
            ],
        }
        console.print_json(json.dumps(body))
        return
    if not numbers:
        console.print(f"no round of task {task} is in its challenge window")
        return
    challenges = [c for cs in found.values() for c in cs]
    if not challenges:
        listed = ", ".join(str(n) for n in numbers)
        console.print(
            f"round(s) {listed} of task {task}: nothing to challenge (every reward goes to an "
            "account that took part)"
        )
        return
    table = new_table(
        "round", "account", "amount (LLT)", "why", "sent", title="challenges", text=("why",)
    )
    for c in challenges:
        table.add_row(
            str(c.round),
            c.account,
            tokens(c.amount, unit=False),
            c.why,
            "yes" if sent.get(c.round) == c else "-" if dry_run else "no",
        )
    console.print(table)
    slashed = session.history.bond_slashes(task) if sent else []
    for number in sent:
        info = ledger.round(task, number)
        console.print(
            f"round {number} of task {task} voided: {ledger.round_state(task, number).name.lower()}"
            f" again (epoch {info.epoch}), awaiting a new result; the bonds of its proposer and "
            "signers went into the task's pool:"
        )
        for cut in slashed:
            if cut.round == number and cut.reason is BondSlashReason.REWARD_CHALLENGED:
                console.print(f"  {cut.account}: {tokens(cut.amount)}", highlight=False)
    if dry_run:
        console.print("dry run: nothing sent")
