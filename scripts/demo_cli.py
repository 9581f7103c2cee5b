"""``loraledger demo``: the whole federated story in one command (see :mod:`demo.run`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from loraledger.display import tokens
from scripts.console import console, err_console
from scripts.console import table as new_table
from scripts.options import IpfsOption, JsonOption, StrategyCheck


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command(
    network: str = typer.Option(
        "embedded",
        "--network",
        "-n",
        help="embedded (in-process), ganache or anvil (started if not running), or a JSON-RPC URL.",
    ),
    ipfs: str | None = IpfsOption,
    nodes: int = typer.Option(
        4, "--nodes", help="Honest training nodes (each a non-IID shard of the bundled data)."
    ),
    rounds: int = typer.Option(3, "--rounds", help="Federated rounds."),
    malicious: int | None = typer.Option(
        None,
        "--malicious",
        help="Extra attacking nodes, cycling over --attack (default: one per attack named); "
        "also turns --liars on.",
    ),
    attack: str | None = typer.Option(
        None,
        "--attack",
        help="Attacks of the malicious nodes, comma-separated: inflate, zero, noise, sybil, copy, "
        "frontrun, malformed (on the pool), poison, replay, mismatch (default with --malicious: "
        "poison,replay,mismatch).",
    ),
    validators: int = typer.Option(
        3,
        "--validators",
        help="The task's validators, each scoring on its own held-out data (1 to 5).",
    ),
    quorum: int | None = typer.Option(
        None,
        "--quorum",
        help="Validator signatures a result needs (default: a strict majority).",
    ),
    liars: bool | None = typer.Option(
        None,
        "--liars/--no-liars",
        help="A lying aggregator (it pays itself) and one lying validator (it signs anything "
        "and scores a crony up) (default: on with --malicious).",
    ),
    legacy_rewards: bool = typer.Option(
        False,
        "--legacy-rewards",
        help="The reward rules before contribution scoring (claimed examples), to compare.",
    ),
    as_json: bool = JsonOption,
    tiny: bool = typer.Option(
        False,
        "--tiny",
        help="A tiny randomly initialised model (under a minute) instead of SmolLM2.",
    ),
    model: str = typer.Option(
        "smollm2", "--model", help="Base model: smollm2 (offline), a folder or a hub id."
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Training steps per node and round (default 6; --tiny 4)."
    ),
    strategy: str = typer.Option(
        "flexlora",
        "--strategy",
        help="Aggregation strategy (see `aggregator run --help`).",
        callback=StrategyCheck,
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Where the reports and summary go (default $LORALEDGER_HOME/demo/<time>).",
    ),
) -> None:
    """Deploy, fund a task, train N nodes for R rounds, aggregate, claim every reward, audit.

    Defaults: 4 nodes with LoRA ranks 8/4 on SmolLM2-135M, 3 validators, 3 rounds, about 5-10
    minutes on 2 CPU cores. Ends with a table per round, per node and per party (aggregator and
    validators); exits 1 if the audit finds anything wrong.
    """
    from chain import local
    from chain.network import connect, parse_network
    from demo.attacks import parse_attacks
    from demo.run import DemoConfig, run_demo
    from fl_node.model import ModelConfig, create_tiny_model, load_base_model
    from ipfs import open_store
    from loraledger.errors import ChainError
    from loraledger.paths import home

    attacks = parse_attacks(attack) if attack else ()
    if liars is None:
        liars = malicious is not None
    if malicious is None:
        malicious = len(attacks)
    config = DemoConfig(
        nodes=nodes,
        rounds=rounds,
        malicious=malicious,
        attacks=attacks,
        validators=validators,
        quorum=quorum,
        liars=liars,
        legacy_rewards=legacy_rewards,
        strategy=strategy,
        steps=steps or (4 if tiny else 6),
        **(
            {
                "task_rank": 4,
                "ranks": (4, 2),
                "max_length": 64,
                "batch_size": 2,
                "learning_rate": 5e-3,
            }
            if tiny
            else {}
        ),
    )
    say = err_console if as_json else console  # with --json, stdout holds the JSON alone
    out_dir = out or home() / "demo" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = parse_network(network)
    try:
        chain = connect(spec)
    except ChainError:
        if spec.kind not in ("ganache", "anvil"):
            raise
        with say.status(f"starting {spec.kind}"):  # the local chain it names, on its port
            local.start(spec.kind, port=int(str(spec.url).rsplit(":", 1)[1]))
        chain = connect(spec)
    store = open_store(ipfs)
    with say.status("loading the base model"):
        if tiny:
            from fl_node.data import sample_examples

            corpus = [m.content for e in sample_examples() for m in e.messages]
            folder = create_tiny_model(out_dir / "tiny-model", corpus)
            loaded = load_base_model(ModelConfig(source=str(folder)))
        else:
            loaded = load_base_model(ModelConfig(source=model))
    say.print(
        f"demo: {nodes} nodes + {malicious} malicious, {validators} validators "
        + (f"(quorum {quorum})" if quorum else "(a majority signs)")
        + (", a lying aggregator and a lying validator" if liars else "")
        + f", {rounds} rounds, {loaded.model_id} on {chain.network.name}, storage {store!r}"
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        console=say,
    ) as bar:
        jobs: dict[tuple[int, int], Any] = {}

        def progress(event: str, fields: dict[str, Any]) -> None:
            if event == "stage":
                say.print(f"[dim]{fields['text']}[/]")
            elif event == "train":
                key = (fields["round"], fields["node"])
                if key not in jobs:
                    jobs[key] = bar.add_task(
                        f"round {key[0]} · node {key[1]}", total=fields["total"], loss="-"
                    )
                bar.update(jobs[key], completed=fields["step"], loss=f"{fields['loss']:.3f}")
            elif event == "round":
                reasons = ", ".join(f"{k} x{v}" for k, v in fields["rejected"].items()) or "none"
                loss = fields["global_eval_loss"]
                say.print(
                    f"[bold]round {fields['round']}[/] finalized: "
                    f"{fields['accepted']}/{fields['submitted']} accepted, "
                    f"rejected: {reasons}; validation loss "
                    f"{'-' if loss is None else f'{loss:.4f}'}; "
                    f"paid {tokens(fields['paid'])}"
                )

        result = run_demo(chain, store, loaded, config, out_dir, progress=progress)

    rounds_table = new_table(
        "round",
        "submitted",
        "accepted",
        "rejected (reasons)",
        "global eval loss",
        "paid (LLT)",
        "gas used",
        title="rounds",
        text=("rejected (reasons)",),
    )
    for r in result.rounds:
        reasons = ", ".join(f"{k} x{v}" for k, v in r.rejected.items()) or "-"
        loss = "-" if r.global_eval_loss is None else f"{r.global_eval_loss:.4f}"
        if r.start_eval_loss is not None and r.global_eval_loss is not None:
            loss = f"{r.start_eval_loss:.4f} -> {loss}"
        rounds_table.add_row(
            str(r.round),
            str(r.submitted),
            str(r.accepted),
            reasons,
            loss,
            tokens(r.paid, unit=False),
            f"{r.gas_used:,}",
        )
    nodes_table = new_table(
        "node",
        "kind",
        "examples",
        "rank",
        "accepted rounds",
        "earned (LLT)",
        "stake slashed (LLT)",
        title="nodes",
    )
    for n in result.nodes:
        nodes_table.add_row(
            n.address,
            n.kind,
            str(n.examples),
            str(n.rank),
            f"{n.accepted_rounds}/{len(result.rounds)}",
            tokens(n.earned, unit=False),
            tokens(n.slashed, unit=False),
        )
    parties_table = new_table(
        "account",
        "role",
        "honest",
        "earned (LLT)",
        "bond slashed (LLT)",
        "agreement",
        title="aggregator and validators",
    )
    for p in result.parties:
        parties_table.add_row(
            p.address,
            p.role,
            "yes" if p.honest else "no (lies)",
            tokens(p.earned, unit=False),
            tokens(p.bond_slashed, unit=False),
            "-" if p.agreement is None else f"{p.agreement:.3f}",
        )
    attack_rows = _per_attack(result)
    if as_json:
        console.print_json(json.dumps({**result.to_json(), "attacks": attack_rows}, default=str))
    else:
        console.print(rounds_table)
        console.print(nodes_table)
        console.print(parties_table)
        if attack_rows:
            attacks_table = new_table(
                "attack",
                "nodes",
                "earned (LLT)",
                "stake slashed (LLT)",
                "honest nodes earned (LLT)",
                "what happened",
                title="attacks",
                text=("what happened",),
            )
            for row in attack_rows:
                attacks_table.add_row(
                    row["attack"],
                    str(row["nodes"]),
                    tokens(int(row["earned"]), unit=False),
                    tokens(int(row["slashed"]), unit=False),
                    tokens(int(row["honest_earned"]), unit=False),
                    row["what"],
                )
            console.print(attacks_table)
    failed = [c for c in result.audit if not c["ok"]]
    if failed:
        for c in failed:
            say.print(f"[red]audit failed[/] round {c.get('round')}: {c['name']}: {c['detail']}")
    else:
        say.print(
            f"[green]audit passed[/]: {len(result.audit)} checks over {len(result.rounds)} rounds"
        )
    say.print(
        f"task {result.task_id} on {result.network} (ledger {result.ledger}); "
        f"reports and summary in {out_dir} ({result.seconds:.0f} s)"
    )
    if failed:
        raise typer.Exit(1)


def _per_attack(result: Any) -> list[dict[str, Any]]:
    """Per attack: how many nodes ran it, what they earned and lost, what the honest nodes
    earned, and the last thing one of them did."""
    honest = sum(n.earned for n in result.nodes if n.kind == "honest")
    rows: dict[str, dict[str, Any]] = {}
    for n in result.nodes:
        if n.kind == "honest":
            continue
        row = rows.setdefault(
            n.kind,
            {
                "attack": n.kind,
                "nodes": 0,
                "earned": 0,
                "slashed": 0,
                "honest_earned": honest,
                "what": n.log[-1] if n.log else "",
            },
        )
        row["nodes"] += 1
        row["earned"] += n.earned
        row["slashed"] += n.slashed
    return [
        {
            **r,
            "earned": str(r["earned"]),
            "slashed": str(r["slashed"]),
            "honest_earned": str(r["honest_earned"]),
        }
        for r in rows.values()
    ]
