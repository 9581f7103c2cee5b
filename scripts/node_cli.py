"""``loraledger node``: what a participant runs: join a task, train and commit rounds, reveal
them, claim rewards."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from loraledger.display import chain_time, tokens
from loraledger.errors import ConfigError
from scripts.console import console, err_console
from scripts.console import table as new_table
from scripts.options import (
    AdapterFolderOption,
    AdapterRoundOption,
    ConfirmationsOption,
    IpfsOption,
    JsonOption,
    NetworkOption,
    ReplaceAdapterOption,
    TaskOption,
    open_cli_session,
    with_option_group,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

    from chain.bindings import ClaimRequest
    from chain.session import Session
    from fl_node.data import NodeData
    from fl_node.model import LoadedModel
    from fl_node.node import NodeStatus, SubmittedUpdate
    from fl_node.train import ExampleDP, ProgressCallback, StepReport, TrainSettings
    from loraledger.update import PeftSpec

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


_DATA = typer.Option(
    ...,
    "--data",
    "-d",
    help="Your data: JSON/JSONL (Alpaca or chat messages), CSV, or a folder.",
)
_MODEL = typer.Option(
    "smollm2",
    "--model",
    "-m",
    help="smollm2 (bundled), tiny (built from the bundled corpus), a local folder or a hub id.",
)
_QUANTIZATION = typer.Option(
    "none", "--quantization", help="none, 4bit or 8bit (QLoRA; bitsandbytes)."
)
_STEPS = typer.Option(None, "--steps", help="Optimizer steps (overrides --epochs).")
_EPOCHS = typer.Option(1.0, "--epochs", help="Epochs over the local training data.")
_LR = typer.Option(2e-4, "--lr", help="Learning rate.")
_BATCH_SIZE = typer.Option(4, "--batch-size", help="Examples per micro-batch.")
_GRAD_ACCUM = typer.Option(1, "--grad-accum", help="Micro-batches per optimizer step.")
_MAX_LENGTH = typer.Option(256, "--max-length", help="Tokens per example (longer ones are cut).")
_SEED = typer.Option(0, "--seed", help="Random seed.")
_FEDPROX_MU = typer.Option(
    0.0,
    "--fedprox-mu",
    help="Weight of a proximal term that keeps the adapter near the global one it starts from "
    "(FedProx in rounds, Ditto-style in personalize; 0: off).",
)
_EVAL_FRACTION = typer.Option(
    0.1, "--eval-fraction", help="Share of the data held out for local eval."
)


@dataclass(frozen=True)
class _TuneOptions:
    """Data, model and schedule: what any training of a node needs besides the LoRA shape."""

    data: Path
    model: str
    quantization: str
    steps: int | None
    epochs: float
    lr: float
    batch_size: int
    grad_accum: int
    max_length: int
    seed: int
    fedprox_mu: float
    eval_fraction: float

    def settings(self) -> TrainSettings:
        from fl_node.train import TrainSettings

        return TrainSettings(
            max_steps=self.steps,
            epochs=self.epochs,
            learning_rate=self.lr,
            batch_size=self.batch_size,
            grad_accum=self.grad_accum,
            max_length=self.max_length,
            seed=self.seed,
            fedprox_mu=self.fedprox_mu,
        )

    def load(self) -> tuple[NodeData, LoadedModel]:
        """The node's data split (seeded) and the base model, loaded once."""
        from fl_node.data import load_examples, train_eval_split
        from fl_node.model import ModelConfig, load_base_model

        data = train_eval_split(load_examples(self.data), self.eval_fraction, seed=self.seed)
        with console.status(f"loading {self.model}"):
            model = load_base_model(ModelConfig(source=self.model, quantization=self.quantization))
        return data, model


