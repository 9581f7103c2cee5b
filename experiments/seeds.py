"""One approach's training runs over the experiment's seeds, summarized as means and intervals.

Every figure an experiment reports for a run (the mean, std, min and max of the nodes' final
losses, the mean loss per round, each node's loss) is computed per seed by
:class:`~experiments.runner.RunResult`, then summarized over the seeds with
:func:`experiments.stats.mean_interval`. ``results.json`` keeps every seed's run as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from experiments.runner import RunResult
from experiments.stats import Interval, mean_interval
from loraledger.errors import ConfigError

K = TypeVar("K")


@dataclass(frozen=True)
class Seeded:
    """The runs of one approach, ``runs[k]`` with seed ``seeds[k]``."""

    label: str
    seeds: tuple[int, ...]
    runs: tuple[RunResult, ...]

    def __post_init__(self) -> None:
        if not self.runs or len(self.runs) != len(self.seeds):
            raise ConfigError(f"{self.label}: {len(self.runs)} runs for seeds {self.seeds}")

    def over(self, figure: Callable[[RunResult], float]) -> Interval:
        """``figure`` of each seed's run: its mean over the seeds and interval."""
        return mean_interval([figure(run) for run in self.runs])

    @property
    def mean(self) -> Interval:
        return self.over(lambda r: r.mean)

    @property
    def std(self) -> Interval:
        return self.over(lambda r: r.std)

    @property
    def min(self) -> Interval:
        return self.over(lambda r: r.min)

    @property
    def max(self) -> Interval:
        return self.over(lambda r: r.max)

    @property
    def steps(self) -> int:
        return self.runs[0].steps

    @property
    def seconds(self) -> float:
        """Mean wall time of one seed's run."""
        return sum(run.seconds for run in self.runs) / len(self.runs)

    def mean_curve(self) -> list[Interval]:
        """The nodes' mean loss per round, over the seeds."""
        curves = [run.mean_curve() for run in self.runs]
        return [mean_interval([c[k] for c in curves]) for k in range(len(curves[0]))]

    def node(self, index: int, row: int = -1) -> Interval:
        """Node ``index``'s loss at curve row ``row`` (default: after the last round)."""
        return self.over(lambda r: r.curve[row][index])

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "seeds": list(self.seeds),
            "mean": self.mean.to_json(),
            "std": self.std.to_json(),
            "min": self.min.to_json(),
            "max": self.max.to_json(),
            "mean_curve": [i.to_json() for i in self.mean_curve()],
            "per_seed": {
                str(s): run.to_json() for s, run in zip(self.seeds, self.runs, strict=True)
            },
        }


def by_key(seeds: Sequence[int], per_seed: Sequence[Mapping[K, RunResult]]) -> dict[K, Seeded]:
    """``per_seed[k]``'s runs (one per key, seed ``seeds[k]``) regrouped per key."""
    if not per_seed or len(per_seed) != len(seeds):
        raise ConfigError(f"{len(per_seed)} seeds' runs for seeds {list(seeds)}")
    return {
        key: Seeded(run.label, tuple(seeds), tuple(runs[key] for runs in per_seed))
        for key, run in per_seed[0].items()
    }


def band_note(seeds: Sequence[int]) -> str:
    """What every table cell and plot band means, for a report's notes."""
    if len(seeds) == 1:
        return (
            f"One seed ({seeds[0]}): every figure is that run's, with no confidence interval "
            "(one value has none); run with `--seeds 0,1,2` for intervals."
        )
    return (
        f"Every figure is the mean over {len(seeds)} seeds ({', '.join(map(str, seeds))}) "
        "± the half-width of its 95% Student t confidence interval (over the per-seed values); "
        "plots show the mean with the interval as a band or error bars. results.json keeps "
        "every seed's run under `per_seed`."
    )
