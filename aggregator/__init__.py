"""Aggregation of LoRA updates: pure functions over tensors, testable with no chain.

Modules (import what you need; nothing here imports torch at package import time):

- ``update``: :class:`~aggregator.client_update.ClientUpdate`, deterministic ordering, spec checks.
- ``device``: where and in which dtype the maths runs (CUDA when present, CPU otherwise).
- ``strategies``: FedAvg weighted by examples, streaming (memory independent of the count).
- ``server_opt``: FedAvgM, FedAdam, FedYogi with state persisted as safetensors.
- ``robust``: norm clipping, coordinate-wise median, trimmed mean, (Multi-)Krum.
- ``flexlora``: heterogeneous ranks (FlexLoRA through QR, zero-padding baseline).
- ``stats``: update norms and median/MAD outlier flags for verification.
"""
