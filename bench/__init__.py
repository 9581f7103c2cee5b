"""Benchmarks: every figure a ratio against a baseline measured in the same run.

One module per area, each measuring and returning figures (no printing; ``loraledger bench``
draws the tables): :mod:`.aggregate` (FedAvg, streaming, FlexLoRA), :mod:`.storage` (CIDs and
stores), :mod:`.train` (the node's training loop), :mod:`.round` (fetch + verify + aggregate)
and :mod:`.report` (every area at small sizes, as ``BENCHMARKS.md``). Gas is measured by
:mod:`chain.gas`, the Flower round overhead by :mod:`flower_app.bench`.
"""

__all__ = ["aggregate", "report", "round", "storage", "train"]  # the public modules
