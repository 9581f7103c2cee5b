"""``loraledger task``: sponsors create and fund training tasks; anyone inspects them."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from chain.bindings import (
    DEFAULT_MAX_EXAMPLES,
    Round,
    Task,
    TaskParams,
    Token,
    base_model_hash,
)
from chain.deployments import load_deployment
from loraledger.errors import ConfigError
from scripts.console import console
from scripts.options import (
    AccountOption,
    IpfsOption,
    JsonOption,
    NetworkOption,
    format_amount,
    open_chain,
    parse_amount,
    signer,
)

app = typer.Typer(no_args_is_help=True)


def _digest(text: str) -> bytes:
    value = text.removeprefix("0x")
    try:
        digest = bytes.fromhex(value)
    except ValueError as exc:
        raise ConfigError(f"digest must be 64 hex characters, got {text!r}") from exc
    if len(digest) != 32:
        raise ConfigError(f"digest must be 32 bytes (64 hex characters), got {len(digest)} bytes")
    return digest


@app.command()
def create(
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Build the initial global adapter from this base model (smollm2, a folder or a hub "
        "id) and pin it.",
    ),
    rank: int = typer.Option(
        8, "--rank", help="LoRA rank of the initial adapter (the task's maximum)."
    ),
    alpha: float = typer.Option(16.0, "--alpha", help="LoRA alpha of the initial adapter."),
    targets: str = typer.Option(
        "q_proj,k_proj,v_proj,o_proj", "--targets", help="LoRA target modules."
    ),
    base_model: str | None = typer.Option(
        None, "--base-model", help="Base model id hashed on chain (default: the model's id)."
    ),
    initial_cid: str | None = typer.Option(
        None, "--initial-cid", help="CID of an initial adapter already pinned (instead of --model)."
    ),
    initial_digest: str | None = typer.Option(
        None, "--initial-digest", help="sha256 (hex) of that adapter's bytes."
    ),
    reward_per_round: str = typer.Option(
        "100", "--reward-per-round", help="Tokens paid per round (most)."
    ),
    min_stake: str = typer.Option("10", "--min-stake", help="Tokens a node stakes to join."),
    window: int = typer.Option(
        600, "--window", help="Commit window in seconds (nodes commit to hidden updates)."
    ),
    reveal_window: int | None = typer.Option(
        None,
        "--reveal-window",
        help="Seconds after the commit window during which nodes reveal (default: --window).",
    ),
    max_examples: int = typer.Option(
        DEFAULT_MAX_EXAMPLES,
        "--max-examples",
        help="Most training examples a node may claim per round (caps its weight).",
    ),
    max_rounds: int = typer.Option(
        3, "--max-rounds", help="Rounds after which the task is complete."
    ),
    fund: str = typer.Option(
        "0", "--fund", help="Tokens to deposit into the reward pool right away."
    ),
    network: str = NetworkOption,
    account: str = AccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Create a training task (the account becomes its sponsor), optionally funding it.

    Give either --model (the initial adapter is built, pinned and digested here) or an adapter
    you pinned yourself with --initial-cid, --initial-digest and --base-model.
    """
    chain = open_chain(network)
    sponsor = signer(account, chain.network)
    deployment = load_deployment(chain)
    ledger, token = deployment.ledger_contract(chain), deployment.token_contract(chain)
    amount = parse_amount(fund)
    if model is not None:
        if initial_cid or initial_digest:
            raise ConfigError("give either --model or --initial-cid/--initial-digest, not both")
        from fl_node.model import ModelConfig, load_base_model
        from ipfs import open_store
        from loraledger.update import PeftSpec
        from sponsor.task import publish_task

        spec = PeftSpec(
            rank=rank,
            alpha=alpha,
            target_modules=tuple(t.strip() for t in targets.split(",") if t.strip()),
        )
        with console.status(f"building the initial adapter from {model}"):
            loaded = load_base_model(ModelConfig(source=model))
        if base_model is not None and base_model != loaded.model_id:
            raise ConfigError(
                f"--base-model {base_model!r} differs from the model's id {loaded.model_id!r}"
            )
        base_model = loaded.model_id
        with console.status("pinning the initial adapter and creating the task"):
            task_id, initial_cid = publish_task(
                ledger,
                token,
                open_store(ipfs),
                loaded,
                spec,
                sponsor,
                reward_per_round=parse_amount(reward_per_round),
                min_stake=parse_amount(min_stake),
                window=window,
                max_rounds=max_rounds,
                fund=amount,
                reveal_window=reveal_window,
                max_examples=max_examples,
            )
        console.print(f"initial adapter {initial_cid} (rank {rank})")
    elif not (initial_cid and initial_digest and base_model):
        raise ConfigError(
            "give --model, or all of --initial-cid, --initial-digest and --base-model"
        )
    else:
        from sponsor.task import create_funded_task

        params = TaskParams(
            base_model_hash=base_model_hash(base_model),
            initial_global_cid=initial_cid,
            initial_global_digest=_digest(initial_digest),
            token=deployment.token,
            reward_per_round=parse_amount(reward_per_round),
            min_stake=parse_amount(min_stake),
            submission_window=window,
            max_rounds=max_rounds,
            reveal_window=reveal_window,
            max_examples=max_examples,
        )
        task_id = create_funded_task(ledger, token, params, sponsor, fund=amount)
    console.print(
        f"created task [bold]{task_id}[/] on {chain.network.name} (base model {base_model})"
    )
    if amount:
        console.print(f"funded task {task_id} with {format_amount(amount)} LLT")


