"""``loraledger flower``: federations on Flower (flwr 1.41).

``simulate`` runs N virtual nodes on this machine through Flower's simulation engine, against a
local chain it starts (anvil) and a shared store. ``superlink``, ``supernode`` and ``run`` start
Flower's deployment engine across machines with the right flags, so that nobody meets its quirks
(runtime installation of a CUDA torch, a detached SuperLink, ports per SuperNode): docs/flower.md.
``certs`` makes a CA, the SuperLink's TLS certificate and SuperNode keys; ``register`` allows a
SuperNode's key on a SuperLink with SuperNode authentication.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from loraledger.display import tokens
from scripts.console import console
from scripts.options import IpfsOption, JsonOption, NetworkOption, StrategyCheck

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Federations on Flower: simulate many nodes here, or deploy SuperLink and SuperNodes."""


def _ints(text: str, what: str) -> tuple[int, ...]:
    from loraledger.errors import ConfigError

    try:
        return tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None


@app.command()
def simulate(
    nodes: int = typer.Option(
        8, "--nodes", "-N", help="Virtual nodes (each its own account, shard and rank)."
    ),
    rounds: int = typer.Option(2, "--rounds", "-r", help="Rounds to run (the task's maximum)."),
    tiny: bool = typer.Option(
        False, "--tiny", help="A tiny Llama built on the fly (seconds; for trying things out)."
    ),
    model: str = typer.Option(
        "smollm2",
        "--model",
        "-m",
        help="smollm2 (bundled), tiny (built from the bundled corpus), a local folder or a hub id.",
    ),
    network: str | None = typer.Option(
        None,
        "--network",
        "-n",
        help="A running anvil:PORT / ganache:PORT (default: start anvil for this run).",
    ),
    ipfs: str | None = IpfsOption,
    strategy: str = typer.Option(
        "fedavg",
        "--strategy",
        "-s",
        help="Aggregation: fedavg, flexlora, median, krum, ... (see `aggregator run`).",
        callback=StrategyCheck,
    ),
    ranks: str = typer.Option(
        "8,4", "--ranks", help="LoRA ranks, cycled over the nodes (heterogeneous ranks)."
    ),
    steps: int = typer.Option(2, "--steps", help="Training steps per node and round."),
    batch_size: int = typer.Option(4, "--batch-size", help="Examples per step."),
    max_length: int = typer.Option(128, "--max-length", help="Tokens per example."),
    window: int = typer.Option(
        600,
        "--window",
        help="Submission window (s): a round closes when every node submitted or at its end.",
    ),
    shards: str = typer.Option(
        "iid", "--shards", help="How the bundled data is split over nodes: iid, label or dirichlet."
    ),
    drop_out: str = typer.Option(
        "", "--drop-out", help="Node indices that join but never submit (e.g. 3,5)."
    ),
    cpus: int | None = typer.Option(
        None, "--cpus", help="CPUs Ray may use (default: all); one node trains per CPU."
    ),
    work_dir: Path | None = typer.Option(
        None,
        "--work-dir",
        help="Chain, store and journals of this run (default: a new folder under "
        "$LORALEDGER_HOME/flower).",
    ),
    do_audit: bool = typer.Option(
        True,
        "--audit/--no-audit",
        help="Re-verify every round from the chain and the store afterwards.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run a federation of N simulated nodes here, print each round from the chain, audit."""
    from fl_node.data import sample_examples
    from fl_node.model import create_tiny_model
    from flower_app.federation import FederationPlan, audit, prepare
    from flower_app.simulation import SimulationSettings
    from flower_app.simulation import simulate as run
    from loraledger.paths import home

    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    if quiet:  # Flower logs every step at INFO, and a node's exception with its traceback
        logging.getLogger("flwr").setLevel(logging.CRITICAL)

    work = work_dir or home() / "flower" / time.strftime("sim-%Y%m%d-%H%M%S")
    if tiny:
        corpus = [m.content for e in sample_examples() for m in e.messages]
        model = str(create_tiny_model(work / "tiny-model", corpus))
    plan = FederationPlan(
        nodes=nodes,
        rounds=rounds,
        model=model,
        work_dir=work,
        network=network,
        ipfs=ipfs,
        ranks=_ints(ranks, "--ranks"),
        window=window,
    )
    settings = SimulationSettings(
        steps=steps,
        batch_size=batch_size,
        max_length=max_length,
        strategy=strategy,
        shard_strategy=shards,
        drop_out=_ints(drop_out, "--drop-out"),
        cpus=cpus,
        quiet=quiet,
    )
    began = time.perf_counter()
    with console.status(f"starting a chain, deploying and creating a task for {nodes} nodes"):
        federation = prepare(plan)
    with federation:
        prepared = time.perf_counter() - began
        console.print(
            f"task {federation.task_id} on {federation.network}, store {federation.ipfs}, "
            f"{nodes} nodes, {rounds} rounds ({prepared:.1f} s to set up)"
        )
        with console.status(f"{nodes} nodes training {rounds} rounds through Flower"):
            result = run(federation, settings)
        rows = _round_rows(federation, result)
        checks = audit(federation) if do_audit else []
    failed = [c for c in checks if not c.ok]
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "task": federation.task_id,
                    "work_dir": str(work),
                    "rounds": rows,
                    "seconds": round(result.seconds, 2),
                    "audit": [c.to_json() for c in checks],
                }
            )
        )
        if failed:
            raise typer.Exit(1)
        return
    table = Table(title=f"task {federation.task_id}: {nodes} simulated nodes")
    for column in (
        "round",
        "committed",
        "accepted",
        "rejected",
        "dropped",
        "paid (LLT)",
        "global adapter",
        "s",
    ):
        table.add_column(column, justify="left" if column == "global adapter" else "right")
    for row in rows:
        table.add_row(
            str(row["round"]),
            str(row["committed"]),
            str(row["accepted"]),
            str(row["rejected"]),
            str(row["errors"]),
            tokens(row["paid"], unit=False),
            _short(row["global_cid"]),
            f"{row['seconds']:.1f}",
        )
    console.print(table)
    console.print(
        f"{result.seconds:.1f} s in Flower "
        f"({result.setup_seconds:.1f} s of it starting Ray and the nodes); state in {work}"
    )
    if do_audit:
        for check in failed:
            console.print(f"[red]audit failed[/]: round {check.round} {check.name}: {check.detail}")
        console.print(
            f"audit: {len(checks) - len(failed)} of {len(checks)} checks pass"
            + ("" if failed else " (every round re-verified from the chain and the store)")
        )
        if failed:
            raise typer.Exit(1)


