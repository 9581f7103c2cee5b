"""Contribution scores and the reward rules on a quadratic validation loss.

The "validation loss" here is the squared distance of an adapter's weight change from a
target change (what honest training moves towards), a real function of the adapter; the round
tests run the same code with a real model's validation loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch

from aggregator.client_update import ClientUpdate, Tensors
from aggregator.combine import StrategyConfig, combine
from aggregator.contribution import contribution_score, score_updates
from aggregator.rewards import Share, reward_weights, split_pool
from aggregator.screening import Change, capped_examples, change_distance
from loraledger.update import PeftSpec
from tests.aggregator.lora_builders import addr, lora_tensors

RANK, ALPHA = 4, 8.0
SPEC = PeftSpec(rank=RANK, alpha=ALPHA, target_modules=("q_proj", "v_proj"))
START = {k: v if "lora_A" in k else torch.zeros_like(v) for k, v in lora_tensors(0).items()}
_B = lora_tensors(1, scale=0.05)
TARGET = {k: v if "lora_A" in k else _B[k] for k, v in lora_tensors(0).items()}


def loss(tensors: Tensors) -> float:
    return change_distance(Change(tensors, SPEC.scaling), Change(TARGET, SPEC.scaling)) ** 2


def honest(i: int, progress: float = 0.6) -> dict[str, torch.Tensor]:
    """Part of the way to the target, plus this node's own noise."""
    noise = lora_tensors(100 + i, scale=0.002)
    return {k: v if "lora_A" in k else progress * TARGET[k] + noise[k] for k, v in START.items()}


def near_zero(i: int) -> dict[str, torch.Tensor]:
    noise = lora_tensors(200 + i, scale=1e-4)
    return {k: v if "lora_A" in k else noise[k] for k, v in START.items()}


def update(i: int, tensors: Tensors, examples: int = 1000) -> ClientUpdate:
    return ClientUpdate.in_memory(addr(i), tensors, num_examples=examples, rank=RANK, alpha=ALPHA)


def run(updates: Sequence[ClientUpdate], cap: bool = True) -> dict[str, float]:
    if cap:
        caps = capped_examples({u.node: u.num_examples for u in updates})
        updates = [
            ClientUpdate.in_memory(
                u.node, u.load(), num_examples=caps[u.node], rank=RANK, alpha=ALPHA
            )
            for u in updates
        ]
    scored = score_updates(
        updates,
        aggregate=lambda ups: combine(StrategyConfig(), ups, START, SPEC).tensors,
        evaluate=loss,
        start=START,
        start_loss=loss(START),
        alone={u.node: loss(u.load()) for u in updates},
    )
    return scored.scores


def test_honest_updates_score_positive_and_near_zero_sybils_do_not() -> None:
    updates = [update(i, honest(i)) for i in range(3)] + [
        update(10 + i, near_zero(i)) for i in range(4)
    ]
    scores = run(updates)
    assert all(scores[addr(i)] > 0 for i in range(3))
    assert all(scores[addr(10 + i)] <= 0 for i in range(4))
    amounts = split_pool(
        10**20, [Share(n, 1000, 1.0, s) for n, s in scores.items()], "contribution"
    )
    assert set(amounts) == {addr(i) for i in range(3)}


def test_redundant_honest_nodes_are_all_paid() -> None:
    scores = run([update(i, honest(i)) for i in range(8)])
    assert all(s > 0 for s in scores.values())
    shares = [s / sum(scores.values()) for s in scores.values()]
    assert max(shares) < 2 * min(shares)  # similar work, similar pay


def test_an_inflated_claim_earns_no_more_with_the_cap_and_most_without() -> None:
    def share_of(claim: int, cap: bool) -> float:
        ups = [update(i, honest(i)) for i in range(3)] + [update(3, honest(3), claim)]
        scores = run(ups, cap=cap)
        amounts = split_pool(
            10**24, [Share(n, 1, 1.0, s) for n, s in scores.items()], "contribution"
        )
        return amounts.get(addr(3), 0) / 10**24

    truthful = share_of(1000, cap=True)
    assert share_of(2**63, cap=True) == pytest.approx(truthful, rel=1e-9)
    # the old rule: the claim buys the pool
    old = split_pool(10**24, [Share(addr(i), 1000) for i in range(3)] + [Share(addr(3), 2**63)])
    assert old[addr(3)] / 10**24 > 0.999999


def test_one_update_alone_is_scored_against_the_start_adapter() -> None:
    scores = run([update(0, honest(0))])
    assert scores[addr(0)] == pytest.approx(loss(START) - loss(honest(0)))


def test_the_score_formula_and_broken_losses() -> None:
    assert contribution_score(2.0, 1.0, 1.5, 1.2) == pytest.approx(((2 - 1.5) + (1.2 - 1.0)) / 2)
    assert contribution_score(2.0, math.nan, 1.5, 1.2) == -math.inf


def test_reward_weights_under_each_rule() -> None:
    shares = [Share("a", 100, 1.5, 0.25), Share("b", 10**6, 1.0, -0.1), Share("c", 300, 1.0, None)]
    assert reward_weights("contribution", shares) == {"a": 250_000_000_000, "b": 0, "c": 0}
    assert reward_weights("examples", shares) == {"a": 100, "b": 300, "c": 300}
    assert reward_weights("claimed", shares) == {"a": 150_000_000, "b": 10**12, "c": 300_000_000}
    assert split_pool(1000, shares, "contribution") == {"a": 1000}
    assert sum(split_pool(1000, shares, "examples").values()) <= 1000
