"""LoRA Ledger on Flower (flwr 1.41, Message API): the aggregator as a ``ServerApp`` strategy,
the training node as a ``ClientApp``.

Messages carry task ids, rounds, CIDs, digests and metrics, never tensors: weights travel
through the content store (IPFS), and the chain stays the source of truth (the server
aggregates the commitments it reads on chain, not what the messages claim).

- :mod:`scripts.flower.config`: the run/node configuration, parsed and validated;
- :mod:`scripts.flower.messages`: building and reading the message records (pure);
- :mod:`scripts.flower.strategy`: :class:`LedgerStrategy`, a Flower strategy over ``RoundRunner``;
- :mod:`scripts.flower.server_app` / :mod:`scripts.flower.client_app`: the apps (``flwr run``);
- :mod:`scripts.flower.federation`: a local chain, deployment, funded accounts and a task;
- :mod:`scripts.flower.simulation`: N virtual nodes through Flower's simulation engine;
- :mod:`scripts.flower.deployment`: SuperLink/SuperNode processes with the quirks handled.
"""