def _tune_options(
    data: Path = _DATA,
    model: str = _MODEL,
    quantization: str = _QUANTIZATION,
    steps: int | None = _STEPS,
    epochs: float = _EPOCHS,
    lr: float = _LR,
    batch_size: int = _BATCH_SIZE,
    grad_accum: int = _GRAD_ACCUM,
    max_length: int = _MAX_LENGTH,
    seed: int = _SEED,
    fedprox_mu: float = _FEDPROX_MU,
    eval_fraction: float = _EVAL_FRACTION,
) -> _TuneOptions:
    return _TuneOptions(
        data,
        model,
        quantization,
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


def _lora_options(
    rank: int = typer.Option(8, "--rank", help="LoRA rank (at most the task's)."),
    alpha: float = typer.Option(16.0, "--alpha", help="LoRA alpha."),
    dropout: float = typer.Option(0.0, "--dropout", help="LoRA dropout."),
    targets: str = typer.Option(
        "q_proj,k_proj,v_proj,o_proj", "--targets", help="LoRA target modules."
    ),
) -> PeftSpec:
    from pydantic import ValidationError

    from loraledger.settings import refusal
    from loraledger.update import PeftSpec

    try:
        return PeftSpec(
            rank=rank,
            alpha=alpha,
            dropout=dropout,
            target_modules=tuple(t.strip() for t in targets.split(",") if t.strip()),
        )
    except ValidationError as exc:
        raise refusal(exc) from None


def _privacy_options(
    noise_multiplier: float | None = typer.Option(
        None,
        "--dp-noise-multiplier",
        help="Train with example-level DP-SGD (Opacus) at this noise multiplier: Gaussian noise "
        "of this times --dp-clip-norm on each step's clipped per-example gradients (off when "
        "not given; `loraledger privacy noise` finds one for a target epsilon). A task that "
        "requires DP sets it up by itself: leave the --dp-* options out, or give at least its "
        "noise at its delta and accountant (`loraledger task show`).",
    ),
    clip_norm: float = typer.Option(
        1.0, "--dp-clip-norm", help="DP-SGD: each example's gradient is clipped to this L2 norm."
    ),
    delta: float = typer.Option(1e-5, "--dp-delta", help="DP-SGD: delta of (epsilon, delta)."),
    accountant: str = typer.Option(
        "rdp", "--dp-accountant", help="DP-SGD: rdp or prv (tighter) counts epsilon."
    ),
    budget: float | None = typer.Option(
        None,
        "--dp-budget",
        help="DP-SGD: the most epsilon this node spends on the task over all its rounds; an "
        "update that would exceed it is not committed.",
    ),
) -> ExampleDP | None:
    from fl_node.train import ExampleDP

    if noise_multiplier is None:
        if (clip_norm, delta, accountant, budget) != (1.0, 1e-5, "rdp", None):
            raise ConfigError(
                "the --dp-* options set DP-SGD up, which --dp-noise-multiplier switches on",
                hint="give --dp-noise-multiplier too",
            )
        return None
    return ExampleDP.model_validate(
        {
            "noise_multiplier": noise_multiplier,
            "clip_norm": clip_norm,
            "delta": delta,
            "accountant": accountant,
            "epsilon_budget": budget,
        }
    )


with_tune_options = with_option_group(_tune_options, "tune")
"""Data, model and schedule: ``node train``, ``node run`` and ``node personalize`` (whose
adapter has the global adapter's LoRA shape)."""

with_lora_options = with_option_group(_lora_options, "peft")
"""The LoRA shape a node trains its round updates in: ``node train`` and ``node run``."""

with_privacy_options = with_option_group(_privacy_options, "privacy")
"""Example-level DP-SGD for the round updates of ``node train`` and ``node run``."""


def _trainer(session, task_id: int, peft: PeftSpec, tune: _TuneOptions, settings: TrainSettings):
    """Load model and data once; return a function that trains the open round and commits to
    the update (hidden until ``node reveal``)."""
    from fl_node.node import as_policy_requires, submit_round

    policy = session.history.task_created(task_id).params.privacy
    if policy.required:
        as_policy_requires(settings, policy)  # refused before the model loads
        err_console.print(f"task {task_id} requires {policy.describe()}", highlight=False)
    data, model = tune.load()

    def train_one():
        round_ = session.ledger.open_round(task_id)  # once, not on every step: it costs RPC calls
        with _training_progress(
            f"round {round_}", f"round {round_}: fetching the start adapter, checking, evaluating"
        ) as progress:
            return submit_round(
                session, task_id, model, data, peft=peft, settings=settings, progress=progress
            )

    return train_one


@contextmanager
def _training_progress(
    label: str, before: str, *, to: Console = console
) -> Iterator[ProgressCallback]:
    """A spinner reading ``before`` until the first optimizer step (start adapter, checks,
    evaluation before), then a bar with the loss, on ``to`` (stderr where stdout is JSON):
    nothing is drawn for training that fails its checks before the first step."""
    waiting = to.status(before)
    bar: Progress | None = None
    job = None

    def progress(step: StepReport) -> None:
        nonlocal bar, job
        if bar is None:
            waiting.stop()
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]}"),
                TimeRemainingColumn(),
                console=to,
            )
            bar.start()
            job = bar.add_task(label, total=step.total_steps, loss="-")
        bar.update(job, total=step.total_steps, completed=step.step, loss=f"{step.loss:.3f}")

    waiting.start()
    try:
        yield progress
    finally:
        waiting.stop()
        if bar is not None:
            bar.stop()


