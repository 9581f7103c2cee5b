"""Errors of the aggregation maths and the stable reason codes of rejected updates."""

from __future__ import annotations

from loraledger.errors import LoRALedgerError
from loraledger.update import REASON_NON_FINITE

# Stable reason codes (round reports and the verifier use them as is). Codes about one update's
# own bytes live with the update format (loraledger.update); these are about an update next to
# the others of its round.
REASON_KEY_MISMATCH = "key_mismatch"
REASON_SHAPE_MISMATCH = "shape_mismatch"
REASON_DTYPE = "dtype"
REASON_RANK = "rank_mismatch"
REASON_DUPLICATE_NODE = "duplicate_node"
REASON_NORM_OUTLIER = "norm_outlier"


class AggregationError(LoRALedgerError):
    """The aggregation cannot run on these inputs as a whole (no update, bad parameters)."""
