"""The training node: load a model, read its private data, train a LoRA adapter, take part.

- :mod:`fl_node.model`: base models (hub id or folder, GGUF SmolLM2, tiny test models, 4/8-bit);
- :mod:`fl_node.data`: chat data, non-IID shards, held-out splits;
- :mod:`fl_node.train`: one round of local training from the global adapter, packed as an update;
- :mod:`fl_node.evaluate`: an adapter's loss on held-out data;
- :mod:`fl_node.node`: the node's protocol on chain (join, train, commit, claim, status).
"""

__all__ = ["data", "evaluate", "model", "node", "train"]  # the public modules
