"""What earns nothing, decided on weight changes: free riders, copies, untrusted outliers.

Pure maths on adapters already parsed and checked one by one (:mod:`aggregator.verify`
calls these, and so does every audit through it). Updates are compared by the **weight change
they make** (per LoRA module ``scaling * B @ A``; plain tensors for methods without factors),
through low-rank inner products (:func:`aggregator.stats.lora_delta_norm`, never the dense
matrix). So rescaled factors (``A * c``, ``B / c``), permuted or rotated rank components, another
rank, another dtype and tiny noise are all the same update.

- **Free rider** (:func:`free_rider`): the update's change from the round's start adapter is
  numerically zero (RMS per weight below ``min_change_rms``), or it is within
  ``free_rider_rtol`` of the start adapter or of an earlier global adapter (relative to that
  adapter's own weight change). It adds nothing anyone has not already got.
- **Copy** (:func:`find_copies`): an update whose weight change is within ``copy_rtol`` of an
  earlier commitment's (relative to the earlier one's own step from its start adapter).
  "Earlier" is the order of the on-chain commitments (round, block, transaction index, log
  index), also across rounds; the earlier one keeps its verdict.
- **Trusted norm screening** (:func:`trusted_outliers`): an update whose norm is far *above*
  the median of the updates that the aggregator's own validation data says help (their
  validation loss beats the start adapter's by at least ``trusted_gain``). Submitters cannot
  make that reference: near-zero or useless updates never enter it, however many accounts send
  them, so a Sybil majority cannot push honest updates out. Without validation data the
  reference is every update (the median/MAD rule of :mod:`aggregator.stats`).
- **Example cap** (:func:`capped_examples`): the example count an update weighs with in
  aggregation is its on-chain claim capped at the median claim of the round's accepted
  updates, so no claim, however large, buys more weight than the typical node's.
"""

from __future__ import annotations

import functools
import math
import statistics
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from aggregator.client_update import LORA_A, LORA_B, Tensors, lora_modules
from aggregator.stats import (
    NormVerdict,
    OutlierPolicy,
    flag_outliers,
    lora_delta_norm,
    robust_z_scores,
)

__all__ = [
    "Candidate",
    "Change",
    "capped_examples",
    "change_distance",
    "change_norm",
    "dense_size",
    "find_copies",
    "free_rider",
    "trusted_outliers",
]


@dataclass(frozen=True)
class Change:
    """An adapter as the weight change it makes: its tensors and the factor of ``B @ A``
    (``PeftSpec.delta_scaling``)."""

    tensors: Tensors
    scaling: float

    @functools.cached_property
    def norm(self) -> float:
        """``||dW||_F`` over every module, computed once (the start adapter and earlier global
        adapters are compared with every update of a round)."""
        return lora_delta_norm("", self.tensors, self.scaling)


def change_distance(x: Change, y: Change) -> float:
    """``||dW(x) - dW(y)||_F`` over every module (float64, low-rank)."""
    return lora_delta_norm("", x.tensors, x.scaling, y.tensors, y.scaling)


def change_norm(x: Change) -> float:
    """``||dW(x)||_F`` over every module."""
    return x.norm


def dense_size(tensors: Tensors) -> int:
    """How many weights the adapter changes: ``out * in`` per LoRA module plus every element
    of the other tensors (the size of the dense weight change it stands for)."""
    modules, others = lora_modules(tensors.keys())
    size = sum(
        int(tensors[m + LORA_B].shape[0]) * int(tensors[m + LORA_A].shape[1]) for m in modules
    )
    return size + sum(int(tensors[k].numel()) for k in others)


def free_rider(
    update: Change,
    start: Change,
    earlier_globals: Sequence[tuple[str, Change]] = (),
    *,
    rtol: float,
    min_change_rms: float,
) -> str | None:
    """Why ``update`` is a free rider (a sentence), or ``None``.

    ``earlier_globals`` are ``(label, adapter)`` pairs of earlier global adapters.
    """
    floor = min_change_rms * math.sqrt(max(1, dense_size(update.tensors)))
    step = change_distance(update, start)
    if step <= floor:
        return (
            f"its weight change from the start adapter has norm {step:.3g}, below the floor "
            f"{floor:.3g} (RMS {min_change_rms:g} per weight)"
        )
    for label, reference in (("the start adapter", start), *earlier_globals):
        tolerance = max(floor, rtol * change_norm(reference))
        distance = step if reference is start else change_distance(update, reference)
        if distance <= tolerance:
            return (
                f"it is {label} again: distance {distance:.3g} <= {tolerance:.3g} "
                f"({rtol:g} of that adapter's weight change)"
            )
    return None


