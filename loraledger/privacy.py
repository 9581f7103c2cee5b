"""Differential-privacy accounting: what a run of the subsampled Gaussian mechanism spends.

Both DP modes the platform plans (docs/privacy.md) are runs of one mechanism: each step clips
every contribution to an L2 bound ``C`` and adds Gaussian noise of standard deviation
``noise_multiplier * C`` to their sum, over a random sample of the contributors.

- *example-level* DP-SGD on a node: contributors are the node's examples, ``sample_rate`` is
  the batch size over the node's examples, a step is an optimizer step;
- *node-level* DP-FedAvg: contributors are the nodes, ``sample_rate`` the share of nodes that
  take part in a round (1.0 when every node does), a step is a round.

The accounting is Opacus's (``opacus.accountants``): the RDP accountant (Mironov et al.;
Rényi DP of the sampled Gaussian mechanism, converted to (epsilon, delta)) and the PRV
accountant (Gopi et al.; numerical composition of privacy random variables, tighter). Opacus
rather than dp-accounting: it is also what DP-SGD on the node needs, and dp-accounting would add
dm-tree, absl-py and a pin of ``attrs<24`` for the same two accountants (docs/privacy.md).

Everything here is pure: numbers in, numbers out, a :class:`~loraledger.errors.ConfigError`
for an impossible input. :func:`gaussian_epsilon` is the exact epsilon of the full-batch
Gaussian mechanism (Balle & Wang 2018, via its mu-GDP form), against which the tests check the
accountants.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

from scipy.optimize import brentq
from scipy.stats import norm

from loraledger.errors import ConfigError

Accountant = Literal["rdp", "prv"]
ACCOUNTANTS: tuple[Accountant, ...] = get_args(Accountant)

DEFAULT_DELTA = 1e-5


@dataclass(frozen=True)
class Stretch:
    """``steps`` steps of the sampled Gaussian mechanism at one ``noise_multiplier`` (noise
    standard deviation over the clipping bound) and ``sample_rate`` (probability that a
    contributor is in a step's sample)."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not (self.noise_multiplier > 0 and math.isfinite(self.noise_multiplier)):
            raise ConfigError(
                f"the noise multiplier must be positive, got {self.noise_multiplier}",
                hint="noise standard deviation = noise multiplier x clipping bound",
            )
        if not (0 < self.sample_rate <= 1):
            raise ConfigError(f"the sample rate must be in (0, 1], got {self.sample_rate}")
        if self.steps < 0:
            raise ConfigError(f"steps must be >= 0, got {self.steps}")


@contextmanager
def _quiet() -> Iterator[None]:
    """Opacus's warnings are about its internals, not the user's input: the PRV grid takes
    log(0) at its edges, and the RDP bound says when its best order is the largest it tries
    (the bound is then looser than it could be, still a bound)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        yield


def _check_delta(delta: float) -> None:
    if not (0 < delta < 1):
        raise ConfigError(
            f"delta must be in (0, 1), got {delta}",
            hint="usually well below 1 / the number of contributors, e.g. 1e-5",
        )


def accountant_named(name: str) -> Accountant:
    """``name`` as an :data:`Accountant` (a ``ConfigError`` for any other name)."""
    for known in ACCOUNTANTS:
        if name == known:
            return known
    raise ConfigError(f"unknown accountant {name!r}: use {' or '.join(ACCOUNTANTS)}")


def _check_accountant(accountant: str) -> None:
    accountant_named(accountant)


def epsilon(history: Sequence[Stretch], delta: float, accountant: Accountant = "rdp") -> float:
    """The epsilon spent at ``delta`` by the stretches of ``history`` composed (0.0 for none)."""
    _check_delta(delta)
    _check_accountant(accountant)
    steps = [s for s in history if s.steps > 0]
    if not steps:
        return 0.0
    from opacus.accountants import PRVAccountant, RDPAccountant

    tracker = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    tracker.history = [(s.noise_multiplier, s.sample_rate, s.steps) for s in steps]
    with _quiet():
        spent = float(tracker.get_epsilon(delta=delta))
    if not math.isfinite(spent):
        raise ConfigError(
            f"the {accountant} accountant found no finite epsilon at delta={delta}",
            hint="more noise, fewer steps or a lower sample rate",
        )
    return spent


def epsilon_by_round(
    noise_multiplier: float,
    sample_rate: float,
    steps_per_round: int,
    rounds: int,
    delta: float,
    accountant: Accountant = "rdp",
) -> list[float]:
    """The total epsilon spent after each of ``rounds`` rounds of ``steps_per_round`` steps."""
    if rounds < 1 or steps_per_round < 1:
        raise ConfigError(
            f"rounds and steps per round must be >= 1, got {rounds}, {steps_per_round}"
        )
    return [
        epsilon([Stretch(noise_multiplier, sample_rate, steps_per_round * r)], delta, accountant)
        for r in range(1, rounds + 1)
    ]


def noise_multiplier(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: Accountant = "rdp",
    *,
    tolerance: float = 0.01,
) -> float:
    """The smallest noise multiplier (to within ``tolerance`` in epsilon) whose ``steps`` steps
    at ``sample_rate`` spend at most ``target_epsilon`` at ``delta``."""
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise ConfigError(f"the target epsilon must be positive, got {target_epsilon}")
    _check_delta(delta)
    _check_accountant(accountant)
    Stretch(1.0, sample_rate, steps)  # checks the sample rate and steps
    if steps == 0:
        raise ConfigError("no steps spend no privacy: any noise meets the target")
    from opacus.accountants.utils import get_noise_multiplier

    with _quiet():
        sigma = float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=accountant,
                epsilon_tolerance=tolerance,
            )
        )
    return sigma


def gaussian_epsilon(noise_multiplier: float, steps: int, delta: float) -> float:
    """The exact epsilon at ``delta`` of ``steps`` full-batch (sample rate 1) Gaussian mechanisms
    of sensitivity 1 and noise ``noise_multiplier``: their composition is mu-GDP with
    ``mu = sqrt(steps) / noise_multiplier`` (Dong, Roth & Su), whose (epsilon, delta) curve is
    ``delta = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)`` (Balle & Wang)."""
    _check_delta(delta)
    Stretch(noise_multiplier, 1.0, steps)
    if steps == 0:
        return 0.0
    mu = math.sqrt(steps) / noise_multiplier

    def excess(eps: float) -> float:
        # in log space for the second term: e^eps overflows long before the root is far out
        second = math.exp(eps + norm.logcdf(-eps / mu - mu / 2))
        return float(norm.cdf(-eps / mu + mu / 2)) - second - delta

    if excess(0.0) <= 0:
        return 0.0
    high = 1.0
    while excess(high) > 0:
        high *= 2
    return float(brentq(excess, 0.0, high, xtol=1e-12))
