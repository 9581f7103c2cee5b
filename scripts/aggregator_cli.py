"""``loraledger aggregator``: the aggregator role, as a loop (``run``) or one step at a time.

``run`` opens rounds, waits for each window (or every joined node), verifies the updates
against their commitments, aggregates, publishes the global adapter and the round report,
and finalizes on chain, until the task is complete. ``open`` and ``finalize`` do one step;
``status`` shows the rounds. Every command is safe to repeat or to restart after a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from scripts.console import console, err_console
from scripts.options import (
    IpfsOption,
    JsonOption,
    NetworkOption,
    format_amount,
    open_chain,
    open_cli_session,
    signer,
)

if TYPE_CHECKING:
    from aggregator.round import RoundOutcome, RoundRunner

app = typer.Typer(no_args_is_help=True)

TaskOption = typer.Option(..., "--task", "-t", help="Task id.")
AggregatorAccountOption = typer.Option(
    "dev:1",
    "--account",
    "-a",
    envvar="LORALEDGER_AGGREGATOR_ACCOUNT",
    help="An account holding AGGREGATOR_ROLE (dev:1 on local chains); dev:N, env:VAR or "
    "keystore:PATH.",
)
StrategyOption = typer.Option(
    "fedavg",
    "--strategy",
    "-s",
    help="fedavg, fedavgm, fedadam, fedyogi, clip, median, trimmed-mean, krum, flexlora or "
    "zero-pad.",
)


@app.callback()
def _group() -> None:
    """Verify, aggregate, publish and finalize rounds (the aggregator role)."""


def _runner(
    task: int,
    network: str,
    account: str,
    ipfs: str | None,
    strategy: str,
    *,
    clip_norm: float | None = None,
    trim_ratio: float = 0.1,
    byzantine: int = 1,
    server_lr: float | None = None,
    outlier_threshold: float = 3.5,
    max_rank: int = 64,
    validation_data: Path | None = None,
    model: str | None = None,
    max_loss_increase: float = 0.5,
    max_length: int = 256,
    fetch_workers: int = 4,
    gpu: bool | None = None,
    reward_rule: str | None = None,
    legacy_rewards: bool = False,
) -> RoundRunner:
    from pydantic import ValidationError

    from aggregator.combine import StrategyConfig
    from aggregator.device import select_compute
    from aggregator.round import RoundRunner, RoundSettings
    from aggregator.stats import OutlierPolicy
    from aggregator.verify import VerifyPolicy
    from loraledger.errors import ConfigError

    try:
        config = StrategyConfig(
            name=strategy,
            clip_norm=clip_norm,
            trim_ratio=trim_ratio,
            byzantine=byzantine,
            server_lr=server_lr,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            f"--{'-'.join(str(p) for p in first['loc']) or 'strategy'}: {first['msg']}"
        ) from None
    policy = VerifyPolicy(
        max_rank=max_rank,
        outliers=OutlierPolicy(threshold=outlier_threshold) if outlier_threshold > 0 else None,
        max_loss_increase=max_loss_increase,
        fetch_workers=fetch_workers,
    )
    evaluator = None
    if validation_data is not None:
        evaluator = _evaluator(validation_data, model, max_length)
    elif model is not None:
        raise ConfigError(
            "--model is used with --validation-data", hint="give the validation data to evaluate on"
        )
    session = open_cli_session(network, ipfs, account)
    if legacy_rewards:
        settings = RoundSettings.legacy(policy, strategy=config, compute=select_compute(gpu))
    else:
        try:
            settings = RoundSettings(
                strategy=config, verify=policy, compute=select_compute(gpu), reward_rule=reward_rule
            )
        except ConfigError as exc:
            raise ConfigError(f"--reward-rule: {exc}") from None
    if evaluator is None and settings.reward_rule in (None, "examples"):
        err_console.print(
            "[yellow]no --validation-data: rewards follow the examples each node claims (capped "
            "at the round's median claim), not measured contribution[/]"
        )
    return RoundRunner(session, task, settings, evaluator=evaluator)


def _evaluator(path: Path, model: str | None, max_length: int):
    from fl_node.data import load_examples
    from fl_node.evaluate import AdapterEvaluator
    from fl_node.model import ModelConfig, load_base_model
    from loraledger.errors import ConfigError

    if model is None:
        raise ConfigError(
            "--validation-data needs --model (the task's base model: smollm2, a folder or a hub id)"
        )
    examples = load_examples(path)
    with console.status(f"loading {model} for validation"):
        loaded = load_base_model(ModelConfig(source=model))
    return AdapterEvaluator(loaded, examples, max_length=max_length)


def _options(command):
    """The strategy and verification options ``run`` and ``finalize`` share."""
    import functools
    import inspect

    def options(
        strategy: str = StrategyOption,
        clip_norm: float | None = typer.Option(
            None, "--clip-norm", help="clip: largest update norm (default: the round's median)."
        ),
        trim_ratio: float = typer.Option(
            0.1, "--trim-ratio", help="trimmed-mean: fraction dropped per side."
        ),
        byzantine: int = typer.Option(
            1, "--byzantine", help="krum: number of attackers tolerated (needs 2f+3 updates)."
        ),
        server_lr: float | None = typer.Option(
            None, "--server-lr", help="fedavgm/fedadam/fedyogi: server learning rate."
        ),
        outlier_threshold: float = typer.Option(
            3.5,
            "--outlier-threshold",
            help="Reject updates whose norm's robust z-score exceeds this (0: off).",
        ),
        max_rank: int = typer.Option(
            64, "--max-rank", help="Largest LoRA rank accepted from a node."
        ),
        validation_data: Path | None = typer.Option(
            None,
            "--validation-data",
            help="Held-out examples (JSON/JSONL/CSV/folder) to score every update and the new "
            "adapter on.",
        ),
        model: str | None = typer.Option(
            None,
            "--model",
            help="The task's base model for validation: smollm2, a folder or a hub id.",
        ),
        max_loss_increase: float = typer.Option(
            0.5,
            "--max-loss-increase",
            help="With validation: reject an update whose loss is this much (fraction) worse than "
            "the start adapter's (non-IID nodes specialise: honest ones measured up to 30% "
            "worse).",
        ),
        max_length: int = typer.Option(256, "--max-length", help="Validation: tokens per example."),
        fetch_workers: int = typer.Option(
            4, "--fetch-workers", help="Updates fetched and verified at once."
        ),
        gpu: bool | None = typer.Option(
            None, "--gpu/--cpu", help="Aggregate on CUDA or the CPU (default: CUDA when present)."
        ),
        reward_rule: str | None = typer.Option(
            None,
            "--reward-rule",
            help="contribution (scores on --validation-data; the default with it), examples "
            "(claims capped at the median; the default without) or claimed (the old rule).",
        ),
        legacy_rewards: bool = typer.Option(
            False,
            "--legacy-rewards",
            help="The rules before contribution scoring: claimed examples, no cap, no free-rider "
            "or copy screening, no slashing (to compare; not for real tasks).",
        ),
    ) -> dict:
        return dict(locals())

    own = [p for p in inspect.signature(command).parameters.values() if p.name != "opts"]
    extra = list(inspect.signature(options).parameters.values())

    @functools.wraps(command)
    def wrapper(**kwargs):
        opts = options(**{p.name: kwargs.pop(p.name) for p in extra})
        command(opts=opts, **kwargs)

    params = own + extra
    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # typer must read the merged signature
    return wrapper


def _print_outcome(outcome: RoundOutcome, as_json: bool = False) -> None:
    report = outcome.report
    if as_json:
        body = {
            "round": outcome.round,
            "report_cid": outcome.report_cid,
            "gas_used": outcome.gas_used,
            "resumed": outcome.resumed,
            "report": report.model_dump(mode="json"),
        }
        console.print_json(json.dumps(body))
        return
    resumed = (
        " (already finalized)"
        if outcome.gas_used is None
        else " (from the journal of an interrupted run)"
        if outcome.resumed
        else ""
    )
    console.print(
        f"[bold]round {outcome.round}[/] finalized{resumed}: "
        f"{outcome.finalization.accepted} accepted, {outcome.finalization.rejected} rejected, "
        f"{format_amount(report.rewards.total)} tokens to pay; strategy {report.strategy}"
    )
    slashed = {x.node.lower(): x for x in report.slashes}
    table = Table(
        "node", "verdict", "reason", "examples (weighed)", "weight", "score", "reward", "slashed"
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
            format_amount(line.amount) if line else "0",
            format_amount(cut.amount) if cut else "-",
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
            format_amount(cut.amount) if cut else "-",
        )
    console.print(table)
    rule = report.params.get("reward_rule", "claimed")
    console.print(f"reward rule: {rule} ({report.rewards.rule})", highlight=False)
    if "global_eval_loss" in report.metrics:
        console.print(
            f"validation loss {report.metrics.get('start_eval_loss', float('nan')):.4f} -> "
            f"{report.metrics['global_eval_loss']:.4f}"
        )
    console.print(f"global adapter {report.global_cid}; report {outcome.report_cid}")


@app.command("open")
def open_command(
    task: int = TaskOption, network: str = NetworkOption, account: str = AggregatorAccountOption
) -> None:
    """Open the next round of a task; nodes can submit until its window closes."""
    from chain.deployments import load_deployment

    chain = open_chain(network)
    ledger = load_deployment(chain).ledger_contract(chain)
    round_, _ = ledger.open_next_round(task, signer(account, chain.network))
    info = ledger.round(task, round_)
    console.print(
        f"opened round {round_} of task {task}; submissions accepted until chain time "
        f"{info.deadline}"
    )


@app.command("finalize")
@_options
def finalize_command(
    task: int = TaskOption,
    round_: int | None = typer.Option(None, "--round", "-r", help="Round (default: the open one)."),
    wait: bool = typer.Option(
        False, "--wait", help="Wait for the window or every node instead of failing."
    ),
    network: str = NetworkOption,
    account: str = AggregatorAccountOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
    *,
    opts: dict,
) -> None:
    """Verify, aggregate, publish and finalize one round (once: repeating it changes nothing)."""
    from loraledger.errors import ChainError

    runner = _runner(task, network, account, ipfs, **opts)
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
        with console.status(f"waiting for round {number} to close"):
            runner.wait(number)
    _print_outcome(runner.finalize(number), as_json)


@app.command("run")
@_options
def run_command(
    task: int = TaskOption,
    rounds: int | None = typer.Option(
        None, "--rounds", help="Stop after this many rounds (default: until the task is complete)."
    ),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between chain polls."),
    network: str = NetworkOption,
    account: str = AggregatorAccountOption,
    ipfs: str | None = IpfsOption,
    *,
    opts: dict,
) -> None:
    """Open, wait for, verify, aggregate, publish and finalize rounds until the task is complete."""
    runner = _runner(task, network, account, ipfs, **opts)
    done = runner.run(max_rounds=rounds, poll_seconds=poll, on_round=_print_outcome)
    console.print(
        f"task {task}: {len(done)} round(s) finalized in this run"
        + ("; the task is complete" if runner.session.ledger.is_complete(task) else "")
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
                "finalized": r.finalized,
                "deadline": r.deadline,
                "submissions": r.submissions,
                "accepted": r.accepted,
                "rejected": r.rejected,
                "reward_total": str(r.reward_total),
                "claimed": str(r.claimed),
                "report_cid": reports.get(number),
            }
        )
    if as_json:
        console.print_json(
            json.dumps({"task_id": task, "max_rounds": info.max_rounds, "rounds": rows})
        )
        return
    table = Table(
        "round", "state", "submissions", "accepted", "rejected", "rewards", "claimed", "report"
    )
    for row in rows:
        table.add_row(
            str(row["round"]),
            "finalized" if row["finalized"] else f"open until {row['deadline']}",
            str(row["submissions"]),
            str(row["accepted"]),
            str(row["rejected"]),
            format_amount(int(row["reward_total"])),
            format_amount(int(row["claimed"])),
            row["report_cid"] or "-",
        )
    console.print(
        f"task {task}: {info.rounds_opened} of {info.max_rounds} rounds opened, "
        f"{info.active_nodes} nodes"
    )
    console.print(table)
