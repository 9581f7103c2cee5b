"""``loraledger experiment ...``: the research experiments, as tables and plots.

Each command trains for real (SmolLM2-135M by default, ``--tiny`` for a tiny model built
on the fly) and writes ``results.md`` (tables, configuration, the exact command),
``results.json`` and PNG plots to ``--out`` (default ``results/<experiment>/`` in the current
folder; the committed figures under ``docs/results/`` change only when ``--out`` names them).
Defaults are sized for 2 CPU cores; docs/experiments.md gives bigger settings for a GPU.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

import typer
from rich.table import Table as RichTable

from experiments.config import TINY, ExperimentConfig
from experiments.report import Report, fmt
from experiments.runner import Hooks
from loraledger.errors import ConfigError
from scripts.console import console, step_progress

app = typer.Typer(no_args_is_help=True)

RESULTS = Path("results")
"""Where experiments write by default: ``results/<experiment>/`` under the current folder. The
committed figures (``docs/results/<experiment>/``) change only when ``--out`` names them."""

ModelOption = typer.Option(
    "smollm2", "--model", "-m", help="smollm2, tiny, a local model folder or hub id."
)
TinyOption = typer.Option(
    False, "--tiny", help="A tiny model built on the fly (tests; numbers mean nothing)."
)
RoundsOption = typer.Option(4, "--rounds", "-r", help="Federated rounds.")
StepsOption = typer.Option(5, "--steps", "-S", help="Optimizer steps per node per round.")
SeedsOption = typer.Option(
    "0",
    "--seeds",
    "--seed",
    help="Seeds, comma-separated (e.g. 0,1,2): one run per seed, each seeding the split, the "
    "LoRA init and the batches; figures are means over the seeds with 95% Student t intervals "
    "(none for one seed). --seed N is the same as --seeds N.",
)
OutOption = typer.Option(
    None,
    "--out",
    "-o",
    help="Output folder (default results/<experiment>/ here; docs/results/<experiment> "
    "replaces the committed figures).",
)
BatchOption = typer.Option(4, "--batch-size", "-b", help="Examples per optimizer step.")
LengthOption = typer.Option(128, "--max-length", help="Tokens per example (longer ones are cut).")
LrOption = typer.Option(5e-4, "--lr", help="AdamW learning rate.")
RankOption = typer.Option(8, "--rank", help="LoRA rank (q/k/v/o, alpha = 2 x rank).")
SplitOption = typer.Option(
    "label", "--split", help="Non-IID split: label (whole topics), dirichlet or iid."
)
AlphaOption = typer.Option(
    0.5, "--dirichlet-alpha", help="Skew of --split dirichlet (small: skewed)."
)
EvalOption = typer.Option(32, "--eval-examples", help="Held-out examples per node, at most.")
ExamplesOption = typer.Option(
    None, "--examples", help="Use a seeded subset of this many corpus examples."
)


def _config(
    model: str,
    tiny: bool,
    nodes: int,
    rounds: int,
    steps: int,
    seeds: tuple[int, ...],
    batch_size: int,
    max_length: int,
    lr: float,
    rank: int,
    split: str,
    dirichlet_alpha: float,
    eval_examples: int,
    examples: int | None,
) -> ExperimentConfig:
    if split not in ("iid", "label", "dirichlet"):
        raise ConfigError(f"--split must be iid, label or dirichlet, got {split!r}")
    return ExperimentConfig(
        model=TINY if tiny else model,
        nodes=nodes,
        rounds=rounds,
        steps=steps,
        seeds=seeds,
        batch_size=batch_size,
        max_length=max_length,
        learning_rate=lr,
        rank=rank,
        split=split,
        dirichlet_alpha=dirichlet_alpha,
        eval_examples=eval_examples,
        examples=examples,
    )


def _command(
    name: str, config: ExperimentConfig, out: Path | None, extra: Sequence[str] = ()
) -> str:
    """The full command line that reproduces a run (every setting spelled out)."""
    parts = ["loraledger", "experiment", name]
    parts += ["--tiny"] if config.tiny else ["--model", config.model]
    parts += [
        "--nodes",
        str(config.nodes),
        "--rounds",
        str(config.rounds),
        "--steps",
        str(config.steps),
        "--seeds",
        _seeds_text(config.seeds),
        "--batch-size",
        str(config.batch_size),
        "--max-length",
        str(config.max_length),
        "--lr",
        f"{config.learning_rate:g}",
        "--rank",
        str(config.rank),
        "--split",
        config.split,
        "--dirichlet-alpha",
        f"{config.dirichlet_alpha:g}",
        "--eval-examples",
        str(config.eval_examples),
    ]
    if config.examples is not None:
        parts += ["--examples", str(config.examples)]
    parts += list(extra)
    if out is not None:
        parts += ["--out", str(out)]
    return shlex.join(parts)


def _seeds_text(seeds: Sequence[int]) -> str:
    return ",".join(map(str, seeds))


def _seeds(text: str) -> tuple[int, ...]:
    values = _int_list(text, "--seeds")
    if len(set(values)) != len(values) or min(values) < 0:
        raise ConfigError(f"--seeds must be distinct seeds >= 0, got {text!r}")
    return tuple(values)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{option} needs at least one value, got {text!r}")
    return values


def _execute(title: str, total_steps: int, out: Path, work: Callable[[Hooks], Report]) -> None:
    """Run ``work`` under a progress bar, then print where the results went."""
    with step_progress() as progress:
        task = progress.add_task(title, total=total_steps)
        hooks = Hooks(
            step=lambda: progress.advance(task),
            phase=lambda text: progress.update(task, description=text),
        )
        report = work(hooks)
    console.print(f"[bold]{report.title}[/]")
    if report.summary:
        console.print(report.summary, highlight=False)
    first = report.tables[0]
    table = RichTable(*first.headers, title=first.heading)
    for row in first.rows:
        table.add_row(*(fmt(cell) for cell in row))
    console.print(table)
    console.print(f"wrote {out / 'results.md'}, results.json and {len(report.plots)} plot(s)")


@app.command("fl-vs-local")
def fl_vs_local(
    model: str = ModelOption,
    tiny: bool = TinyOption,
    nodes: int = typer.Option(4, "--nodes", "-N", help="Nodes (shards of the bundled data)."),
    rounds: int = RoundsOption,
    steps: int = StepsOption,
    seeds: str = SeedsOption,
    out: Path | None = OutOption,
    batch_size: int = BatchOption,
    max_length: int = LengthOption,
    lr: float = LrOption,
    rank: int = RankOption,
    split: str = SplitOption,
    dirichlet_alpha: float = AlphaOption,
    eval_examples: int = EvalOption,
    examples: int | None = ExamplesOption,
    pooled_examples: int = typer.Option(
        64,
        "--pooled-examples",
        help="Size of the pooled test set: distinct examples drawn from all nodes' data "
        "(seeded), none of which any node trains on.",
    ),
    personalize_steps: int = typer.Option(
        5,
        "--personalize-steps",
        help="Personalized approach: steps each node fine-tunes the final global adapter on "
        "its own data (0: the global adapter as is).",
    ),
) -> None:
    """Federated vs each node alone vs centralized vs personalized (the global adapter
    fine-tuned by each node): held-out loss on each node's own split and on a pooled test set."""
    from experiments import fl_vs_local as experiment

    config = _config(
        model,
        tiny,
        nodes,
        rounds,
        steps,
        _seeds(seeds),
        batch_size,
        max_length,
        lr,
        rank,
        split,
        dirichlet_alpha,
        eval_examples,
        examples,
    ).replace(pooled_examples=pooled_examples)
    folder = out or RESULTS / experiment.NAME
    extra = [
        "--pooled-examples",
        str(pooled_examples),
        "--personalize-steps",
        str(personalize_steps),
    ]
    command = _command(experiment.NAME, config, out, extra)
    _execute(
        "fl-vs-local",
        experiment.planned_steps(config, personalize_steps),
        folder,
        lambda hooks: experiment.run(
            config, folder, command, hooks, personalize_steps=personalize_steps
        ),
    )


