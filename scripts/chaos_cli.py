"""``loraledger chaos``: a seeded fault campaign on real processes (see :mod:`chaos`)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import get_args

import typer

from loraledger.errors import ConfigError
from loraledger.paths import home
from scripts.console import console, err_console
from scripts.options import JsonOption


def register(app: typer.Typer) -> None:
    app.command("chaos")(chaos_command)


def _faults(text: str | None) -> tuple[str, ...]:
    from chaos.campaign import FaultKind

    if not text:
        return ()
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    known = get_args(FaultKind)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise typer.BadParameter(
            f"unknown fault {', '.join(unknown)}: use {', '.join(known)}", param_hint="--faults"
        )
    return names


def _gap(text: str) -> tuple[float, float]:
    try:
        low, _, high = text.partition(",")
        return float(low), float(high or low)
    except ValueError:
        raise typer.BadParameter(
            f"expected LOW,HIGH seconds such as 4,12, got {text!r}", param_hint="--gap"
        ) from None


def chaos_command(
    chain: str = typer.Option("ganache", "--chain", help="ganache or anvil (started fresh)."),
    ipfs: str = typer.Option(
        "embedded", "--ipfs", help="embedded (a folder) or daemon (a js-ipfs node, started here)."
    ),
    nodes: int = typer.Option(3, "--nodes", help="Training nodes (each its own process)."),
    rounds: int = typer.Option(3, "--rounds", help="Rounds of the task."),
    steps: int = typer.Option(2, "--steps", help="Optimizer steps per node and round."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fault schedule and the training."),
    faults: str | None = typer.Option(
        None,
        "--faults",
        help="Fault kinds, comma-separated: aggregator-kill, node-kill, claim-race, ipfs-restart "
        "(--ipfs daemon), chain-restart, reorg (--chain anvil), claim-kill (default: every "
        "kind the chain and store allow).",
    ),
    gap: str = typer.Option("4,12", "--gap", help="Seconds between faults: LOW,HIGH."),
    max_faults: int | None = typer.Option(
        None, "--max-faults", help="Stop injecting after this many faults."
    ),
    duration: float | None = typer.Option(
        None, "--duration", help="Stop injecting after this many seconds (the task then ends)."
    ),
    rpc_fault_rate: float = typer.Option(
        0.0,
        "--rpc-fault-rate",
        help="Share of JSON-RPC requests a proxy drops, resets, duplicates or delays.",
    ),
    confirmations: int = typer.Option(
        0,
        "--confirmations",
        min=0,
        help="--confirmations of aggregator run and node run (blocks on top of what they act on).",
    ),
    baseline: bool = typer.Option(
        True,
        "--baseline/--no-baseline",
        help="Also run without faults and require the same results and rewards.",
    ),
    timeout: float = typer.Option(900.0, "--timeout", help="The most seconds one run may take."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for README.md and campaign.json (default: "
        "$LORALEDGER_HOME/chaos/<time>/report).",
    ),
    json_output: bool = JsonOption,
) -> None:
    """Run a randomized, seeded fault campaign on real processes and check what must hold.

    Starts a fresh chain, a store, `aggregator run` and one `node run` per node as their own
    processes; kills them (-9) at random moments, restarts the chain process and the IPFS
    daemon, reorganises the chain (anvil) and spoils JSON-RPC requests, restarting what was
    hit. Then every node claims (a claim is killed once and run again). It checks that every
    round was finalized once, no update was lost, nobody was paid twice, no process exited on
    its own, the audit passes, and the results and rewards equal an uninterrupted run with the
    same inputs. Exit 1 if any of that fails. docs/operating.md explains the report.
    """
    from chaos.campaign import CampaignConfig, run_campaign
    from chaos.report import write_report

    if chain not in ("ganache", "anvil"):
        raise typer.BadParameter(f"use ganache or anvil, got {chain!r}", param_hint="--chain")
    if ipfs not in ("embedded", "daemon"):
        raise typer.BadParameter(f"use embedded or daemon, got {ipfs!r}", param_hint="--ipfs")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = home() / "chaos" / stamp
    config = CampaignConfig(
        chain=chain,
        ipfs=ipfs,
        nodes=nodes,
        rounds=rounds,
        steps=steps,
        seed=seed,
        faults=_faults(faults),
        gap_s=_gap(gap),
        max_faults=max_faults,
        duration_s=duration,
        rpc_fault_rate=rpc_fault_rate,
        confirmations=confirmations,
        baseline=baseline,
        timeout_s=timeout,
        workdir=workdir,
    )
    command = "loraledger " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "loraledger chaos"
    say = (lambda _: None) if json_output else (lambda line: err_console.print(line))
    result = run_campaign(config, command=command, say=say)
    folder = out or workdir / "report"
    try:
        markdown, data = write_report(result, folder)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {folder}: {exc}") from exc
    if json_output:
        console.print_json(json.dumps(result.to_json()))
    else:
        console.print(f"report: {markdown} ({data.name} next to it); state and logs: {workdir}")
        for problem in result.problems():
            console.print(f"[red]problem:[/red] {problem}")
        console.print("campaign passed" if result.ok else "[red]campaign failed[/red]")
    if not result.ok:
        raise typer.Exit(1)