def _report_submitted(s) -> None:
    resumed = " (resumed after a restart)" if s.resumed else ""
    losses = ""
    if s.eval_loss_before is not None and s.eval_loss_after is not None:
        losses = f", local eval loss {s.eval_loss_before:.3f} -> {s.eval_loss_after:.3f}"
    spent = "" if s.epsilon is None else f", DP epsilon {s.epsilon:.3f} this round"
    console.print(
        f"round {s.round}: committed to update {s.digest[:16]}… ({s.num_examples} examples"
        f"{losses}{spent}){resumed}; reveal it once the commit window ends"
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
@with_privacy_options
@with_lora_options
@with_tune_options
def train_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
    *,
    tune: _TuneOptions,
    peft: PeftSpec,
    privacy: ExampleDP | None,
) -> None:
    """Train one round on your data from the round's global adapter and commit to the update
    (a hash: nothing is pinned or published until `node reveal`)."""
    settings = tune.settings().replace(privacy=privacy)  # refused before anything connects
    session = _session(network, account, ipfs)
    _report_submitted(_trainer(session, task, peft, tune, settings)())


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


@app.command("personalize")
@with_tune_options
def personalize_command(
    task: int = TaskOption,
    out: Path = AdapterFolderOption,
    round_: int | None = AdapterRoundOption,
    force: bool = ReplaceAdapterOption,
    network: str = NetworkOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
    *,
    tune: _TuneOptions,
) -> None:
    """Fine-tune the task's global adapter a little on your own data, for your own use: the
    result is written to --out as a folder plain peft loads, with personalization.json (where it
    started, how it was trained, both adapters' loss on your held-out split), and is never
    pinned, committed or sent anywhere (no account needed)."""
    import json

    from aggregator.inputs import load_published_adapter
    from fl_node.personalize import PERSONALIZATION_NAME, personalize
    from loraledger.paths import write_json_atomic
    from loraledger.update import (
        ADAPTER_CONFIG_NAME,
        ADAPTER_WEIGHTS_NAME,
        check_adapter_folder,
        unpack_global_adapter,
    )

    check_adapter_folder(out, replace=force)  # before anything is loaded or trained
    settings = tune.settings()
    session = open_cli_session(network, ipfs)  # read-only: nothing is signed or sent
    published = load_published_adapter(session.ledger, session.history, session.store, task, round_)
    data, model = tune.load()
    what = "the initial adapter" if published.round == 0 else f"round {published.round}'s adapter"
    with _training_progress(
        "personalizing",
        f"checking and evaluating {what} on your held-out data",
        to=err_console if as_json else console,
    ) as progress:
        result = personalize(
            model,
            data,
            published.data,
            published.adapter.digest,
            task_id=task,
            settings=settings,
            progress=progress,
        )
    unpack_global_adapter(result.adapter, out)
    record = {
        "task_id": task,
        "round": published.round,
        "start_cid": published.cid,
        "start_digest": published.adapter.digest,
        "start_settled": published.settled,
        "digest": result.adapter.digest,
        "base_model": result.adapter.metadata.base_model,
        "peft": result.adapter.metadata.peft.model_dump(mode="json"),
        "steps": result.steps,
        "train_examples": result.num_examples,
        "eval_examples": len(data.eval),
        "eval_loss_global": result.eval_loss_global,
        "eval_loss_personal": result.eval_loss_personal,
        "train_loss_first": result.train_loss_first,
        "train_loss_last": result.train_loss_last,
        "train_seconds": round(result.train_seconds, 3),
        "settings": settings.model_dump(mode="json"),
        "submitted": False,
    }
    write_json_atomic(out / PERSONALIZATION_NAME, record)
    files = [out / ADAPTER_CONFIG_NAME, out / ADAPTER_WEIGHTS_NAME, out / PERSONALIZATION_NAME]
    if as_json:
        console.print_json(json.dumps({**record, "files": [str(path) for path in files]}))
        return
    console.print(
        f"task {task}: fine-tuned {what} ({published.cid}, checked against its on-chain "
        f"digest) for {result.steps} steps on {result.num_examples} of your examples",
        highlight=False,
    )
    before, after = result.eval_loss_global, result.eval_loss_personal
    if before is None or after is None:
        console.print("no held-out examples to compare on (raise --eval-fraction)")
    else:
        console.print(
            f"your held-out loss ({len(data.eval)} examples): global {before:.4f}, "
            f"personalized {after:.4f}",
            highlight=False,
        )
        if after >= before:
            console.print(
                "[yellow]note:[/] the personalized adapter is not better than the global one "
                "on your held-out data: try fewer --steps or a lower --lr, or use the global "
                "adapter as it is (`loraledger adapter export`)",
                highlight=False,
            )
    console.print(
        f"written to {out}/ ({', '.join(path.name for path in files)}); it stays on this "
        "machine: nothing was pinned or sent to the chain",
        highlight=False,
    )