@app.command("nodes")
def nodes_command(
    counts: str = typer.Option("2,4,8,16,32", "--counts", help="Node counts, comma-separated."),
    model: str = ModelOption,
    tiny: bool = TinyOption,
    rounds: int = typer.Option(3, "--rounds", "-r", help="Federated rounds."),
    steps: int = typer.Option(2, "--steps", "-S", help="Optimizer steps per node per round."),
    seeds: str = SeedsOption,
    out: Path | None = OutOption,
    batch_size: int = typer.Option(2, "--batch-size", "-b", help="Examples per optimizer step."),
    max_length: int = LengthOption,
    lr: float = LrOption,
    rank: int = RankOption,
    split: str = typer.Option(
        "dirichlet", "--split", help="Non-IID split: dirichlet, label or iid."
    ),
    dirichlet_alpha: float = AlphaOption,
    eval_examples: int = typer.Option(
        8, "--eval-examples", help="Held-out examples per node, at most."
    ),
    examples: int | None = ExamplesOption,
) -> None:
    """Convergence per round for 2, 4, 8, 16, 32 nodes sharing the same total data."""
    from experiments import nodes as experiment

    values = _int_list(counts, "--counts")
    config = _config(
        model,
        tiny,
        max(values),
        rounds,
        steps,
        _seeds(seeds),
        batch_size,
        max_length,
        lr,
        rank,
        split,
        dirichlet_alpha,
        eval_examples,
        examples,
    )
    folder = out or RESULTS / experiment.NAME
    command = _command(experiment.NAME, config, out, ["--counts", counts]).replace(
        f" --nodes {config.nodes}", ""
    )
    _execute(
        "nodes",
        experiment.planned_steps(config, values),
        folder,
        lambda hooks: experiment.run(config, values, folder, command, hooks),
    )


