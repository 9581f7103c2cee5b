"""The reward rules re-implemented from their statement alone (docs/incentives.md and the text
each report carries), as a claimant or an auditor in another language would: it reads a pinned
round report as plain JSON and imports nothing of LoRA Ledger.

Integers are exact (Python ints, as BigInt in JavaScript); ``round`` is round-half-to-even of
the IEEE-754 double product; token amounts are decimal strings (JSON integers in reports written
before that).
"""

from __future__ import annotations

import json
from typing import Any

BPS = 10_000


def _weights(rule: str, accepted: list[dict[str, Any]]) -> dict[str, int]:
    if rule == "contribution":  # w_i = round(s_i * 10^12) for a positive score, else 0
        return {
            s["node"]: round(s["score"] * 10**12) if (s["score"] or 0) > 0 else 0 for s in accepted
        }
    if rule == "examples":  # w_i = min(n_i, the lower median of the accepted updates' n)
        claims = sorted(s["num_examples"] for s in accepted)
        cap = claims[(len(claims) - 1) // 2] if claims else 0
        return {s["node"]: min(s["num_examples"], cap) for s in accepted}
    if rule == "claimed":  # w_i = n_i * round(q_i * 10^6)
        return {s["node"]: s["num_examples"] * round(s["quality"] * 10**6) for s in accepted}
    raise ValueError(f"unknown rule {rule!r}")


def _split(pool: int, weights: dict[str, int]) -> dict[str, int]:
    """floor(pool * w_i / sum_j w_j), positive amounts only."""
    total = sum(weights.values())
    if pool <= 0 or total == 0:
        return {}
    return {k: pool * w // total for k, w in weights.items() if pool * w // total > 0}


def amounts(report: str | bytes) -> dict[str, int]:
    """Every account's amount in the round the report decides, by lowercase address."""
    body = json.loads(report)
    pool = int(body["rewards"]["pool"])
    params = body.get("params", {})
    accepted = [s for s in body["submissions"] if s["verdict"] == "accepted"]
    validators_pool = 0
    if params.get("consensus"):  # floor(pool * share_bps / 10000) when an update is accepted
        validators_pool = pool * int(params["validator_share_bps"]) // BPS if accepted else 0
    out: dict[str, int] = {}
    for node, amount in _split(
        pool - validators_pool, _weights(params.get("reward_rule", "claimed"), accepted)
    ).items():
        out[node.lower()] = out.get(node.lower(), 0) + amount
    agreement = {  # w_v = round(agreement_v * 10^6), the agreement clipped to [0, 1]
        v["validator"]: round(min(1.0, max(0.0, v["agreement"])) * 10**6)
        for v in body.get("validators", [])
    }
    for validator, amount in _split(validators_pool, agreement).items():
        out[validator.lower()] = out.get(validator.lower(), 0) + amount
    return out