@app.command("fund")
def fund_command(
    task_id: int = typer.Argument(..., help="Task id."),
    amount: str = typer.Argument(..., help="Tokens to deposit."),
    network: str = NetworkOption,
    account: str = AccountOption,
) -> None:
    """Deposit tokens into a task's reward pool (approves the ledger first)."""
    chain = open_chain(network)
    funder = signer(account, chain.network)
    deployment = load_deployment(chain)
    ledger = deployment.ledger_contract(chain)
    task = ledger.task(task_id)
    units = parse_amount(amount)
    Token(chain, task.token).approve(ledger.address, units, funder)
    ledger.fund_task(task_id, units, funder)
    console.print(f"task {task_id} pool: {format_amount(ledger.task(task_id).funded)} funded")


@app.command("list")
def list_command(network: str = NetworkOption, as_json: bool = JsonOption) -> None:
    """List the tasks on this chain."""
    chain = open_chain(network)
    ledger = load_deployment(chain).ledger_contract(chain)
    tasks = [ledger.task(i) for i in range(1, ledger.task_count() + 1)]
    if as_json:
        console.print_json(json.dumps([_task_json(t) for t in tasks]))
        return
    table = Table("task", "sponsor", "rounds", "nodes", "reward/round", "pool left", "paid")
    for t in tasks:
        table.add_row(
            str(t.task_id),
            t.sponsor,
            f"{t.rounds_opened}/{t.max_rounds}",
            str(t.active_nodes),
            format_amount(t.reward_per_round),
            format_amount(t.available),
            format_amount(t.paid),
        )
    console.print(table)


@app.command()
def show(
    task_id: int = typer.Argument(..., help="Task id."),
    network: str = NetworkOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one task and its rounds."""
    chain = open_chain(network)
    ledger = load_deployment(chain).ledger_contract(chain)
    task = ledger.task(task_id)
    rounds = [ledger.round(task_id, r) for r in range(1, task.rounds_opened + 1)]
    if as_json:
        body = _task_json(task) | {"rounds": [_round_json(r) for r in rounds]}
        console.print_json(json.dumps(body))
        return
    amounts = {"reward_per_round", "min_stake", "funded", "reserved", "paid", "withdrawn"}
    for key, value in _task_json(task).items():
        shown = f"{format_amount(int(str(value)))} LLT" if key in amounts else value
        console.print(f"{key:>18}  {shown}", soft_wrap=True)
    table = Table(
        "round",
        "state",
        "deadline",
        "reveal by",
        "commits",
        "reveals",
        "accepted",
        "rejected",
        "reward",
        "claimed",
    )
    for r in rounds:
        table.add_row(
            str(r.round),
            ledger.round_state(task_id, r.round).name.lower(),
            str(r.deadline),
            str(r.reveal_deadline),
            str(r.commits),
            str(r.reveals),
            str(r.accepted),
            str(r.rejected),
            format_amount(r.reward_total),
            format_amount(r.claimed),
        )
    console.print(table)


def _task_json(t: Task) -> dict[str, object]:
    return {
        "task_id": t.task_id,
        "sponsor": t.sponsor,
        "token": t.token,
        "base_model_hash": "0x" + t.base_model_hash.hex(),
        "global_digest": t.global_digest.hex(),
        "reward_per_round": str(t.reward_per_round),
        "min_stake": str(t.min_stake),
        "funded": str(t.funded),
        "reserved": str(t.reserved),
        "paid": str(t.paid),
        "withdrawn": str(t.withdrawn),
        "submission_window": t.submission_window,
        "reveal_window": t.reveal_window,
        "max_examples": t.max_examples,
        "max_rounds": t.max_rounds,
        "rounds_opened": t.rounds_opened,
        "active_nodes": t.active_nodes,
    }


def _round_json(r: Round) -> dict[str, object]:
    return {
        "round": r.round,
        "finalized": r.finalized,
        "start_digest": r.start_digest.hex(),
        "result_digest": r.result_digest.hex(),
        "reward_root": "0x" + r.reward_root.hex(),
        "reward_total": str(r.reward_total),
        "claimed": str(r.claimed),
        "opened_at": r.opened_at,
        "deadline": r.deadline,
        "reveal_deadline": r.reveal_deadline,
        "commits": r.commits,
        "reveals": r.reveals,
        "all_committed": r.all_committed,
        "submissions": r.submissions,
        "accepted": r.accepted,
        "rejected": r.rejected,
    }