@app.command("ranks")
def ranks_command(
    ranks: str = typer.Option("2,4,8", "--ranks", help="LoRA ranks, cycled over the nodes."),
    model: str = ModelOption,
    tiny: bool = TinyOption,
    nodes: int = typer.Option(6, "--nodes", "-N", help="Nodes (shards of the bundled data)."),
    rounds: int = RoundsOption,
    steps: int = typer.Option(3, "--steps", "-S", help="Optimizer steps per node per round."),
    seeds: str = SeedsOption,
    out: Path | None = OutOption,
    batch_size: int = typer.Option(2, "--batch-size", "-b", help="Examples per optimizer step."),
    max_length: int = LengthOption,
    lr: float = LrOption,
    split: str = SplitOption,
    dirichlet_alpha: float = AlphaOption,
    eval_examples: int = EvalOption,
    examples: int | None = ExamplesOption,
) -> None:
    """Heterogeneous ranks: FlexLoRA vs zero-padding vs every node at the smallest rank."""
    from experiments import ranks as experiment

    values = _int_list(ranks, "--ranks")
    config = _config(
        model,
        tiny,
        nodes,
        rounds,
        steps,
        _seeds(seeds),
        batch_size,
        max_length,
        lr,
        max(values),
        split,
        dirichlet_alpha,
        eval_examples,
        examples,
    )
    folder = out or RESULTS / experiment.NAME
    command = _command(experiment.NAME, config, out, ["--ranks", ranks]).replace(
        f" --rank {config.rank}", ""
    )
    _execute(
        "ranks",
        experiment.planned_steps(config),
        folder,
        lambda hooks: experiment.run(config, values, folder, command, hooks),
    )


