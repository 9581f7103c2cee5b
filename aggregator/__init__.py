"""The aggregator: verification, aggregation maths, the round loop, rewards and the audit.

Modules (import what you need; nothing here imports torch at package import time):

- :mod:`aggregator.client_update`: :class:`~aggregator.client_update.ClientUpdate`, canonical order;
- :mod:`aggregator.device`: where and in which dtype the maths runs (CUDA when present);
- :mod:`aggregator.strategies`: FedAvg weighted by examples, streaming;
- :mod:`aggregator.server_opt`: FedAvgM, FedAdam, FedYogi with their state as safetensors;
- :mod:`aggregator.robust`: norm clipping, coordinate-wise median, trimmed mean, (Multi-)Krum;
- :mod:`aggregator.flexlora`: heterogeneous ranks (FlexLoRA through QR, zero-padding baseline);
- :mod:`aggregator.names`: the strategies by name (torch-free);
- :mod:`aggregator.combine`: a round's aggregation as one pure function of its inputs;
- :mod:`aggregator.reproduce`: recorded compute settings and how a re-run is compared;
- :mod:`aggregator.stats`: update norms and median/MAD outlier flags;
- :mod:`aggregator.verify`: each submission checked against its commitment;
- :mod:`aggregator.inputs`: a round's public inputs, fetched one way by the aggregator and audits;
- :mod:`aggregator.rewards`: the reward rule and table;
- :mod:`aggregator.round`: the round loop (open, wait, verify, aggregate, publish, finalize);
- :mod:`aggregator.errors`: reason codes;
- :mod:`aggregator.audit`: the independent audit and the history views.
"""

__all__ = [
    "audit",
    "client_update",
    "combine",
    "device",
    "errors",
    "flexlora",
    "inputs",
    "names",
    "reproduce",
    "rewards",
    "robust",
    "round",
    "server_opt",
    "stats",
    "strategies",
    "verify",
]  # the public modules
