"""A campaign's report as Markdown (``docs/results/chaos/README.md``) and JSON."""

from __future__ import annotations

import json
import platform
import statistics
from collections import defaultdict
from pathlib import Path

from chaos.campaign import CampaignResult, RunResult
from loraledger.paths import write_bytes_atomic


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def _faults_table(run: RunResult) -> list[str]:
    by_kind: dict[str, list[float]] = defaultdict(list)
    restarts: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for fault in run.faults:
        counts[fault.kind] += 1
        if fault.recovery_s is not None:
            by_kind[fault.kind].append(fault.recovery_s)
        if fault.restart_s is not None:
            restarts[fault.kind].append(fault.restart_s)
    lines = [
        "| fault | injected | restart s (median / max) | recovery s (median / max) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind in sorted(counts):
        lines.append(
            f"| {kind} | {counts[kind]} | {_seconds(restarts[kind])} | {_seconds(by_kind[kind])} |"
        )
    if run.rpc_faults:
        spoiled = ", ".join(f"{k} {v}" for k, v in sorted(run.rpc_faults.items()))
        lines.append(f"| JSON-RPC requests spoiled by the proxy | {sum(run.rpc_faults.values())}")
        lines[-1] += f" | {spoiled} | - |"
    return lines


def _rounds_table(result: CampaignResult) -> list[str]:
    base = {r.round: r for r in result.baseline.rounds} if result.baseline else {}
    lines = [
        "| round | finalized (times) | committed / revealed / in report | finalized at s "
        "(chaos / uninterrupted) | same result as uninterrupted |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for r in result.chaos.rounds:
        other = base.get(r.round)
        same = "-" if other is None else ("yes" if r.result() == other.result() else "**no**")
        at = f"{r.finalized_after_s if r.finalized_after_s is not None else '-'}"
        if other is not None:
            at += f" / {other.finalized_after_s if other.finalized_after_s is not None else '-'}"
        lines.append(
            f"| {r.round} | {r.finalizations} | {r.committed} / {r.revealed} / {r.reported} "
            f"| {at} | {same} |"
        )
    return lines


def render_markdown(result: CampaignResult) -> str:
    """The report: what was injected, what held, each fault with its recovery."""
    chaos, config = result.chaos, result.config
    verdict = "**passed**" if result.ok else "**FAILED**"
    lines = [
        "# Fault campaign",
        "",
        f"Verdict: {verdict}. Command: `{result.command}`",
        "",
        f"Chain {config['chain']}, store {config['ipfs']}, {config['nodes']} nodes, "
        f"{config['rounds']} rounds, seed {config['seed']}, faults drawn from "
        f"{', '.join(config['faults'] or ['every kind the chain and store allow'])}, a pause of "
        f"{config['gap_s'][0]}-{config['gap_s'][1]} s between faults, "
        f"JSON-RPC fault rate {config['rpc_fault_rate']}, "
        f"{config['confirmations']} confirmations. "
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}.",
        "",
        "## What must hold",
        "",
        "| check | result |",
        "| --- | --- |",
        f"| every round finalized exactly once | "
        f"{'yes' if all(r.finalizations == 1 for r in chaos.rounds) else '**no**'} |",
        f"| updates lost (committed and not revealed, or revealed and not in the report) | "
        f"{chaos.updates_lost} |",
        f"| double payments | {chaos.double_payments} |",
        f"| every node paid exactly its reports' rewards | "
        f"{'yes' if all(chaos.paid.get(n, 0) == a for n, a in chaos.rewards.items()) else '**no**'}"
        " |",
        f"| processes that exited on their own | {len(chaos.unexpected_exits)} |",
        f"| logs with a traceback | {len(chaos.tracebacks)} |",
        f"| `loraledger audit verify` | {'pass' if chaos.audit_ok else '**fail**'} |",
        "| results and rewards equal to an uninterrupted run | "
        + (
            "not compared (--no-baseline)"
            if result.baseline is None
            else ("yes" if not result.mismatches else "**no**")
        )
        + " |",
        f"| wall time (chaos / uninterrupted) | {chaos.wall_s} s"
        + (f" / {result.baseline.wall_s} s" if result.baseline else "")
        + " |",
        "",
    ]
    problems = result.problems()
    if problems:
        lines += ["Problems:", "", *[f"- {p}" for p in problems], ""]
    lines += ["## Faults by kind", "", *_faults_table(chaos), ""]
    lines += [
        "Restart: how long bringing the process (or chain, or daemon) back took. Recovery: from "
        "then until the party hit had a transaction mined (for the chain, the daemon and "
        "reorganisations: anyone), which includes waiting for the others.",
        "",
        "## Rounds",
        "",
        *_rounds_table(result),
        "",
        "## Every fault",
        "",
        "| t (s) | fault | target | restart s | recovery s | detail |",
        "| ---: | --- | --- | ---: | ---: | --- |",
    ]
    for f in chaos.faults:
        detail = f.detail.replace("|", "\\|")
        restart = "-" if f.restart_s is None else f.restart_s
        recovery = "-" if f.recovery_s is None else f.recovery_s
        lines.append(f"| {f.at_s} | {f.kind} | {f.target} | {restart} | {recovery} | {detail} |")
    return "\n".join(lines) + "\n"


def write_report(result: CampaignResult, folder: Path) -> tuple[Path, Path]:
    """``README.md`` and ``campaign.json`` in ``folder`` (written whole, or not at all)."""
    markdown, data = folder / "README.md", folder / "campaign.json"
    write_bytes_atomic(data, (json.dumps(result.to_json(), indent=2) + "\n").encode())
    write_bytes_atomic(markdown, render_markdown(result).encode())
    return markdown, data