@app.command("robustness")
def robustness_command(
    poisoned: str = typer.Option("0,1,2", "--poisoned", help="Numbers of poisoned nodes."),
    strategies: str = typer.Option(
        "fedavg,clipped,median,trimmed-mean,krum",
        "--strategies",
        help="fedavg, clipped, median, trimmed-mean, krum (comma-separated).",
    ),
    attack: str = typer.Option("sign-flip", "--attack", help="sign-flip, scale or noise."),
    factor: float = typer.Option(
        10.0, "--attack-factor", help="How much the attack scales the change."
    ),
    model: str = ModelOption,
    tiny: bool = TinyOption,
    nodes: int = typer.Option(8, "--nodes", "-N", help="Nodes (shards of the bundled data)."),
    rounds: int = typer.Option(2, "--rounds", "-r", help="Federated rounds."),
    steps: int = typer.Option(3, "--steps", "-S", help="Optimizer steps per node per round."),
    seeds: str = SeedsOption,
    out: Path | None = OutOption,
    batch_size: int = typer.Option(2, "--batch-size", "-b", help="Examples per optimizer step."),
    max_length: int = LengthOption,
    lr: float = LrOption,
    rank: int = RankOption,
    split: str = typer.Option(
        "dirichlet", "--split", help="Non-IID split: dirichlet, label or iid."
    ),
    dirichlet_alpha: float = AlphaOption,
    eval_examples: int = typer.Option(
        16, "--eval-examples", help="Held-out examples per node, at most."
    ),
    examples: int | None = ExamplesOption,
) -> None:
    """0, 1, 2 of 8 nodes poisoned: FedAvg vs clipping, median, trimmed mean and Krum."""
    from experiments import robustness as experiment
    from experiments.aggregation import Attack

    counts = _int_list(poisoned, "--poisoned")
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    threat = Attack(attack, factor)
    config = _config(
        model,
        tiny,
        nodes,
        rounds,
        steps,
        _seeds(seeds),
        batch_size,
        max_length,
        lr,
        rank,
        split,
        dirichlet_alpha,
        eval_examples,
        examples,
    )
    folder = out or RESULTS / experiment.NAME
    extra = [
        "--poisoned",
        poisoned,
        "--strategies",
        strategies,
        "--attack",
        attack,
        "--attack-factor",
        f"{factor:g}",
    ]
    command = _command(experiment.NAME, config, out, extra)
    _execute(
        "robustness",
        experiment.planned_steps(config, counts, names),
        folder,
        lambda hooks: experiment.run(config, counts, names, threat, folder, command, hooks),
    )


@app.command("quantization")
def quantization_command(
    model: str = ModelOption,
    tiny: bool = TinyOption,
    nodes: int = typer.Option(4, "--nodes", "-N", help="Nodes (shards of the bundled data)."),
    rounds: int = RoundsOption,
    steps: int = StepsOption,
    seeds: str = SeedsOption,
    out: Path | None = OutOption,
    batch_size: int = BatchOption,
    max_length: int = LengthOption,
    lr: float = LrOption,
    rank: int = RankOption,
    split: str = SplitOption,
    dirichlet_alpha: float = AlphaOption,
    eval_examples: int = EvalOption,
    examples: int | None = ExamplesOption,
) -> None:
    """16-bit vs 4-bit (QLoRA) base model in the same federation (needs CUDA)."""
    from experiments import quantization as experiment

    experiment.require_cuda()  # before anything is loaded
    config = _config(
        model,
        tiny,
        nodes,
        rounds,
        steps,
        _seeds(seeds),
        batch_size,
        max_length,
        lr,
        rank,
        split,
        dirichlet_alpha,
        eval_examples,
        examples,
    )
    folder = out or RESULTS / experiment.NAME
    command = _command(experiment.NAME, config, out)
    _execute(
        "quantization",
        experiment.planned_steps(config),
        folder,
        lambda hooks: experiment.run(config, folder, command, hooks),
    )


@app.command("incentives")
def incentives_command(
    attacks: str = typer.Option(
        "inflate,zero,noise,sybil,copy,frontrun,malformed",
        "--attacks",
        help="Attacks on the pool to run, comma-separated.",
    ),
    honest: int = typer.Option(3, "--honest", help="Honest nodes next to the attackers."),
    sybils: int = typer.Option(4, "--sybils", help="Accounts of the Sybil attacker."),
    rounds: int = typer.Option(2, "--rounds", "-r", help="Rounds of each run."),
    steps: int = typer.Option(4, "--steps", "-S", help="Optimizer steps per node per round."),
    tiny: bool = typer.Option(
        True, "--tiny/--smollm2", help="The tiny model (minutes) or SmolLM2-135M (an hour)."
    ),
    seeds: str = SeedsOption,
    out: Path | None = OutOption,
) -> None:
    """Every attack on the pool under the old reward rule and the new one: who is paid."""
    import tempfile

    from experiments import incentives as experiment

    config = experiment.IncentivesConfig(
        honest=honest,
        sybils=sybils,
        rounds=rounds,
        steps=steps,
        tiny=tiny,
        attacks=experiment.attacks_from(attacks),
        seeds=_seeds(seeds),
    )
    folder = out or RESULTS / experiment.NAME
    command = (
        f"loraledger experiment incentives --attacks {attacks} --honest {honest} "
        f"--sybils {sybils} --rounds {rounds} --steps {steps} "
        f"{'--tiny' if tiny else '--smollm2'} --seeds {_seeds_text(config.seeds)}"
        + (f" --out {out}" if out else "")
    )
    runs = len(config.seeds) * 2 * (1 + len(config.attacks) + int("inflate" in config.attacks))

    def work(hooks: Hooks) -> Report:
        with tempfile.TemporaryDirectory(prefix="loraledger-incentives-") as tmp:
            runner = experiment.demo_runner(tiny, Path(tmp))
            return experiment.run(config, runner, folder, command, hooks)

    _execute("incentives", runs, folder, work)


