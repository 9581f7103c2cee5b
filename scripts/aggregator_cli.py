"""``loraledger aggregator``: a task's aggregator, as a loop (``run``) or one step at a time.

The account is the aggregator the task names (``loraledger task show``). ``run`` opens rounds,
waits for each window (or every eligible node), verifies the updates against their
commitments, aggregates with the validators' score sheets, publishes the global adapter and
the round report, proposes the result for the validators to sign, and settles each round once
its challenge window passed, until the task is complete. ``open``, ``finalize`` and ``settle``
do one step; ``bond`` locks the bond the task asks before the first round; ``status`` shows
the rounds. Every command is safe to repeat or to restart after a crash.

When the task also names the aggregator's account as one of its validators, that validator
runs in the same process (with ``--validation-data``, scoring updates on its held-out data).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from loraledger.display import chain_time, tokens
from scripts.console import console
from scripts.console import table as new_table
from scripts.options import (
    ConfirmationsOption,
    IpfsOption,
    JsonOption,
    NetworkOption,
    RoundOptions,
    TaskOption,
    open_chain,
    open_cli_session,
    with_round_options,
)

if TYPE_CHECKING:
    from aggregator.round import RoundOutcome, RoundRunner
    from chain.session import Session

app = typer.Typer(no_args_is_help=True)

AggregatorAccountOption = typer.Option(
    "dev:1",
    "--account",
    "-a",
    envvar="LORALEDGER_AGGREGATOR_ACCOUNT",
    help="The task's aggregator (dev:1 on local chains, the default of `task create`): dev:N, "
    "env:VAR or keystore:PATH.",
)
SheetTimeoutOption = typer.Option(
    60.0,
    "--sheet-timeout",
    help="Seconds to wait for every validator's score sheet (a quorum's suffices once they "
    "stop coming).",
)
QuorumTimeoutOption = typer.Option(
    600.0,
    "--quorum-timeout",
    help="Seconds to wait for a quorum of validators to sign a proposed result.",
)


@app.callback()
def _group() -> None:
    """Open rounds, aggregate, propose results for the validators to sign, settle (a task's
    aggregator)."""


def _aggregator_session(task: int, network: str, account: str, ipfs: str | None) -> Session:
    """The session of the task's aggregator; an error naming it for any other account."""
    from loraledger.errors import ChainError

    session = open_cli_session(network, ipfs, account)
    aggregator = session.ledger.task(task).aggregator  # LedgerUnknownTask for a wrong id
    if aggregator.lower() != session.address.lower():
        raise ChainError(
            f"{session.address} is not the aggregator of task {task} (its aggregator is "
            f"{aggregator})",
            hint=f"run with the aggregator's --account (`loraledger task show {task}`)",
        )
    return session


def _runner(
    task: int,
    network: str,
    account: str,
    ipfs: str | None,
    opts: RoundOptions,
    *,
    sheet_timeout: float = 60.0,
    quorum_timeout: float = 600.0,
) -> RoundRunner:
    """The task's round runner; when the task names the aggregator's account as a validator
    too, that validator runs in this process (scoring on ``--validation-data`` if given)."""
    from aggregator.round import RoundRunner
    from aggregator.validator import Validator
    from loraledger.errors import ConfigError

    settings = opts.settings()
    session = _aggregator_session(task, network, account, ipfs)
    validators = session.ledger.validators(task)
    validates = session.address.lower() in {v.lower() for v in validators}
    if opts.validation_data is not None and not validates:
        raise ConfigError(
            f"--validation-data: the aggregator {session.address} is not one of the validators "
            f"of task {task}, so it posts no score sheet",
            hint="held-out data belongs to the task's validators: give it to one of them, "
            f"`loraledger validator run --task {task} --account ... --validation-data "
            f"{opts.validation_data} --model ...`",
        )
    in_process = []
    if validates:
        in_process.append(Validator(session, task, opts.evaluator(), settings))
    return RoundRunner(
        session,
        task,
        settings,
        validators=in_process,
        sheet_timeout=sheet_timeout,
        quorum_timeout=quorum_timeout,
    )


