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


class AggregationError(LoRALedgerError):
    """The aggregation cannot run on these inputs as a whole (no update, bad parameters)."""
