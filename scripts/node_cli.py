"""``loraledger node``: what a participant runs: join a task, train and commit rounds, reveal
them, claim rewards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from loraledger.display import chain_time, tokens
from scripts.console import console
from scripts.console import table as new_table
from scripts.options import (
    ConfirmationsOption,
    IpfsOption,
    JsonOption,
    NetworkOption,
    TaskOption,
    open_cli_session,
    with_option_group,
)

if TYPE_CHECKING:
    from rich.status import Status

    from chain.bindings import ClaimRequest
    from chain.session import Session
    from fl_node.node import SubmittedUpdate

NodeAccountOption = typer.Option(
    "dev:2",
    "--account",
    "-a",
    envvar="LORALEDGER_NODE_ACCOUNT",
    help="The training node's account (dev:2 on local chains: dev:0 sponsors, dev:1 "
    "aggregates): dev:N, env:VAR or keystore:PATH; a 0x address to look at an account "
    "read-only (status).",
)

app = typer.Typer(no_args_is_help=True)


def _session(network: str, account: str, ipfs: str | None) -> Session:
    return open_cli_session(network, ipfs, account)


@dataclass(frozen=True)
class _TrainOptions:
    data: Path
    model: str
    quantization: str
    rank: int
    alpha: float
    dropout: float
    targets: str
    steps: int | None
    epochs: float
    lr: float
    batch_size: int
    grad_accum: int
    max_length: int
    seed: int
    fedprox_mu: float
    eval_fraction: float


def _train_options(
    data: Path = typer.Option(
        ...,
        "--data",
        "-d",
        help="Your data: JSON/JSONL (Alpaca or chat messages), CSV, or a folder.",
    ),
    model: str = typer.Option(
        "smollm2",
        "--model",
        "-m",
        help="smollm2 (bundled), tiny (built from the bundled corpus), a local folder or a hub id.",
    ),
    quantization: str = typer.Option(
        "none", "--quantization", help="none, 4bit or 8bit (QLoRA; bitsandbytes)."
    ),
    rank: int = typer.Option(8, "--rank", help="LoRA rank (at most the task's)."),
    alpha: float = typer.Option(16.0, "--alpha", help="LoRA alpha."),
    dropout: float = typer.Option(0.0, "--dropout", help="LoRA dropout."),
    targets: str = typer.Option(
        "q_proj,k_proj,v_proj,o_proj", "--targets", help="LoRA target modules."
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Optimizer steps per round (overrides --epochs)."
    ),
    epochs: float = typer.Option(1.0, "--epochs", help="Epochs over the local data per round."),
    lr: float = typer.Option(2e-4, "--lr", help="Learning rate."),
    batch_size: int = typer.Option(4, "--batch-size", help="Examples per micro-batch."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches per optimizer step."),
    max_length: int = typer.Option(
        256, "--max-length", help="Tokens per example (longer ones are cut)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    fedprox_mu: float = typer.Option(
        0.0, "--fedprox-mu", help="FedProx proximal term weight (0: off)."
    ),
    eval_fraction: float = typer.Option(
        0.1, "--eval-fraction", help="Share of the data held out for local eval."
    ),
) -> _TrainOptions:
    return _TrainOptions(
        data,
        model,
        quantization,
        rank,
        alpha,
        dropout,
        targets,
        steps,
        epochs,
        lr,
        batch_size,
        grad_accum,
        max_length,
        seed,
        fedprox_mu,
        eval_fraction,
    )


with_train_options = with_option_group(_train_options)
"""The training options, declared once for ``node train`` and ``node run``."""


def _trainer(session, task_id: int, opts: _TrainOptions):
    """Load model and data once; return a function that trains the open round and commits to
    the update (hidden until ``node reveal``)."""
    from fl_node.data import load_examples, train_eval_split
    from fl_node.model import ModelConfig, load_base_model
    from fl_node.node import submit_round
    from fl_node.train import TrainSettings
    from loraledger.update import PeftSpec

    peft = PeftSpec(
        rank=opts.rank,
        alpha=opts.alpha,
        dropout=opts.dropout,
        target_modules=tuple(t.strip() for t in opts.targets.split(",") if t.strip()),
    )
    settings = TrainSettings(
        max_steps=opts.steps,
        epochs=opts.epochs,
        learning_rate=opts.lr,
        batch_size=opts.batch_size,
        grad_accum=opts.grad_accum,
        max_length=opts.max_length,
        seed=opts.seed,
        fedprox_mu=opts.fedprox_mu,
    )
    data = train_eval_split(load_examples(opts.data), opts.eval_fraction, seed=opts.seed)
    with console.status(f"loading {opts.model}"):
        model = load_base_model(ModelConfig(source=opts.model, quantization=opts.quantization))

    def train_one():
        round_ = session.ledger.open_round(task_id)  # once, not on every step: it costs RPC calls
        # a spinner until the first step (start adapter, checks, evaluation before), then the
        # bar: nothing is drawn for a round that fails its checks before training
        waiting = console.status(
            f"round {round_}: fetching the start adapter, checking, evaluating"
        )
        bar: Progress | None = None
        job = None

        def progress(step) -> None:
            nonlocal bar, job
            if bar is None:
                waiting.stop()
                bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total}"),
                    TextColumn("loss {task.fields[loss]}"),
                    TimeRemainingColumn(),
                    console=console,
                )
                bar.start()
                job = bar.add_task(f"round {round_}", total=step.total_steps, loss="-")
            bar.update(job, total=step.total_steps, completed=step.step, loss=f"{step.loss:.3f}")

        waiting.start()
        try:
            return submit_round(
                session, task_id, model, data, peft=peft, settings=settings, progress=progress
            )
        finally:
            waiting.stop()
            if bar is not None:
                bar.stop()

    return train_one


def _report_submitted(s) -> None:
    resumed = " (resumed after a restart)" if s.resumed else ""
    losses = ""
    if s.eval_loss_before is not None and s.eval_loss_after is not None:
        losses = f", local eval loss {s.eval_loss_before:.3f} -> {s.eval_loss_after:.3f}"
    console.print(
        f"round {s.round}: committed to update {s.digest[:16]}… ({s.num_examples} examples"
        f"{losses}){resumed}; reveal it once the commit window ends"
    )


def _report_revealed(s) -> None:
    console.print(f"round {s.round}: revealed [bold]{s.cid}[/] ({s.num_examples} examples)")


@app.command("join")
def join_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Join a task, staking its minimum stake (returned when you leave)."""
    from fl_node.node import join

    session = _session(network, account, ipfs)
    member = join(session, task)
    console.print(f"{session.address} joined task {task} with a stake of {tokens(member.stake)}")


