"""Errors of the aggregation maths and the stable reason codes of rejected updates."""

from __future__ import annotations

from loraledger.errors import LoRALedgerError
from loraledger.update import REASON_NON_FINITE as REASON_NON_FINITE  # re-exported

# Stable reason codes (round reports and the verifier use them as is). Codes about one update's
# own bytes live with the update format (loraledger.update); these are about an update next to
# the others of its round.
REASON_KEY_MISMATCH = "key_mismatch"
REASON_SHAPE_MISMATCH = "shape_mismatch"
REASON_DTYPE = "dtype"
REASON_RANK = "rank_mismatch"
REASON_DUPLICATE_NODE = "duplicate_node"
REASON_NORM_OUTLIER = "norm_outlier"
# Codes of the round's verification against the on-chain commitments (aggregator.verify).
REASON_UNAVAILABLE = "unavailable"  # the CID could not be fetched
REASON_WRONG_NODE = "wrong_node"  # the update names another node than the one that committed it
REASON_EXAMPLES_MISMATCH = "examples_mismatch"  # metadata examples differ from the commitment
REASON_SPEC_MISMATCH = "spec_mismatch"  # another peft method, target modules or layer shapes
REASON_REPLAYED = "replayed_update"  # the same tensors as an earlier or other submission
REASON_VALIDATION_WORSE = "validation_worse"  # validation loss worse than the start adapter
REASON_FREE_RIDER = "free_rider"  # (near) no weight change, or the start / an earlier global again
REASON_COPY = "copied_update"  # (near) the weight change of an earlier commitment
REASON_NO_CONTRIBUTION = "no_contribution"  # its contribution score on validation data is <= 0
REASON_UNREVEALED = "unrevealed"  # committed on chain, never revealed (no verdict, no reward)
REASON_CHECK_FAILED = "check_failed"  # checking it raised an unexpected error
# Codes of the task's privacy policy (loraledger.privacy, docs/privacy.md)
REASON_PRIVACY_POLICY = "privacy_policy"  # its stated DP does not meet the task's policy
REASON_CLIP_BOUND = "clip_bound"  # node-level DP: its change is past the clipping allowance
# Codes of the isolated worker that reads an update's header first (aggregator.isolate)
REASON_CHECKER_CRASHED = "checker_crashed"  # the worker died on a signal (e.g. SIGSEGV)
REASON_CHECKER_MEMORY = "checker_memory"  # the worker went over its memory bound
REASON_CHECKER_TIMEOUT = "checker_timeout"  # the worker ran past its time limit

# Reasons that prove cheating from public evidence (the round report and the chain), so the
# aggregator slashes the node's stake for them, with the code below in the NodeSlashed event.
# Not slashed: an unavailable CID (the network may be at fault), a norm outlier, a worse
# validation loss, a free ride or no contribution (a broken but honest node can do those), a
# failed check, a breach of the task's privacy policy (it exposes the node's own data; the
# rejection keeps it out of the global adapter and unpaid).
SLASH_CODES: dict[str, int] = {
    "unrevealed": 1,  # committed, never revealed (the chain shows it)
    "copied_update": 2,  # the weight change of an earlier commitment
    "replayed_update": 3,  # the exact tensors of an earlier commitment
    "digest_mismatch": 4,  # revealed bytes that are not the committed ones
    "wrong_node": 5,  # an update made out to another node
    "examples_mismatch": 6,  # metadata examples other than the revealed claim
    "not_safetensors": 7,  # malformed bytes ...
    "bad_metadata": 8,
    "too_large": 9,
    "bad_tensor_name": 10,
    "bad_dtype": 11,
    "bad_shape": 12,
    "no_tensors": 13,
    "missing_tensors": 14,
    "non_finite": 15,
    "wrong_task": 16,  # an update of another task or round (a replay from elsewhere)
    "wrong_round": 17,
}


class AggregationError(LoRALedgerError):
    """The aggregation cannot run on these inputs as a whole (no update, bad parameters)."""
