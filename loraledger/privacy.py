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

A task's policy (:class:`TaskPrivacy`, recorded on chain when the task is created) and the
rules every participant applies to it live here too, so that the node, the aggregator and an
audit decide with one copy: :func:`example_breach` (an update's DP-SGD record against an
example-level policy), :func:`clip_allowance` (the norm past which a node-level update was not
clipped), :func:`publishes` and :func:`global_epsilon` (what node-level global adapters spend).

Everything here is pure: numbers in, numbers out, a :class:`~loraledger.errors.ConfigError`
for an impossible input. :func:`gaussian_epsilon` is the exact epsilon of the full-batch
Gaussian mechanism (Balle & Wang 2018, via its mu-GDP form), against which the tests check the
accountants.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from scipy.optimize import brentq
from scipy.stats import norm

from loraledger.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from loraledger.update import PrivacyRecord

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
        warnings.filterwarnings("ignore", message="Optimal order is the (largest|smallest) alpha")
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


# --------------------------------------------------------------------------- a task's policy

PrivacyMode = Literal["none", "example", "node"]
PRIVACY_MODES: tuple[PrivacyMode, ...] = get_args(PrivacyMode)

#: How far below the clipping allowance an honest node-level update falls but for this chance.
CLIP_TAIL = 1e-9


