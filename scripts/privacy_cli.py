"""``loraledger privacy``: plan a differentially private run: the epsilon a schedule spends, or
the noise a target epsilon needs (:mod:`loraledger.privacy`, Opacus's accountants)."""

from __future__ import annotations

import json

import typer

from scripts.console import console
from scripts.console import table as new_table
from scripts.options import JsonOption

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Plan differential privacy: the epsilon a schedule of the sampled Gaussian mechanism spends
    (DP-SGD over a node's examples, or DP-FedAvg over the nodes), or the noise a target epsilon
    needs."""


SampleRateOption = typer.Option(
    ...,
    "--sample-rate",
    help="Chance that a contributor is in a step's sample: batch size / examples for DP-SGD, "
    "nodes per round / nodes for DP-FedAvg (1: all of them).",
)
DeltaOption = typer.Option(
    1e-5, "--delta", help="Delta of (epsilon, delta)-DP: well below 1 / contributors."
)
AccountantOption = typer.Option(
    "rdp",
    "--accountant",
    help="rdp (Rényi DP, the usual bound) or prv (privacy random variables, tighter).",
)


@app.command("epsilon")
def epsilon_command(
    noise_multiplier: float = typer.Option(
        ...,
        "--noise-multiplier",
        help="Noise standard deviation over the clipping bound.",
    ),
    sample_rate: float = SampleRateOption,
    steps: int = typer.Option(
        ...,
        "--steps",
        help="Steps in a round: optimizer steps (DP-SGD), 1 (DP-FedAvg, a round is a step).",
    ),
    rounds: int = typer.Option(1, "--rounds", "-r", help="Rounds: the epsilon after each."),
    delta: float = DeltaOption,
    accountant: str = AccountantOption,
    as_json: bool = JsonOption,
) -> None:
    """The epsilon spent after each round of a schedule of the sampled Gaussian mechanism."""
    from loraledger.privacy import accountant_named, epsilon_by_round

    spent = epsilon_by_round(
        noise_multiplier, sample_rate, steps, rounds, delta, accountant_named(accountant)
    )
    if as_json:
        body = {
            "noise_multiplier": noise_multiplier,
            "sample_rate": sample_rate,
            "steps_per_round": steps,
            "delta": delta,
            "accountant": accountant,
            "epsilon_by_round": spent,
        }
        console.print_json(json.dumps(body))
        return
    table = new_table(
        "round", "steps", "epsilon", title=f"epsilon at delta={delta:g} ({accountant})"
    )
    for round_, eps in enumerate(spent, start=1):
        table.add_row(str(round_), str(round_ * steps), f"{eps:.3f}")
    console.print(table)
    console.print(
        f"noise multiplier {noise_multiplier:g}, sample rate {sample_rate:g}, {steps} step(s) a "
        f"round: epsilon {spent[-1]:.3f} after {rounds} round(s)",
        highlight=False,
    )


@app.command("noise")
def noise_command(
    target_epsilon: float = typer.Option(
        ..., "--epsilon", help="The epsilon the whole run may spend."
    ),
    sample_rate: float = SampleRateOption,
    steps: int = typer.Option(..., "--steps", help="Steps over the whole run."),
    delta: float = DeltaOption,
    accountant: str = AccountantOption,
    as_json: bool = JsonOption,
) -> None:
    """The smallest noise multiplier with which the whole run spends at most --epsilon."""
    from loraledger.privacy import Stretch, accountant_named, epsilon, noise_multiplier

    named = accountant_named(accountant)
    sigma = noise_multiplier(target_epsilon, delta, sample_rate, steps, named)
    spent = epsilon([Stretch(sigma, sample_rate, steps)], delta, named)
    if as_json:
        body = {
            "target_epsilon": target_epsilon,
            "delta": delta,
            "sample_rate": sample_rate,
            "steps": steps,
            "accountant": accountant,
            "noise_multiplier": sigma,
            "epsilon": spent,
        }
        console.print_json(json.dumps(body))
        return
    console.print(
        f"noise multiplier {sigma:.4f}: {steps} steps at sample rate {sample_rate:g} spend "
        f"epsilon {spent:.3f} <= {target_epsilon:g} at delta={delta:g} ({accountant})",
        highlight=False,
    )