@dataclass(frozen=True)
class Candidate:
    """One update that copies are looked for among: who, where in the commitment order, its
    weight change (or how to load it: :func:`find_copies` holds one or two at a time) and its
    step from its own start adapter."""

    node: str
    order: tuple[int, ...]  # (round, block, transaction index, log index) of the commitment
    change: Change | Callable[[], Change]
    step: float  # ||dW - dW(start of its round)||
    label: str  # how a copy's detail names it ("of 0xabc in round 2")
    current: bool  # in the round being screened (earlier rounds' updates keep their verdict)

    def load(self) -> Change:
        """The weight change (read again each time when the candidate holds a loader)."""
        return self.change if isinstance(self.change, Change) else self.change()


def find_copies(candidates: Sequence[Candidate], *, rtol: float) -> dict[str, str]:
    """Current-round nodes whose update copies an earlier candidate's: ``{node: detail}``.

    Visits the candidates in commitment order; each current one is compared with every
    earlier one (including earlier copies: a copy of a copy is a copy of the original), and
    the first earlier one within ``rtol`` of its step names the copy.

    Exact, in two stages: a pair is skipped only when a proven lower bound of its distance
    exceeds the tolerance (the triangle inequality on the two norms, and the distance of the
    two changes seen through fixed probes, :class:`_Sketches`); every other pair gets the exact
    distance (:func:`change_distance`). Honest updates are far apart, so nearly every pair is
    skipped on its bound and the exact distance runs for the few close pairs only. Each
    candidate is loaded once for its norm and sketch, then only for exact distances; the
    sketches go to a temporary file past :data:`SKETCH_SPOOL_BYTES`, so memory does not grow
    with the number of candidates (:data:`SKETCH_BLOCK_BYTES`).
    """
    ordered = sorted(candidates, key=lambda c: c.order)
    if not any(c.current for c in ordered):
        return {}
    tolerances = [rtol * c.step for c in ordered]
    with _Sketches(rtol) as sketches:
        norms = []
        for item in ordered:
            change = item.load()
            norms.append(change_norm(change))
            sketches.add(change)
            del change
        pairs = sketches.close_pairs(
            [c.current for c in ordered], norms=norms, tolerances=tolerances
        )
    copies: dict[str, str] = {}
    for i, earlier_ones in sorted(pairs.items()):
        item = ordered[i]
        change = item.load()
        for j in earlier_ones:
            earlier, tolerance = ordered[j], tolerances[j]
            distance = change_distance(change, earlier.load())
            if distance <= tolerance:
                copies[item.node] = (
                    f"its weight change is the update {earlier.label} again: distance "
                    f"{distance:.3g} <= {tolerance:.3g} ({rtol:g} of that update's step "
                    f"{earlier.step:.3g})"
                )
                break
    return copies


SKETCH_BLOCK_BYTES = 24 << 20
"""Float32 sketch rows :func:`find_copies` holds at once (and a quarter of that streamed past
them), whatever the number of candidates."""
SKETCH_SPOOL_BYTES = 16 << 20
"""Sketches (bfloat16) kept in memory before they go to a temporary file."""
_PROBE_SEED = 0x10CA
_CHUNK = 4096  # columns per float32 product, summed in float64 (bounds the rounding)
_U32 = 2.0**-24
_U16 = 2.0**-8  # bfloat16's unit roundoff


