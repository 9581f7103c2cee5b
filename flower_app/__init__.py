"""LoRA Ledger on Flower (flwr 1.41, Message API): the aggregator as a ``ServerApp`` strategy,
the training node as a ``ClientApp``.

Messages carry task ids, rounds, CIDs, digests and metrics, never tensors: weights travel
through the content store (IPFS), and the chain stays the source of truth (the server
aggregates the commitments it reads on chain, not what the messages claim).

- :mod:`flower_app.config`: the run/node configuration, parsed and validated;
- :mod:`flower_app.messages`: building and reading the message records (pure);
- :mod:`flower_app.strategy`: :class:`LedgerStrategy`, a Flower strategy over ``RoundRunner``;
- :mod:`flower_app.server_app` / :mod:`flower_app.client_app`: the apps (``flwr run``);
- :mod:`flower_app.federation`: a local chain, deployment, funded accounts and a task;
- :mod:`flower_app.simulation`: N virtual nodes through Flower's simulation engine;
- :mod:`flower_app.deployment`: SuperLink/SuperNode processes with the quirks handled.
- :mod:`flower_app.accounts`: node accounts (`--account` specs, dev accounts past the tenth);
- :mod:`flower_app.certs`: the federation's CA, SuperLink certificate and SuperNode keys;
- :mod:`flower_app.bench` / :mod:`flower_app.baseline`: round overhead against plain Flower.
"""

__all__ = [
    "accounts",
    "baseline",
    "bench",
    "certs",
    "client_app",
    "config",
    "deployment",
    "federation",
    "messages",
    "server_app",
    "simulation",
    "strategy",
]  # the public modules