@app.command("train")
@with_train_options
def train_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
    *,
    opts: _TrainOptions,
) -> None:
    """Train one round on your data from the round's global adapter and commit to the update
    (a hash: nothing is pinned or published until `node reveal`)."""
    session = _session(network, account, ipfs)
    _report_submitted(_trainer(session, task, opts)())


@app.command("reveal")
def reveal_command(
    task: int = TaskOption,
    round_: int | None = typer.Option(
        None, "--round", help="Round to reveal in (default: the task's open round)."
    ),
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Pin and reveal the update this node committed to, once the round is revealing (after the
    commit window, or once every node committed); works after a restart (from the journal)."""
    from fl_node.node import reveal_round

    session = _session(network, account, ipfs)
    _report_revealed(reveal_round(session, task, round_))


@app.command("run")
@with_train_options
def run_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
    poll: float = typer.Option(2.0, "--poll", help="Seconds between chain polls."),
    confirmations: int = ConfirmationsOption,
    *,
    opts: _TrainOptions,
) -> None:
    """Take part in every round until the task is complete: commit, then reveal (resumes
    after a restart, never commits twice)."""
    from chain.recovery import outlast
    from fl_node.node import run

    # started while the chain or the IPFS node restarts: wait for them, as the loop does
    session = outlast(lambda: _session(network, account, ipfs), f"node run of task {task}")
    session.ledger.chain.confirmations = confirmations
    trainer = outlast(lambda: _trainer(session, task, opts), f"node run of task {task}")
    waiting = _Waiting()

    def train_one() -> SubmittedUpdate:
        waiting.stop()  # training shows its own progress bar
        return trainer()

    try:
        done = run(
            session,
            task,
            train_one,
            poll_seconds=poll,
            on_submitted=_report_submitted,
            on_revealed=_report_revealed,
            on_wait=lambda text: waiting.update(f"task {task}: {text}"),
        )
    finally:
        waiting.stop()
    console.print(f"task {task} is complete; this node submitted {len(done)} update(s) in this run")


class _Waiting:
    """A spinner line shown only while ``node run`` waits (rich shows one live display at a
    time, and training has its own)."""

    def __init__(self) -> None:
        self._status: Status | None = None

    def update(self, text: str) -> None:
        if self._status is None:
            self._status = console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


@app.command("claim")
def claim_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Claim every reward of settled rounds, with their reports' proofs, in one transaction."""
    from fl_node.node import claim

    session = _session(network, account, ipfs)
    print_claims(session, task, claim(session, task))


def print_claims(session: Session, task: int, claimed: list[ClaimRequest]) -> None:
    """What ``claim`` took, round by round, and what still waits for a challenge window (the
    output of ``node claim`` and ``validator claim``)."""
    from fl_node.node import status

    for c in claimed:
        console.print(f"round {c.round}: claimed {tokens(c.amount)}")
    if claimed:
        console.print(f"total {tokens(sum(c.amount for c in claimed))}")
    else:
        console.print("nothing to claim")
    pending = status(session, task).pending
    if pending:
        console.print(
            f"{tokens(pending)} more once the challenge windows of finalized rounds pass "
            f"(`loraledger task show {task}`)"
        )


@app.command("leave")
def leave_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Leave a task: stop taking part now, and take the stake back at once, or once the last
    round this node committed in can no longer slash it (then `node withdraw`)."""
    from fl_node.node import leave

    session = _session(network, account, ipfs)
    before = session.ledger.member(task, session.address).stake
    member = leave(session, task)
    if not member.joined:
        console.print(f"{session.address} left task {task}; stake {tokens(before)} returned")
        return
    console.print(
        f"{session.address} is leaving task {task}: it takes part in no further round; its stake "
        f"of {tokens(member.stake)} {_unlocks(session, task)}"
    )


@app.command("withdraw")
def withdraw_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
) -> None:
    """Take back the stake of a node that left (`node leave`), once it is unlocked."""
    from chain import errors
    from fl_node.node import withdraw_stake
    from loraledger.errors import ChainError

    session = _session(network, account, ipfs)
    before = session.ledger.member(task, session.address).stake
    try:
        withdraw_stake(session, task)
    except errors.LedgerNotLeaving:
        raise ChainError(
            f"{session.address} has not left task {task}",
            hint=f"leave first: `loraledger node leave --task {task}`",
        ) from None
    except errors.LedgerStakeLocked as exc:
        raise ChainError(
            f"the stake of {session.address} in task {task} {_locked_until(session, exc)}",
            hint="the last round it committed in must be settled and past its slash window, or "
            "abandoned",
        ) from None
    console.print(f"{session.address} left task {task}; stake {tokens(before)} returned")


def _unlocks(session: Session, task: int) -> str:
    """When a leaving node's stake unlocks, as the contract says (a dry run of
    ``withdrawStake``, which reverts with the time)."""
    from chain import errors

    try:
        session.ledger.withdraw_stake(task, session.signer)
    except errors.LedgerStakeLocked as exc:
        return f"{_locked_until(session, exc)}; then `loraledger node withdraw --task {task}`"
    return "was returned"


def _locked_until(session: Session, exc: Exception) -> str:
    unlocks_at = int(getattr(exc, "unlocks_at", 0))
    if not unlocks_at:
        return "stays locked until the last round it committed in is settled or abandoned"
    return f"is locked until {chain_time(unlocks_at, session.ledger.chain.timestamp())}"


@app.command("status")
def status_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
) -> None:
    """Stake, submissions, verdicts, and rewards claimable, waiting and claimed."""
    import json

    from fl_node.node import status

    session = _session(network, account, ipfs)
    st = status(session, task)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "task_id": task,
                    "node": session.address,
                    "joined": st.member.joined,
                    "leaving": st.member.leaving,
                    "stake": str(st.member.stake),
                    "claimable": str(st.claimable),
                    "pending": str(st.pending),
                    "claimed": str(st.claimed),
                    "rounds": [
                        {
                            "round": r.round,
                            "finalized": r.finalized,
                            "settled": r.settled,
                            "submitted": r.submitted,
                            "verdict": r.verdict,
                            "reward": str(r.reward),
                            "claimed": r.claimed,
                        }
                        for r in st.rounds
                    ],
                }
            )
        )
        return
    membership = "leaving" if st.member.leaving else "joined" if st.member.joined else "not joined"
    console.print(
        f"{session.address} in task {task}: {membership}, stake {tokens(st.member.stake)}"
    )
    table = new_table(
        "round",
        "state",
        "submitted",
        "verdict",
        "reward (LLT)",
        "claimed (LLT)",
        text=(
            "state",
            "verdict",
        ),
    )
    for r in st.rounds:
        table.add_row(
            str(r.round),
            session.ledger.round_state(task, r.round).name.lower(),
            "yes" if r.submitted else "no",
            r.verdict or "-",
            tokens(r.reward, unit=False),
            "yes" if r.claimed else "no",
        )
    console.print(table)
    console.print(
        f"claimable {tokens(st.claimable)}, waiting for a challenge window "
        f"{tokens(st.pending)}, claimed {tokens(st.claimed)}"
    )
