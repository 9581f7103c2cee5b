"""``loraledger audit``: rebuild a task's history and re-check its rounds, from any process.

Needs only what anyone has: the deployment record for the chain (``loraledger deploy`` wrote
it; copy ``~/.loraledger/deployments/<chain id>.json`` to audit from another machine), the
chain's RPC (``--network``) and a store holding the pinned content (``--ipfs``). Nothing the
aggregator kept locally is read. See docs/audit.md for what each check proves.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from loraledger.display import chain_time, tokens
from scripts.console import account, console, ident, wide
from scripts.console import table as new_table
from scripts.options import (
    IpfsOption,
    JsonOption,
    NetworkOption,
    TaskOrOption,
    dev_labels,
    one_task,
    open_cli_session,
)
from scripts.options import TaskArgument as OptionalTaskArgument

if TYPE_CHECKING:
    from aggregator.audit import Auditor, RoundView

app = typer.Typer(no_args_is_help=True)

TaskArgument = typer.Argument(..., help="Task id.")


@app.callback()
def _group() -> None:
    """Rebuild tasks and rounds from chain events and re-check every round independently."""


def open_auditor(network: str, ipfs: str | None) -> Auditor:
    """An :class:`~aggregator.audit.Auditor` for the deployment recorded for ``network``."""
    from aggregator.audit import Auditor

    session = open_cli_session(network, ipfs)
    return Auditor(session.ledger, session.history, session.store)


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def _state(r: RoundView) -> str:
    """A round's state as the contract decides it, and how often a challenge voided it."""
    if r.finalized:
        state = "finalized, settled" if r.state == "settled" else "finalized, challengeable"
    else:
        state = r.state or f"open until {chain_time(r.deadline)}"
    return state + (f" (voided {r.epoch}x)" if r.epoch else "")


@app.command("tasks")
def tasks_command(
    network: str = NetworkOption, ipfs: str | None = IpfsOption, as_json: bool = JsonOption
) -> None:
    """Every task, rebuilt from its events and the contract's views."""
    from aggregator.audit import to_json

    auditor = open_auditor(network, ipfs)
    tasks = auditor.tasks()
    if as_json:
        console.print_json(json.dumps({"tasks": to_json(tasks)}))
        return
    full = wide()
    table = new_table(
        "task",
        "sponsor",
        *(["base model hash"] if full else []),
        "rounds",
        "nodes",
        "funded (LLT)",
        "reserved (LLT)",
        "paid (LLT)",
        "state",
        text=(
            "rounds",
            "nodes",
            "state",
        ),
    )
    labels = dev_labels(auditor.ledger.chain.network)
    for t in tasks:
        table.add_row(
            str(t.task_id),
            account(t.sponsor, labels),
            *([t.base_model_hash] if full else []),
            f"{t.rounds_finalized} final / {t.rounds_opened} opened / {t.max_rounds}",
            f"{t.active_nodes} active ({t.nodes_joined} joined)",
            tokens(t.funded, unit=False),
            tokens(t.reserved, unit=False),
            tokens(t.paid, unit=False),
            "complete" if t.complete else "running",
        )
    console.print(table if tasks else "no tasks yet")


@app.command("rounds")
def rounds_command(
    task: int | None = OptionalTaskArgument,
    task_option: int | None = TaskOrOption,
    network: str = NetworkOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
) -> None:
    """Per round: state, submitted / accepted / rejected (with reasons), eval loss of the
    aggregate (the validators' median), rewards, report CID; and the epsilon its report states
    when the task has a privacy policy or an update states one: under node-level DP what the
    task's global adapters spent through the round, otherwise the most an accepted update
    states it spent (--json: epsilon_total and epsilon_max_update, null when absent)."""
    from aggregator.audit import to_json

    task_id = one_task(task, task_option)
    history = open_auditor(network, ipfs).history_of(task_id)
    rounds = [detail.round for detail in history.rounds]
    privacy = history.task.privacy
    if as_json:
        body = {"task_id": task_id, "privacy": privacy.as_json(), "rounds": to_json(rounds)}
        console.print_json(json.dumps(body))
        return
    full = wide()
    shown = history.epsilon_shown
    table = new_table(
        "round",
        "state",
        "submitted / accepted / rejected",
        "reasons",
        "eval loss",
        *([f"epsilon ({shown})"] if shown else []),
        "reserved (LLT)",
        "claimed (LLT)",
        *(["report"] if full else []),
        text=(
            "state",
            "reasons",
        ),
    )
    for r in rounds:
        reasons = ", ".join(f"{k} x{v}" for k, v in r.reasons.items()) or "-"
        epsilon = history.epsilon(r)
        table.add_row(
            str(r.round),
            _state(r),
            f"{r.submitted}/{r.accepted}/{r.rejected}",
            reasons if not r.report_error else "report unreadable",
            _loss(r.global_eval_loss if r.global_eval_loss is not None else r.scored_eval_loss),
            *([f"{epsilon:.3f}" if epsilon is not None else "-"] if shown else []),
            tokens(r.reward_total, unit=False),
            tokens(r.claimed, unit=False),
            *([r.report_cid or "-"] if full else []),
        )
    if privacy.required:
        console.print(f"privacy: {privacy.describe()}", highlight=False)
    console.print(table if rounds else f"task {task_id} has no rounds yet")


