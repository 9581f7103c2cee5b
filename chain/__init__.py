"""Contract access, the one home for it: compile, deploy, typed wrappers, errors, events, sessions.

- :mod:`chain.compiler`: the offline solc (npm ``solc``) behind py-solc-x; ``chain/artifacts``;
- :mod:`chain.bindings`: one thin typed wrapper per contract (``Ledger``, ``Token``);
- :mod:`chain.attest`: result hashes and validators' EIP-712 signatures, offline;
- :mod:`chain.errors` / :mod:`chain.errorgen`: one exception class per contract error (ABI);
- :mod:`chain.round_state`: the round state machine as the contract reports it;
- :mod:`chain.events`: the ledger's history rebuilt from its event logs;
- :mod:`chain.network`: networks (embedded, ganache, anvil, JSON-RPC) and accounts;
- :mod:`chain.deployments`: deployment records per chain id;
- :mod:`chain.session`: a participant's ledger, history, store and account, opened once;
- :mod:`chain.local`: local Ganache/anvil processes;
- :mod:`chain.merkle`: reward and slash Merkle trees (OpenZeppelin's format);
- :mod:`chain.gas`: gas measurement.
"""

__all__ = [
    "artifacts",
    "attest",
    "bindings",
    "compiler",
    "deployments",
    "errorgen",
    "errors",
    "events",
    "gas",
    "local",
    "merkle",
    "network",
    "round_state",
    "session",
]  # the public modules