class _Sketches:
    """Every candidate's weight change through fixed probes, for lower bounds of distances.

    Per LoRA module of the first candidate's layout (``out x in``), the sketch is ``dW V`` =
    ``scaling * B (A V)`` with ``V`` an ``in x p`` matrix of orthonormal columns (seeded, the
    same for every candidate and every run). Multiplying by ``V`` never lengthens a matrix
    (``||X V||_F <= ||X||_F``), so the sketch distance of two candidates is a lower bound of
    their distance, whatever an adversary puts into its factors; other keys are left out,
    which only lowers it. ``p = ceil(rtol^2 in)`` keeps about ``rtol^2`` of a generic change's
    energy: independent updates at distance ``d`` show about ``rtol d`` (and their tolerance is
    ``rtol`` times one step, about ``d / 1.4``), at a fraction of the factors' size (at most
    half). Rows are computed in float64, centred on the first row (the bound is
    shift-invariant) and stored in bfloat16 (a quarter of the factors' bytes at most); the
    rounding of storage, products and sums is allowed for explicitly, so a skipped pair is
    proven farther apart than its tolerance. A candidate of another layout has no sketch: its
    pairs all get the exact distance.
    """

    def __init__(self, rtol: float) -> None:
        self.rtol = rtol
        self.layout: list[tuple[str, int, int, int]] | None = None  # module, out, in, probes
        self.probes: dict[tuple[int, int], torch.Tensor] = {}
        self.centre: torch.Tensor | None = None
        self.width = 0
        self.rows = 0
        self.sketched: list[int] = []  # row of each candidate's sketch, -1: none
        self.centred: list[float] = []  # norm of each stored row
        self.raw: list[float] = []  # norm of each sketch before centring
        self.file: tempfile.SpooledTemporaryFile[bytes] | None = None

    def __enter__(self) -> _Sketches:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()

    def add(self, change: Change) -> None:
        """Sketch the next candidate (in order)."""
        sketch = self._sketch(change)
        if sketch is None:
            self.sketched.append(-1)
            return
        if self.centre is None:
            self.centre = sketch
        raw = float(torch.linalg.vector_norm(sketch))
        row = (sketch - self.centre).to(torch.bfloat16)
        if self.file is None:
            self.file = tempfile.SpooledTemporaryFile(max_size=SKETCH_SPOOL_BYTES)  # noqa: SIM115
        self.file.seek(self.rows * self.width * 2)
        self.file.write(row.view(torch.int16).numpy().tobytes())
        self.sketched.append(self.rows)
        self.centred.append(float(torch.linalg.vector_norm(row.double())))
        self.raw.append(raw)
        self.rows += 1

    def _sketch(self, change: Change) -> torch.Tensor | None:
        tensors = change.tensors
        modules, _ = lora_modules(tensors.keys())
        shapes = [
            (m, int(tensors[m + LORA_B].shape[0]), int(tensors[m + LORA_A].shape[1]))
            for m in modules
        ]
        if self.layout is None:
            if not shapes:
                return None
            self.layout = [
                (m, out, in_, self._probe_count(out, in_, int(tensors[m + LORA_A].shape[0])))
                for m, out, in_ in shapes
            ]
            self.width = sum(out * p for _, out, _, p in self.layout)
        if shapes != [(m, out, in_) for m, out, in_, _ in self.layout]:
            return None
        parts = []
        for module, _, in_, p in self.layout:
            a = tensors[module + LORA_A].to(torch.float64)
            b = tensors[module + LORA_B].to(torch.float64)
            parts.append((change.scaling * (b @ (a @ self._probe(in_, p)))).reshape(-1))
        return torch.cat(parts)

    def _probe_count(self, out: int, in_: int, rank: int) -> int:
        wanted = math.ceil(self.rtol * self.rtol * in_)
        half_the_factors = (rank * (in_ + out)) // (2 * out)
        return max(1, min(in_, wanted, half_the_factors))

    def _probe(self, in_: int, p: int) -> torch.Tensor:
        key = (in_, p)
        if key not in self.probes:
            g = torch.Generator().manual_seed(_PROBE_SEED + 7919 * in_ + p)
            q, _ = torch.linalg.qr(torch.randn(in_, p, generator=g, dtype=torch.float64))
            self.probes[key] = q
        return self.probes[key]

    def _block(self, start: int, stop: int) -> torch.Tensor:
        if self.file is None:  # pragma: no cover - only called with rows
            raise ValueError("no sketch stored")
        self.file.seek(start * self.width * 2)
        data = bytearray((stop - start) * self.width * 2)
        self.file.readinto(data)
        rows = torch.frombuffer(data, dtype=torch.int16).view(torch.bfloat16)
        return rows.reshape(stop - start, self.width).float()  # exact

    def close_pairs(
        self, current: Sequence[bool], *, norms: Sequence[float], tolerances: Sequence[float]
    ) -> dict[int, list[int]]:
        """For each current candidate ``i``, the earlier candidates ``j < i`` (ascending) that no
        bound proves farther than ``tolerances[j]``."""
        n = len(current)
        norm = torch.tensor(norms, dtype=torch.float64)
        tol = torch.tensor(tolerances, dtype=torch.float64)
        index = torch.arange(n)
        pairs: dict[int, list[int]] = {}
        unsketched = [i for i in range(n) if self.sketched[i] < 0]
        by_row = [i for i in range(n) if self.sketched[i] >= 0]
        # pairs without a sketch bound: the norms alone
        for i in range(n):
            if not current[i]:
                continue
            others = (
                index[:i]
                if self.sketched[i] < 0
                else torch.tensor([j for j in unsketched if j < i], dtype=torch.long)
            )
            if others.numel():
                keep = (norm[i] - norm[others]).abs() <= tol[others]
                pairs.setdefault(i, []).extend(int(j) for j in others[keep])
        if self.rows:
            self._sketch_pairs(current, by_row, norm, tol, pairs)
        return {i: sorted(js) for i, js in pairs.items() if js}

    def _sketch_pairs(
        self,
        current: Sequence[bool],
        by_row: Sequence[int],
        norm: torch.Tensor,
        tol: torch.Tensor,
        pairs: dict[int, list[int]],
    ) -> None:
        rows = max(1, SKETCH_BLOCK_BYTES // (4 * self.width))  # held: the current ones
        chunk = max(1, rows // 4)  # streamed past them: the earlier ones
        candidate_of = torch.tensor(by_row, dtype=torch.long)  # row -> candidate
        centred = torch.tensor(self.centred, dtype=torch.float64)
        raw = torch.tensor(self.raw, dtype=torch.float64)
        # rounding allowances: the float32 products of each chunk of columns (gamma_C |x||y|
        # per chunk, at most gamma_C |x||y| in all) and the norms; the bfloat16 storage and
        # the float64 sketching of each row
        gamma = 4.0 * (_CHUNK + 2) * _U32
        for i0 in range(0, self.rows, rows):
            i1 = min(self.rows, i0 + rows)
            if not any(current[by_row[r]] for r in range(i0, i1)):
                continue
            mine = self._block(i0, i1)
            for j0 in range(0, i1, chunk):
                j1 = min(i1, j0 + chunk)
                theirs = mine[j0 - i0 : j1 - i0] if j0 >= i0 else self._block(j0, j1)
                gram = _gram(mine, theirs)
                ci, cj = centred[i0:i1, None], centred[None, j0:j1]
                squared = ci * ci + cj * cj - 2.0 * gram
                squared = squared - gamma * (ci * ci + cj * cj)
                bound = squared.clamp(min=0.0).sqrt() - (
                    2 * _U16 * (ci + cj) + 1e-10 * (raw[i0:i1, None] + raw[None, j0:j1] + raw[0])
                )
                ii = candidate_of[i0:i1, None]
                jj = candidate_of[None, j0:j1]
                near = (
                    (jj < ii)
                    & ((norm[ii] - norm[jj]).abs() <= tol[jj])
                    & ~(bound > tol[jj] * (1 + 1e-9))
                )
                for r, c in near.nonzero().tolist():
                    i, j = by_row[i0 + r], by_row[j0 + c]
                    if current[i]:
                        pairs.setdefault(i, []).append(j)
                del theirs, gram, squared, bound, near


def _gram(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x @ y.T`` in float64 from float32 products of :data:`_CHUNK` columns at a time (a
    float32 sum of a million terms could be off by percents; a chunk's by a few 1e-4)."""
    out = torch.zeros(x.shape[0], y.shape[0], dtype=torch.float64)
    for start in range(0, x.shape[1], _CHUNK):
        out += (x[:, start : start + _CHUNK] @ y[:, start : start + _CHUNK].T).double()
    return out


def trusted_outliers(
    norms: Mapping[str, float],
    trusted: Sequence[str] | None,
    policy: OutlierPolicy,
) -> dict[str, NormVerdict]:
    """Each node's norm verdict against a reference set of nodes.

    ``trusted``: the nodes the reference median/MAD is taken over (those the aggregator's
    validation data says help); ``None`` takes every node (the plain median/MAD rule). With a
    trusted reference only norms far *above* it are flagged: a small norm is no threat to the
    aggregate (it earns nothing by itself). Fewer reference nodes than
    ``policy.min_updates`` flag nothing.
    """
    if trusted is None:
        return {v.node: v for v in flag_outliers(norms, policy)}
    if not norms:
        return {}
    floor = max(policy.min_spread, 1e-6)
    reference = {n: norms[n] for n in trusted}
    if len(reference) < policy.min_updates:
        scores = robust_z_scores(norms, relative_floor=floor)
        return {n: NormVerdict(n, norms[n], scores[n], False) for n in norms}
    scores = robust_z_scores(norms, reference=reference, relative_floor=floor)
    return {
        n: NormVerdict(n, norms[n], scores[n], scores[n] > policy.threshold)
        for n in sorted(norms, key=str.lower)
    }


def capped_examples(claims: Mapping[str, int]) -> dict[str, int]:
    """Each node's example count for aggregation weights: its claim capped at the median claim
    (the lower median, an integer) of ``claims``.

    No node then weighs more than a node of median size, whatever it claims: a claim above the
    median buys nothing. (Claims are bounded on chain too: the task's ``maxExamples``.)
    """
    if not claims:
        return {}
    cap = statistics.median_low(claims.values())
    return {node: min(count, cap) for node, count in claims.items()}