@app.command("privacy")
def privacy_command(
    epsilons: str = typer.Option(
        "1,3,8",
        "--epsilons",
        help="Target epsilons per node, comma-separated: one DP-SGD run each, plus a run "
        "without DP.",
    ),
    delta: float = typer.Option(1e-5, "--delta", help="The delta of every epsilon, in (0, 1)."),
    accountant: str = typer.Option("rdp", "--accountant", help="rdp or prv."),
    clip_norm: float = typer.Option(
        1.0, "--clip-norm", help="DP-SGD's per-example gradient clipping bound."
    ),
    members: int = typer.Option(
        12,
        "--members",
        help="Training examples per node (the attack's members); as many of the node's "
        "held-out examples are the non-members and its eval split.",
    ),
    model: str = ModelOption,
    tiny: bool = TinyOption,
    nodes: int = typer.Option(4, "--nodes", "-N", help="Nodes (shards of the bundled data)."),
    rounds: int = typer.Option(2, "--rounds", "-r", help="Federated rounds."),
    steps: int = typer.Option(6, "--steps", "-S", help="Optimizer steps per node per round."),
    seeds: str = SeedsOption,
    out: Path | None = OutOption,
    batch_size: int = BatchOption,
    max_length: int = LengthOption,
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate."),
    rank: int = RankOption,
    split: str = typer.Option(
        "iid", "--split", help="How the data is split over the nodes: iid, label or dirichlet."
    ),
    dirichlet_alpha: float = AlphaOption,
    examples: int | None = ExamplesOption,
    pooled_examples: int = typer.Option(
        16,
        "--pooled-examples",
        help="Size of a pooled test set no node holds, for utility (0: none).",
    ),
) -> None:
    """Membership inference on the global adapter next to its utility, at several DP epsilons.

    For each target epsilon (and once without DP) the federation trains with example-level
    DP-SGD on every node, its noise multiplier set so that a node's whole participation
    (rounds x steps at sample rate batch / --members) spends that epsilon at --delta. Then two
    attacks on the final global adapter tell the nodes' training examples from as many held-out
    ones: the loss threshold and the reference-model attack (base loss - global loss). Reports
    AUC, TPR at 1% and 10% FPR and the membership advantage, with the eval loss of each run.
    Noise seeds are fixed per seed, node and round for reproducibility (the product's are
    secret). Small training sets (--members) make the model overfit a little without DP, so
    that there is a leak to measure.
    """
    from experiments import privacy as experiment
    from loraledger.privacy import accountant_named

    settings = experiment.PrivacySettings(
        epsilons=experiment.epsilons_from(epsilons),
        delta=delta,
        accountant=accountant_named(accountant),
        clip_norm=clip_norm,
        members=members,
    )
    config = _config(
        model,
        tiny,
        nodes,
        rounds,
        steps,
        _seeds(seeds),
        batch_size,
        max_length,
        lr,
        rank,
        split,
        dirichlet_alpha,
        members,
        examples,
    ).replace(pooled_examples=pooled_examples)
    folder = out or RESULTS / experiment.NAME
    extra = [
        "--epsilons",
        ",".join(f"{e:g}" for e in settings.epsilons),
        "--delta",
        f"{delta:g}",
        "--accountant",
        settings.accountant,
        "--clip-norm",
        f"{clip_norm:g}",
        "--members",
        str(members),
        "--pooled-examples",
        str(pooled_examples),
    ]
    command = _command(experiment.NAME, config, out, extra).replace(
        f" --eval-examples {config.eval_examples}", ""
    )
    _execute(
        "privacy",
        experiment.planned_steps(config, settings),
        folder,
        lambda hooks: experiment.run(config, settings, folder, command, hooks),
    )