def _print_outcome(session: Session, outcome: RoundOutcome, as_json: bool = False) -> None:
    report = outcome.report
    ledger = session.ledger
    task = ledger.task(outcome.task_id)
    info = ledger.round(outcome.task_id, outcome.round)
    signers = info.signers.bit_count()
    claimable_at = info.finalized_at + task.challenge_window
    if as_json:
        body = {
            "round": outcome.round,
            "state": ledger.round_state(outcome.task_id, outcome.round).name.lower(),
            "report_cid": outcome.report_cid,
            "gas_used": outcome.gas_used,
            "resumed": outcome.resumed,
            "signers": signers,
            "quorum": task.quorum,
            "claimable_at": claimable_at,
            "report": report.model_dump(mode="json"),
        }
        console.print_json(json.dumps(body))
        return
    resumed = " (resumed: finalized before, or from an interrupted run's journal)"
    console.print(
        f"[bold]round {outcome.round}[/] finalized{resumed if outcome.resumed else ''}: "
        f"{outcome.finalization.accepted} accepted, {outcome.finalization.rejected} rejected, "
        f"{tokens(report.rewards.total)} to pay; strategy {report.strategy}; "
        f"signed by {signers} of {len(ledger.validators(outcome.task_id))} validators "
        f"(quorum {task.quorum}); claimable from "
        f"{chain_time(claimable_at, ledger.chain.timestamp())}"
    )
    slashed = {x.node.lower(): x for x in report.slashes}
    table = new_table(
        "node",
        "verdict",
        "reason",
        "examples (weighed)",
        "weight",
        "score",
        "reward (LLT)",
        "slashed (LLT)",
        text=("reason",),
    )
    for s in report.submissions:
        line = report.reward_for(s.node)
        cut = slashed.get(s.node.lower())
        weighed = "" if s.weight_examples in (None, s.num_examples) else f" ({s.weight_examples})"
        table.add_row(
            s.node,
            s.verdict,
            s.reason or "-",
            f"{s.num_examples}{weighed}",
            f"{s.weight:.3f}",
            "-" if s.score is None else f"{s.score:.4g}",
            tokens(line.amount, unit=False) if line else "0",
            tokens(cut.amount, unit=False) if cut else "-",
        )
    for node in report.unrevealed:
        cut = slashed.get(node.lower())
        table.add_row(
            node,
            "unrevealed",
            "unrevealed",
            "-",
            "-",
            "-",
            "0",
            tokens(cut.amount, unit=False) if cut else "-",
        )
    if report.submissions or report.unrevealed:
        console.print(table)
    else:
        console.print(
            "no update was revealed in this round: the global adapter keeps its weights and no "
            "node is paid",
            highlight=False,
        )
    if report.validators:
        validators = new_table("validator", "score sheet", "agreement", "pay (LLT)")
        for v in report.validators:
            validators.add_row(
                v.validator, v.sheet_cid, f"{v.agreement:.3f}", tokens(v.reward, unit=False)
            )
        console.print(validators)
    else:
        console.print("no validator posted a score sheet for this round", highlight=False)
    rule = report.params.get("reward_rule", "claimed")
    console.print(f"reward rule: {rule} ({report.rewards.rule})", highlight=False)
    if "start_eval_loss" in report.metrics and "scored_eval_loss" in report.metrics:
        console.print(
            f"validation loss (the validators' median) {report.metrics['start_eval_loss']:.4f} "
            f"-> {report.metrics['scored_eval_loss']:.4f}"
        )
    console.print(f"global adapter {report.global_cid}; report {outcome.report_cid}")


@app.command("bond")
def bond_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = AggregatorAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Lock the aggregator's bond the task asks (approving the ledger for it first); rounds
    open only once it is posted."""
    from scripts.validator_cli import post_bond_and_report

    post_bond_and_report(_aggregator_session(task, network, account, ipfs), task)


@app.command("withdraw-bond")
def withdraw_bond_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = AggregatorAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Take the aggregator's bond back once the task is over and no round can slash it."""
    from scripts.validator_cli import withdraw_bond_and_report

    withdraw_bond_and_report(_aggregator_session(task, network, account, ipfs), task)


@app.command("open")
def open_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = AggregatorAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Open the next round of a task; nodes can commit until its window closes."""
    session = _aggregator_session(task, network, account, ipfs)
    ledger = session.ledger
    with _bond_hint(task):
        round_, _ = ledger.open_next_round(task, session.signer)
    info = ledger.round(task, round_)
    console.print(
        f"opened round {round_} of task {task} for {info.eligible} eligible node(s); commitments "
        f"accepted until {chain_time(info.deadline, ledger.chain.timestamp())}"
    )


@contextmanager
def _bond_hint(task: int) -> Iterator[None]:
    """The contract's refusal of an aggregator without its bond, with what to do."""
    from chain import errors
    from loraledger.errors import ChainError

    try:
        yield
    except errors.LedgerBondNotPosted as exc:
        raise ChainError(
            f"the aggregator {exc.account} has not posted its bond for task {task}",
            hint=f"`loraledger aggregator bond --task {task}` first",
        ) from None


