"""Experiments that reproduce the research claims (``loraledger experiment ...``).

Pure logic, no chain and no storage: an experiment measures learning, so it runs the parts
of a round that decide what is learnt, exactly as the platform runs them:

* every node trains with :func:`fl_node.train.train_round` from the round's global adapter
  (verified against its sha256 digest, as a node does) and returns update *bytes* in the
  platform's update format (:mod:`loraledger.update`);
* the aggregator parses those bytes with :func:`loraledger.update.parse_update` and combines
  them with the strategy functions of :mod:`aggregator` (FedAvg, FlexLoRA, zero-padding,
  the robust rules);
* the next global adapter is packed with :func:`loraledger.update.build_global_adapter`.

What is left out is only what cannot change the numbers: pinning to IPFS, commitments,
finalization and rewards on chain.

Modules: :mod:`.config` (configuration, model, shards), :mod:`.runner` (federated, local
and centralized training), :mod:`.report` (tables, JSON, plots) and one module per
experiment.
"""

__all__ = [
    "aggregation",
    "config",
    "fl_vs_local",
    "nodes",
    "privacy",
    "quantization",
    "ranks",
    "report",
    "robustness",
    "runner",
]  # the public modules