@app.command("round")
def round_command(
    task: int = TaskArgument,
    round: int = typer.Argument(..., metavar="ROUND", help="Round number."),
    network: str = NetworkOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
) -> None:
    """Every submission of a round: commitment, verdict with reason, weight, reward, claimed."""
    from aggregator.audit import to_json

    auditor = open_auditor(network, ipfs)
    detail = auditor.round_detail(task, round)
    if as_json:
        console.print_json(json.dumps(to_json(detail)))
        return
    r = detail.round
    console.print(
        f"[bold]task {task} round {round}[/]: {_state(r)}"
        + (f", report {r.report_cid}" if r.report_cid else "")
    )
    if r.validators:
        console.print(
            "validators (agreement, pay): "
            + ", ".join(
                f"{v.validator} ({v.agreement:.3f}, {tokens(v.reward)}"
                + (", signed)" if v.signed else ")")
                for v in r.validators
            ),
            highlight=False,
        )
    if r.report_error:
        console.print(f"[red]report unreadable:[/] {r.report_error}")
    # narrow terminals: the digest stays in --json, each verdict's detail goes under the table
    full = wide()
    private = any(s.epsilon is not None for s in detail.submissions)
    table = new_table(
        "node",
        "cid",
        *(["digest"] if full else []),
        "examples",
        "verdict",
        "reason",
        *(["detail"] if full else []),
        "weight",
        *(["epsilon"] if private else []),
        "reward (LLT)",
        "claimed (LLT)",
        text=(
            "reason",
            "detail",
        ),
    )
    labels = dev_labels(auditor.ledger.chain.network)
    for s in detail.submissions:
        table.add_row(
            account(s.node, labels),
            ident(s.cid),
            *([s.digest] if full else []),
            str(s.num_examples),
            s.verdict or "-",
            s.reason or "-",
            *([s.detail or "-"] if full else []),
            f"{s.weight:.3f}" if s.weight is not None else "-",
            *([f"{s.epsilon:.3f}" if s.epsilon is not None else "-"] if private else []),
            tokens(s.reward, unit=False),
            "yes" if s.claimed else "no",
        )
    console.print(table)
    if not full:
        for s in detail.submissions:
            if s.detail:
                console.print(f"{account(s.node, labels)}: {s.detail}", highlight=False)


@app.command("verify")
def verify_command(
    task: int = TaskArgument,
    round: int | None = typer.Argument(
        None, metavar="[ROUND]", help="Round (default: every finalized round)."
    ),
    network: str = NetworkOption,
    ipfs: str | None = IpfsOption,
    atol: float = typer.Option(
        1e-5, "--atol", help="Absolute tolerance of the re-aggregation (see the command help)."
    ),
    rtol: float = typer.Option(
        1e-4, "--rtol", help="Relative tolerance of the re-aggregation (see the command help)."
    ),
    dtype: str | None = typer.Option(
        None,
        "--dtype",
        help="Re-aggregate in float32 or float64 instead of the dtype each report records.",
    ),
    gpu: bool = typer.Option(False, "--gpu", help="Re-aggregate on CUDA (CPU by default)."),
    as_json: bool = JsonOption,
) -> None:
    """Re-check finalized rounds independently; exit 0 only if every check holds.

    Checks per round: the report is the one whose CID is on chain; it lists exactly the
    round's on-chain commitments and counts; every accepted update fetches and matches its
    digest; re-running the aggregation from the accepted updates (in the compute dtype the
    report records) reproduces the published global adapter, whose sha256 is the on-chain
    digest: each LoRA module's weight change scale*B@A within atol + rtol * its norm (default
    1e-5 + 1e-4), the factors element by element where the strategy makes them unique; the
    reward table follows the rule, its Merkle root equals the report's and the chain's, every
    proof verifies; the claims on chain match the table. Without ROUND, also the task's totals
    (reserved, paid, funded). docs/audit.md says what is bit-identical and what is within
    tolerance.
    """
    from aggregator.device import select_compute
    from aggregator.reproduce import DTYPES, Tolerance

    if dtype is not None and dtype not in DTYPES:
        raise typer.BadParameter(
            f"{dtype!r} is not one of {', '.join(DTYPES)}", param_hint="--dtype"
        )
    auditor = open_auditor(network, ipfs)
    auditor.tolerance = Tolerance(atol=atol, rtol=rtol)
    if dtype is not None:
        auditor.compute = select_compute(gpu, DTYPES[dtype])
    elif gpu:
        auditor.device = select_compute(True).device
    if as_json:
        checks = auditor.verify(task, round)
    else:
        with console.status(f"auditing task {task}"):
            checks = auditor.verify(task, round)
    ok = all(c.ok for c in checks)
    if as_json:
        body = {
            "task_id": task,
            "round": round,
            "ok": ok,
            "tolerance": {"atol": atol, "rtol": rtol},
            "checks": [c.to_json() for c in checks],
        }
        console.print_json(json.dumps(body))
    else:
        table = new_table(
            "round",
            "check",
            "result",
            "detail",
            text=(
                "check",
                "result",
                "detail",
            ),
        )
        style = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}
        for c in checks:
            table.add_row(
                "-" if c.round is None else str(c.round), c.name, style[c.status], c.detail
            )
        console.print(table)
        failed = [c for c in checks if not c.ok]
        if failed:
            for c in failed:
                where = f"round {c.round}" if c.round is not None else f"task {task}"
                console.print(
                    f"[bold red]FAIL[/] {where} {c.name}: {c.detail}",
                    soft_wrap=True,
                    highlight=False,
                )
        else:
            console.print(f"[green]task {task}: all {len(checks)} checks hold[/]")
    if not ok:
        raise typer.Exit(code=1)