@app.command("finalize")
@with_round_options
def finalize_command(
    task: int = TaskOption,
    round_: int | None = typer.Option(None, "--round", "-r", help="Round (default: the open one)."),
    wait: bool = typer.Option(
        False, "--wait", help="Wait for the window or every node instead of failing."
    ),
    allow_empty: bool = typer.Option(
        False,
        "--allow-empty",
        help="Finalize a round in which no update was revealed: it pays nothing, keeps the "
        "global adapter and uses up one of the task's rounds (it slashes commitments that "
        "were never revealed).",
    ),
    sheet_timeout: float = SheetTimeoutOption,
    quorum_timeout: float = QuorumTimeoutOption,
    network: str = NetworkOption,
    account: str = AggregatorAccountOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
    *,
    opts: RoundOptions,
) -> None:
    """Verify, aggregate, publish and propose one round's result, and wait until a quorum of
    validators signed it (once: repeating it changes nothing). A round in which no update was
    revealed is refused unless --allow-empty."""
    from loraledger.errors import ChainError

    runner = _runner(
        task,
        network,
        account,
        ipfs,
        opts,
        sheet_timeout=sheet_timeout,
        quorum_timeout=quorum_timeout,
    )
    number = (
        round_
        or runner.session.ledger.open_round(task)
        or runner.session.ledger.task(task).rounds_opened
    )
    if number == 0:
        raise ChainError(
            f"task {task} has no round yet", hint=f"`loraledger aggregator open --task {task}`"
        )
    if wait:
        with console.status(f"waiting for round {number} to close") as status:
            runner.on_wait = status.update
            runner.wait(number)
            runner.on_wait = None
    if not allow_empty:
        _refuse_empty(runner.session, task, number)
    with console.status(f"finalizing round {number}: score sheets, result, signatures"):
        outcome = runner.finalize(number)
    _print_outcome(runner.session, outcome, as_json)


def _refuse_empty(session: Session, task: int, number: int) -> None:
    """Refuse to finalize a closed round that no update was revealed in (one clear line)."""
    from chain.round_state import RoundState
    from loraledger.errors import ChainError

    ledger = session.ledger
    if ledger.round_state(task, number) is not RoundState.CLOSED:
        return  # not ready yet, or decided: `finalize` says which
    info = ledger.round(task, number)
    if info.reveals:
        return
    details = ledger.task(task)
    unrevealed = (
        f"; it would slash the {info.commits} commitment(s) never revealed" if info.commits else ""
    )
    raise ChainError(
        f"round {number} of task {task} has no revealed update: finalizing it pays nothing, "
        f"keeps the adapter's weights and uses up round {number} of {details.max_rounds}"
        f"{unrevealed}",
        hint=f"finalize it anyway with `loraledger aggregator finalize --task {task} "
        f"--allow-empty` (the next round can then open); a round nobody finalizes can be "
        f"abandoned after the task's grace period (`loraledger round abandon --task {task}`), "
        "and its sponsor may then cancel the task",
    )