def _short(cid: str) -> str:
    return cid if len(cid) <= 20 else f"{cid[:12]}…{cid[-6:]}"


def _round_rows(federation: Any, result: Any) -> list[dict[str, Any]]:
    """Each round as the chain has it (RoundFinalized), with the Flower-side error count."""
    from chain.bindings import Ledger
    from chain.events import History
    from chain.network import connect

    chain = connect(federation.network)
    ledger = Ledger(chain, federation.ledger)
    logs = {r.round: r for r in result.rounds}
    rows = []
    for record in History(ledger, federation.from_block).finalized(federation.task_id):
        info = ledger.round(federation.task_id, record.round)
        log = logs.get(record.round)
        rows.append(
            {
                "round": record.round,
                "committed": info.commits,
                "revealed": info.reveals,
                "accepted": record.accepted,
                "rejected": record.rejected,
                "errors": len(log.errors) if log else 0,
                "paid": record.reward_total,
                "global_cid": record.global_cid,
                "report_cid": record.report_cid,
                "seconds": round(log.seconds, 2) if log else 0.0,
            }
        )
    return rows


@app.command()
def bench(
    nodes: int = typer.Option(2, "--nodes", "-N", help="Nodes of the smaller federation."),
    more_nodes: int = typer.Option(
        4, "--more-nodes", help="Nodes of the larger one (time per extra node)."
    ),
    rounds: int = typer.Option(
        3, "--rounds", "-r", help="Rounds per run; round 1 (model loading) is not counted."
    ),
    tiny: bool = typer.Option(
        False, "--tiny", help="The tiny Llama instead of SmolLM2 (a quick check, not the target)."
    ),
    model: str = typer.Option(
        "smollm2",
        "--model",
        "-m",
        help="smollm2 (bundled), tiny (built from the bundled corpus), a local folder or a hub id.",
    ),
    steps: int = typer.Option(4, "--steps", help="Training steps per node and round."),
    batch_size: int = typer.Option(4, "--batch-size", help="Examples per step."),
    max_length: int = typer.Option(128, "--max-length", help="Tokens per example."),
    ranks: str = typer.Option("8,4", "--ranks", help="LoRA ranks cycled over the nodes."),
    eval_fraction: float = typer.Option(
        0.2,
        "--eval-fraction",
        help="Share of each shard every node evaluates before and after training.",
    ),
    cpus: int | None = typer.Option(None, "--cpus", help="CPUs Ray may use (default: all)."),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Where the runs keep their chains and stores."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Round time with the chain + IPFS layer vs plain Flower, as a ratio; time per extra node.

    Plain Flower carries the weights in its messages."""
    from fl_node.data import sample_examples
    from fl_node.model import create_tiny_model
    from flower_app.bench import measure
    from flower_app.federation import FederationPlan
    from flower_app.simulation import SimulationSettings
    from loraledger.paths import home

    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    if quiet:
        logging.getLogger("flwr").setLevel(logging.CRITICAL)
    work = work_dir or home() / "flower" / time.strftime("bench-%Y%m%d-%H%M%S")
    if tiny:
        model = str(
            create_tiny_model(
                work / "tiny-model", [m.content for e in sample_examples() for m in e.messages]
            )
        )
    plan = FederationPlan(
        nodes=nodes, rounds=rounds, model=model, work_dir=work, ranks=_ints(ranks, "--ranks")
    )
    settings = SimulationSettings(
        steps=steps,
        batch_size=batch_size,
        max_length=max_length,
        cpus=cpus,
        quiet=quiet,
        eval_fraction=eval_fraction,
    )
    with console.status(
        f"4 simulated federations ({nodes} and {more_nodes} nodes, with and without the ledger)"
    ):
        result = measure(plan, settings, more_nodes)
    if as_json:
        console.print_json(json.dumps(result.to_json()))
        return
    table = Table(
        title=f"round time, rounds 2..{rounds} ({'tiny model' if tiny else model}, {steps} "
        "steps/node)"
    )
    for column in ("nodes", "plain Flower (s)", "with chain + IPFS (s)", "ratio", "overhead"):
        table.add_column(column, justify="right")
    for n, base, ledger in (
        (nodes, result.baseline_round_s, result.ledger_round_s),
        (more_nodes, result.more_baseline_round_s, result.more_ledger_round_s),
    ):
        table.add_row(
            str(n),
            f"{base:.2f}",
            f"{ledger:.2f}",
            f"{ledger / base:.3f}",
            f"{(ledger - base) / ledger:.1%}",
        )
    console.print(table)
    console.print(
        f"time per extra node: {result.per_extra_node_ledger_s:.2f} s with the ledger, "
        f"{result.per_extra_node_baseline_s:.2f} s plain "
        "(target: overhead <= 10% with SmolLM2 on CPU)"
    )


# --------------------------------------------------------------------------- deployment


def _tls(
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    supernode_auth: bool,
    node_key: Path | None,
):
    from flower_app.deployment import Tls

    return Tls(
        ca_certfile=ca,
        certfile=cert,
        keyfile=key,
        supernode_auth=supernode_auth,
        supernode_private_key=node_key,
    )


CaOption = typer.Option(
    None, "--ssl-ca-certfile", help="CA certificate (PEM); without it everything runs --insecure."
)


def _exec(command: list[str], flwr_home: Path | None = None) -> None:
    from flower_app.deployment import process_env

    console.print(f"[dim]{' '.join(command)}[/]")
    env = process_env(flwr_home)
    os.execvpe(command[0], command, env)


@app.command()
def superlink(
    host: str = typer.Option(
        "0.0.0.0",
        "--host",
        help="Address the SuperLink listens on (SuperNodes and `flwr run` connect here).",
    ),
    port: int = typer.Option(8000, "--port", help="The SuperLink's port."),
    database: Path | None = typer.Option(
        None, "--database", help="SQLite file for the SuperLink's state (default: in memory)."
    ),
    ca: Path | None = CaOption,
    cert: Path | None = typer.Option(
        None, "--ssl-certfile", help="The SuperLink's TLS certificate (PEM)."
    ),
    key: Path | None = typer.Option(None, "--ssl-keyfile", help="The SuperLink's TLS key (PEM)."),
    supernode_auth: bool = typer.Option(
        False,
        "--enable-supernode-auth",
        help="Only SuperNodes registered with `flwr supernode register` may connect (needs TLS).",
    ),
) -> None:
    """Run a Flower SuperLink in the foreground, with runtime dependency installation off."""
    from flower_app.deployment import superlink_command

    _exec(
        superlink_command(
            host=host, port=port, database=database, tls=_tls(ca, cert, key, supernode_auth, None)
        )
    )


@app.command()
def supernode(
    superlink_address: str = typer.Option(..., "--superlink", help="The SuperLink's host:port."),
    account: str = typer.Option(
        ...,
        "--account",
        "-a",
        help="This node's account: dev:N, env:VAR or keystore:PATH (password in "
        "$LORALEDGER_KEYSTORE_PASSWORD).",
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        "-d",
        help="This node's data (JSON/JSONL/CSV/folder); default: a shard of the bundled sample.",
    ),
    rank: int | None = typer.Option(
        None, "--rank", help="LoRA rank of this node (default: the run's ranks)."
    ),
    network: str | None = typer.Option(
        None, "--network", "-n", help="This node's chain RPC (default: the run's)."
    ),
    ipfs: str | None = typer.Option(
        None, "--ipfs", help="This node's IPFS RPC or store (default: the run's)."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="The base model on this machine (default: the run's)."
    ),
    port: int = typer.Option(
        9094,
        "--port",
        help="This SuperNode's own port (ClientAppIo); unique per SuperNode on a host.",
    ),
    partition: int | None = typer.Option(
        None,
        "--partition",
        help="With no --data: which shard of the bundled sample (with --partitions).",
    ),
    partitions: int | None = typer.Option(
        None, "--partitions", help="With no --data: into how many shards the sample is split."
    ),
    ca: Path | None = typer.Option(
        None,
        "--root-certificates",
        help="CA certificate (PEM) of the SuperLink; without it --insecure.",
    ),
    auth_key: Path | None = typer.Option(
        None,
        "--auth-supernode-private-key",
        help="This SuperNode's authentication key (SuperLinks with --enable-supernode-auth).",
    ),
) -> None:
    """Run a Flower SuperNode (a training node) in the foreground, with its own account and data."""
    from flower_app.deployment import supernode_command

    values: dict[str, Any] = {"account": account}
    extra = {
        "data": str(data.resolve()) if data else None,
        "rank": rank,
        "network": network,
        "ipfs": ipfs,
        "model": model,
        "partition-id": partition,
        "num-partitions": partitions,
    }
    values.update({k: v for k, v in extra.items() if v is not None})
    _exec(
        supernode_command(
            superlink_address, port, values, tls=_tls(ca, None, None, False, auth_key)
        )
    )


def _app_dir() -> Path:
    import flower_app

    root = Path(flower_app.__file__).resolve().parent.parent  # the pyproject naming the app
    if not (root / "pyproject.toml").exists():
        from loraledger.errors import ConfigError

        raise ConfigError(
            f"the Flower app's pyproject.toml is not at {root}",
            hint="run from a checkout of the repository",
        )
    return root


@app.command("run")
def run_command(
    superlink_address: str = typer.Option(
        "127.0.0.1:8000", "--superlink", help="The SuperLink's host:port."
    ),
    task: int = typer.Option(
        ..., "--task", "-t", help="Task id (created with `loraledger task create`)."
    ),
    rounds: int = typer.Option(1, "--rounds", "-r", help="Rounds to run."),
    network: str = NetworkOption,
    ipfs: str = typer.Option(
        "embedded", "--ipfs", help="The store every node reaches: a Kubo RPC URL across machines."
    ),
    account: str = typer.Option(
        "dev:1", "--account", "-a", help="The task's aggregator account (dev:1 on local chains)."
    ),
    strategy: str = typer.Option(
        "fedavg",
        "--strategy",
        "-s",
        help="Aggregation strategy (see `aggregator run`).",
        callback=StrategyCheck,
    ),
    min_nodes: int = typer.Option(
        2, "--min-nodes", help="Wait for this many SuperNodes before round 1."
    ),
    model: str = typer.Option(
        "smollm2", "--model", "-m", help="Base model nodes train (each SuperNode may override)."
    ),
    steps: int = typer.Option(2, "--steps", help="Training steps per node and round."),
    batch_size: int = typer.Option(4, "--batch-size", help="Examples per step."),
    max_length: int = typer.Option(128, "--max-length", help="Tokens per example."),
    ca: Path | None = typer.Option(
        None,
        "--root-certificates",
        help="CA certificate (PEM) of a TLS SuperLink; without it --insecure.",
    ),
) -> None:
    """Submit the LoRA Ledger app to a SuperLink and follow it until the rounds are finalized."""
    import subprocess

    from chain.deployments import load_deployment
    from flower_app.deployment import process_env
    from flower_app.deployment import run_command as flwr_run
    from scripts.options import open_chain

    chain = open_chain(network)
    deployment = load_deployment(chain)
    run_config = {
        "network": network,
        "ipfs": ipfs,
        "ledger": deployment.ledger,
        "from-block": deployment.block,
        "task-id": task,
        "rounds": rounds,
        "aggregator-account": account,
        "strategy": strategy,
        "min-nodes": min_nodes,
        "model": model,
        "steps": steps,
        "batch-size": batch_size,
        "max-length": max_length,
    }
    flwr_home = _connection(superlink_address, ca)
    command = flwr_run(_app_dir(), run_config)
    code = subprocess.run(command, env=process_env(flwr_home), check=False).returncode
    raise typer.Exit(code)


def _connection(superlink_address: str, ca: Path | None) -> Path:
    """Write the SuperLink connection ``flwr`` reads into our own ``FLWR_HOME``; return it."""
    from flower_app.deployment import write_connection
    from loraledger.paths import home

    flwr_home = home() / "flower" / "flwr-home"
    write_connection(
        flwr_home,
        superlink_address,
        insecure=ca is None,
        root_certificates=ca.resolve() if ca else None,
    )
    return flwr_home


@app.command()
def register(
    public_key: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="The SuperNode's public key (OpenSSH, from `flower certs`).",
    ),
    superlink_address: str = typer.Option(
        "127.0.0.1:8000", "--superlink", help="The SuperLink's host:port."
    ),
    ca: Path = typer.Option(
        ...,
        "--root-certificates",
        exists=True,
        dir_okay=False,
        help="CA certificate (PEM) of the SuperLink (SuperNode authentication needs TLS).",
    ),
) -> None:
    """Allow a SuperNode's key on a SuperLink started with --enable-supernode-auth."""
    import subprocess

    from flower_app.deployment import process_env, register_command

    flwr_home = _connection(superlink_address, ca)
    command = register_command(public_key.resolve())
    code = subprocess.run(command, env=process_env(flwr_home), check=False).returncode
    raise typer.Exit(code)


@app.command()
def certs(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the files (created; never overwritten)."
    ),
    hosts: str = typer.Option(
        "localhost,127.0.0.1,::1",
        "--hosts",
        help="Names and addresses SuperNodes dial the SuperLink by (comma-separated).",
    ),
    node_keys: str = typer.Option(
        "",
        "--node-keys",
        help="SuperNode key pairs to make, by name (comma-separated), e.g. node-0,node-1.",
    ),
    days: int = typer.Option(365, "--days", help="Validity of the certificates."),
) -> None:
    """Make a CA, a SuperLink TLS certificate and SuperNode authentication keys."""
    from flower_app.certs import make_federation_files

    names = [n.strip() for n in node_keys.split(",") if n.strip()]
    files, keys = make_federation_files(out, hosts.split(","), names, days=days)
    if files is not None:
        console.print(
            f"CA {files.ca_cert} (give it to SuperNodes and `flower run` as --root-certificates)"
        )
        console.print(
            f"SuperLink: --ssl-ca-certfile {files.ca_cert} --ssl-certfile {files.server_cert} "
            f"--ssl-keyfile {files.server_key}"
        )
    for key in keys:
        console.print(
            f"SuperNode key {key.private_key} (--auth-supernode-private-key); "
            f"register {key.public_key} with `loraledger flower register`"
        )