@dataclass(frozen=True)
class TaskPrivacy:
    """The differential privacy a task requires, fixed on chain when it is created.

    - ``"none"``: nothing required (a node may still train with DP-SGD for its own sake);
    - ``"example"``: every update is trained with DP-SGD (:class:`fl_node.train.ExampleDP`) at a
      noise multiplier of at least ``noise_multiplier``, stated at ``delta`` by ``accountant``,
      and no node spends more than ``target_epsilon`` on the task; ``clip_norm`` is the
      per-example bound nodes use (any bound gives the same epsilon at one noise multiplier);
    - ``"node"``: node-level DP-FedAvg with noise shares. Each node clips its update's change
      to an L2 norm of ``clip_norm`` and adds Gaussian noise of ``noise_multiplier * clip_norm /
      sqrt(min_nodes)`` per weight (its share, from a secret seed); the global adapter is the
      equal-weight mean of at least ``min_nodes`` such updates, so the sum carries noise of at
      least ``noise_multiplier * clip_norm`` that nobody can remove, and the task's global
      adapters together spend at most ``target_epsilon`` at ``delta``.
    """

    mode: PrivacyMode = "none"
    noise_multiplier: float = 0.0
    clip_norm: float = 0.0
    target_epsilon: float = 0.0
    delta: float = 0.0
    accountant: Accountant = "rdp"
    min_nodes: int = 0

    def __post_init__(self) -> None:
        if self.mode not in PRIVACY_MODES:
            raise ConfigError(f"unknown privacy mode {self.mode!r}: use {', '.join(PRIVACY_MODES)}")
        accountant_named(self.accountant)
        if self.mode == "none":
            if (
                self.noise_multiplier,
                self.clip_norm,
                self.target_epsilon,
                self.delta,
                self.min_nodes,
            ) != (0, 0, 0, 0, 0):
                raise ConfigError("a task without a privacy mode takes no privacy settings")
            return
        for name, value in (
            ("noise multiplier", self.noise_multiplier),
            ("clipping bound", self.clip_norm),
            ("target epsilon", self.target_epsilon),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{self.mode}-level DP needs a positive {name}, got {value}")
        _check_delta(self.delta)
        if self.mode == "node" and self.min_nodes < 1:
            raise ConfigError(
                f"node-level DP needs at least 1 node per round, got {self.min_nodes}",
                hint="the updates whose noise shares add up to the full noise",
            )
        if self.mode == "example" and self.min_nodes != 0:
            raise ConfigError("example-level DP takes no minimum number of nodes")

    @property
    def required(self) -> bool:
        """Whether the task requires differential privacy at all."""
        return self.mode != "none"

    @property
    def share_multiplier(self) -> float:
        """Node-level: the noise multiplier of one node's share (``z / sqrt(min_nodes)``)."""
        return self.noise_multiplier / math.sqrt(self.min_nodes) if self.min_nodes else 0.0

    def describe(self) -> str:
        """One line for people: what the task requires."""
        if self.mode == "none":
            return "none required"
        what = (
            "example-level DP-SGD on each node"
            if self.mode == "example"
            else f"node-level DP-FedAvg, noise shares of >= {self.min_nodes} node(s)"
        )
        whose = "per node" if self.mode == "example" else "by the global adapters"
        return (
            f"{what}: noise multiplier {self.noise_multiplier:g}, clipping bound "
            f"{self.clip_norm:g}, epsilon <= {self.target_epsilon:g} {whose} at delta "
            f"{self.delta:g} ({self.accountant})"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "noise_multiplier": self.noise_multiplier,
            "clip_norm": self.clip_norm,
            "target_epsilon": self.target_epsilon,
            "delta": self.delta,
            "accountant": self.accountant,
            "min_nodes": self.min_nodes,
        }


#: The policy of a task that requires no differential privacy.
NO_PRIVACY = TaskPrivacy()


def global_round_stretch(policy: TaskPrivacy, summed: int) -> Stretch | None:
    """Node-level: the mechanism one global adapter of ``summed`` equal-weight updates runs
    (``None`` when it sums none and so spends nothing). Adding or removing one node moves the
    sum of clipped changes by at most ``clip_norm``; ``summed`` noise shares add up to a
    standard deviation of ``noise_multiplier * clip_norm * sqrt(summed / min_nodes)``."""
    if policy.mode != "node":
        raise ConfigError(f"a task with privacy mode {policy.mode!r} has no node-level rounds")
    if summed < 1:
        return None
    return Stretch(policy.noise_multiplier * math.sqrt(summed / policy.min_nodes), 1.0, 1)


def global_epsilon(policy: TaskPrivacy, summed_by_round: Sequence[int]) -> float:
    """Node-level: the epsilon the task's global adapters spent together, one per round that
    summed the given numbers of updates (at the policy's delta, by its accountant)."""
    stretches = [s for s in (global_round_stretch(policy, k) for k in summed_by_round) if s]
    return epsilon(stretches, policy.delta, policy.accountant)


def publishes(policy: TaskPrivacy, accepted: int) -> bool:
    """Whether a round that accepted ``accepted`` updates publishes their aggregate. Under
    node-level DP fewer than ``min_nodes`` updates carry less than the full noise, so such a
    round keeps the task's adapter (and spends nothing)."""
    return accepted >= (policy.min_nodes if policy.mode == "node" else 1)


def schedule_epsilon(policy: TaskPrivacy, rounds: int) -> float:
    """Node-level: what ``rounds`` rounds spend at the least noise the policy allows (each
    summing exactly ``min_nodes`` updates): the figure a task's creator checks against its
    target."""
    return global_epsilon(policy, [policy.min_nodes] * rounds)


def clip_allowance(policy: TaskPrivacy, weights: int, tail: float = CLIP_TAIL) -> float:
    """Node-level: the largest L2 norm an honest node's noised change of ``weights`` weights
    has but for a chance of ``tail``: ``clip_norm`` plus the ``1 - tail`` quantile of its noise
    share's norm (a chi distribution with ``weights`` degrees of freedom)."""
    if policy.mode != "node":
        raise ConfigError(f"a task with privacy mode {policy.mode!r} clips no node updates")
    from scipy.stats import chi2

    share = policy.share_multiplier * policy.clip_norm
    return policy.clip_norm + share * math.sqrt(float(chi2.isf(tail, weights)))


def example_breach(policy: TaskPrivacy, record: PrivacyRecord | None) -> str | None:
    """Example-level: why an update's stated DP-SGD record does not meet the task's policy
    (``None`` when it does): no record, another mode, less noise, another delta or
    accountant, an epsilon that its own settings do not give, or one round alone past the
    target. What a node spends over several rounds is its own ledger's to bound."""
    if policy.mode != "example":
        return None
    if record is None:
        return "trained without DP-SGD; the task requires example-level DP"
    if record.mode != "example":
        return f"its privacy record is {record.mode}-level; the task requires example-level DP"
    if record.noise_multiplier < policy.noise_multiplier * (1 - 1e-9):
        return (
            f"noise multiplier {record.noise_multiplier:g} is below the task's "
            f"{policy.noise_multiplier:g}"
        )
    if not math.isclose(record.delta, policy.delta, rel_tol=1e-9):
        return f"epsilon stated at delta {record.delta:g}, the task's delta is {policy.delta:g}"
    if record.accountant != policy.accountant:
        return f"epsilon by the {record.accountant} accountant, the task's is {policy.accountant}"
    spent = epsilon(
        [Stretch(record.noise_multiplier, record.sample_rate, record.steps)],
        record.delta,
        record.accountant,
    )
    if not math.isclose(record.epsilon, spent, rel_tol=1e-6, abs_tol=1e-9):
        return f"states epsilon {record.epsilon:.6g}, its own settings spend {spent:.6g}"
    if spent > policy.target_epsilon * (1 + 1e-9):
        return (
            f"one round alone spends epsilon {spent:.4g}, past the task's {policy.target_epsilon:g}"
        )
    return None


def change_norm(tensors: Mapping[str, torch.Tensor], start: Mapping[str, torch.Tensor]) -> float:
    """The L2 norm, over every weight, of ``tensors`` minus ``start`` (computed in float64):
    the size of a node-level update's change. Both must hold the same names and shapes (a
    ``ConfigError`` otherwise)."""
    import torch

    _check_alike(tensors, start)
    total = 0.0
    for name, tensor in tensors.items():
        change = tensor.to(torch.float64) - start[name].to(torch.float64)
        total += float(torch.dot(change.flatten(), change.flatten()))
    return math.sqrt(total)


def clip_and_noise(
    tensors: Mapping[str, torch.Tensor],
    start: Mapping[str, torch.Tensor],
    policy: TaskPrivacy,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Node-level: ``start`` plus the change of ``tensors`` from it, scaled down to an L2 norm
    of at most ``clip_norm``, plus the node's noise share (Gaussian, standard deviation
    ``share_multiplier * clip_norm`` per weight, drawn from ``generator``, which must be seeded
    from secret randomness for the guarantee to hold). Each tensor keeps its dtype."""
    import torch

    if policy.mode != "node":
        raise ConfigError(f"a task with privacy mode {policy.mode!r} takes no noise shares")
    norm = change_norm(tensors, start)
    scale = min(1.0, policy.clip_norm / norm) if norm > 0 else 1.0
    std = policy.share_multiplier * policy.clip_norm
    out: dict[str, torch.Tensor] = {}
    for name in sorted(tensors):  # a fixed order: one generator, reproducible given its seed
        base = start[name].to(torch.float64)
        change = (tensors[name].to(torch.float64) - base) * scale
        noise = torch.randn(base.shape, generator=generator, dtype=torch.float64) * std
        out[name] = (base + change + noise).to(tensors[name].dtype).contiguous()
    return out


def _check_alike(tensors: Mapping[str, torch.Tensor], start: Mapping[str, torch.Tensor]) -> None:
    if set(tensors) != set(start):
        raise ConfigError(
            "an update's change is measured against an adapter with the same tensors: "
            f"{sorted(set(tensors) ^ set(start))[:3]} differ"
        )
    for name, tensor in tensors.items():
        if tensor.shape != start[name].shape:
            raise ConfigError(
                f"tensor {name} has shape {tuple(tensor.shape)}, the start adapter's is "
                f"{tuple(start[name].shape)}",
                hint="node-level DP compares updates at the task's LoRA rank",
            )