@app.command("settle")
def settle_command(
    task: int = TaskOption,
    round_: int | None = typer.Option(
        None, "--round", "-r", help="Round (default: the last one opened)."
    ),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between chain polls."),
    network: str = NetworkOption,
    account: str = AggregatorAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Wait until a finalized round's challenge window passes, then make the slashes its
    result names; the next round can then open."""
    from aggregator.round import RoundRunner
    from chain.round_state import RoundState
    from loraledger.errors import ChainError

    session = _aggregator_session(task, network, account, ipfs)
    runner = RoundRunner(session, task)
    number = round_ or session.ledger.task(task).rounds_opened
    state = session.ledger.round_state(task, number)
    if state not in (RoundState.FINALIZED, RoundState.SETTLED):
        raise ChainError(
            f"round {number} of task {task} is {state.name.lower()}: only a finalized round "
            "settles",
            hint=f"finalize it first: `loraledger aggregator finalize --task {task}`",
        )
    info = session.ledger.round(task, number)
    until = info.finalized_at + session.ledger.task(task).challenge_window
    now = session.ledger.chain.timestamp()
    with console.status(f"round {number}: challenge window until {chain_time(until, now)}"):
        settled = runner.settle(number, poll_seconds=poll)
    if not settled:
        raise ChainError(
            f"round {number} of task {task} was challenged during its window and is no longer "
            "finalized",
            hint=f"see `loraledger task show {task}`; finalize it again",
        )
    console.print(f"round {number} of task {task} settled: rewards claimable, slashes made")


@app.command("run")
@with_round_options
def run_command(
    task: int = TaskOption,
    rounds: int | None = typer.Option(
        None, "--rounds", help="Stop after this many rounds (default: until the task is complete)."
    ),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between chain polls."),
    sheet_timeout: float = SheetTimeoutOption,
    quorum_timeout: float = QuorumTimeoutOption,
    network: str = NetworkOption,
    account: str = AggregatorAccountOption,
    ipfs: str | None = IpfsOption,
    confirmations: int = ConfirmationsOption,
    *,
    opts: RoundOptions,
) -> None:
    """Open, wait for, verify, aggregate and propose rounds, see each signed by the validators'
    quorum and settled after its challenge window, until the task is complete."""
    from chain.recovery import outlast
    from chain.round_state import RoundState

    # started while the chain or the IPFS node restarts: wait for them, as the loop does
    runner = outlast(
        lambda: _runner(
            task,
            network,
            account,
            ipfs,
            opts,
            sheet_timeout=sheet_timeout,
            quorum_timeout=quorum_timeout,
        ),
        f"aggregator run of task {task}",
    )
    ledger = runner.session.ledger
    ledger.chain.confirmations = confirmations
    with _bond_hint(task), console.status(f"running task {task}") as status:
        runner.on_wait = lambda text: status.update(f"task {task}: {text}")
        done = runner.run(
            max_rounds=rounds,
            poll_seconds=poll,
            on_round=lambda outcome: _print_outcome(runner.session, outcome),
        )
    settled = sum(1 for o in done if ledger.round_state(task, o.round) is RoundState.SETTLED)
    console.print(
        f"task {task}: {len(done)} round(s) finalized, {settled} settled in this run"
        + ("; the task is complete" if ledger.is_complete(task) else "")
    )


@app.command("status")
def status_command(
    task: int = TaskOption, network: str = NetworkOption, as_json: bool = JsonOption
) -> None:
    """The task's rounds as the chain records them."""
    from chain.deployments import load_deployment
    from chain.events import History

    chain = open_chain(network)
    deployment = load_deployment(chain)
    ledger = deployment.ledger_contract(chain)
    info = ledger.task(task)
    reports = {f.round: f.report_cid for f in History(ledger, deployment.block).finalized(task)}
    rows = []
    for number in range(1, info.rounds_opened + 1):
        r = ledger.round(task, number)
        rows.append(
            {
                "round": number,
                "state": ledger.round_state(task, number).name.lower(),
                "deadline": r.deadline,
                "reveals": r.reveals,
                "accepted": r.accepted,
                "rejected": r.rejected,
                "signers": r.signers.bit_count(),
                "reward_total": str(r.reward_total),
                "claimed": str(r.claimed),
                "report_cid": reports.get(number),
            }
        )
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "task_id": task,
                    "max_rounds": info.max_rounds,
                    "quorum": info.quorum,
                    "rounds": rows,
                }
            )
        )
        return
    table = new_table(
        "round",
        "state",
        "reveals",
        "accepted",
        "rejected",
        "signers",
        "rewards (LLT)",
        "claimed (LLT)",
        "report",
        text=("state",),
    )
    for row in rows:
        state = str(row["state"])
        table.add_row(
            str(row["round"]),
            f"open until {row['deadline']}" if state == "open" else state,
            str(row["reveals"]),
            str(row["accepted"]),
            str(row["rejected"]),
            f"{row['signers']}/{info.quorum}",
            tokens(int(str(row["reward_total"])), unit=False),
            tokens(int(str(row["claimed"])), unit=False),
            str(row["report_cid"] or "-"),
        )
    console.print(
        f"task {task}: {info.rounds_opened} of {info.max_rounds} rounds opened, "
        f"{info.active_nodes} nodes" + (" (cancelled)" if info.cancelled else "")
    )
    console.print(table)