@app.command("run")
@with_privacy_options
@with_lora_options
@with_tune_options
def run_command(
    task: int = TaskOption,
    network: str = NetworkOption,
    account: str = NodeAccountOption,
    ipfs: str | None = IpfsOption,
    poll: float = typer.Option(2.0, "--poll", help="Seconds between chain polls."),
    confirmations: int = ConfirmationsOption,
    *,
    tune: _TuneOptions,
    peft: PeftSpec,
    privacy: ExampleDP | None,
) -> None:
    """Take part in every round until the task is complete: commit, then reveal (resumes
    after a restart, never commits twice)."""
    from chain.recovery import outlast
    from fl_node.node import run

    settings = tune.settings().replace(privacy=privacy)  # refused before anything connects
    # started while the chain or the IPFS node restarts: wait for them, as the loop does
    session = outlast(lambda: _session(network, account, ipfs), f"node run of task {task}")
    session.ledger.chain.confirmations = confirmations
    trainer = outlast(
        lambda: _trainer(session, task, peft, tune, settings), f"node run of task {task}"
    )
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


def _privacy_json(st: NodeStatus) -> dict[str, object] | None:
    """``node status --json``'s privacy: the composed epsilon (``null`` with ``unbounded`` when
    a round was committed without DP-SGD) and every committed round's record."""
    if st.epsilon is None:
        return None
    private = [p.record for p in st.privacy if p.record is not None]
    return {
        "epsilon": None if math.isinf(st.epsilon) else st.epsilon,
        "unbounded": math.isinf(st.epsilon),
        "delta": private[-1].delta,
        "accountant": private[-1].accountant,
        "rounds": [
            {
                "round": p.round,
                "digest": p.digest,
                "private": p.record is not None,
                **(p.record.model_dump() if p.record is not None else {}),
            }
            for p in st.privacy
        ],
    }


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
                    "privacy": _privacy_json(st),
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
    private = [p for p in st.privacy if p.record is not None]
    clear = [str(p.round) for p in st.privacy if p.record is None]
    if st.epsilon is not None and clear:
        console.print(
            f"differential privacy: [yellow]no bound[/]: round(s) {', '.join(clear)} were "
            f"committed without DP-SGD (rounds {', '.join(str(p.round) for p in private)} with it)",
            highlight=False,
        )
    elif st.epsilon is not None:
        last = private[-1].record
        assert last is not None
        console.print(
            f"differential privacy: epsilon {st.epsilon:.3f} spent on this task at delta "
            f"{last.delta:g} ({last.accountant}) by {len(private)} DP-SGD update(s) "
            f"(rounds {', '.join(str(p.round) for p in private)})",
            highlight=False,
        )
