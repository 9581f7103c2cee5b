"""The project's exception hierarchy.

One root error, a subclass per domain. Libraries raise these; only the CLI prints them
(one line, with ``hint`` when there is one) and exits non-zero.
"""

from __future__ import annotations


class LoRALedgerError(Exception):
    """Root of every error this project raises on purpose.

    ``hint`` tells a user what to do next; the CLI prints it under the message.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(LoRALedgerError):
    """A setting, option or file the user gave is invalid."""


class ChainError(LoRALedgerError):
    """Talking to the chain failed (connection, missing deployment, wrong network)."""


class StorageError(LoRALedgerError):
    """Content-addressed storage failed: unreachable node, missing or corrupt content."""


class ServiceUnavailable(LoRALedgerError):
    """Marks an error that says a service (the chain's RPC, the IPFS node) did not answer,
    after the bounded retries of one request: it may be restarting, so a long-running loop
    waits and tries again rather than exit (:class:`chain.recovery.Recovery`)."""


class UpdateRejected(LoRALedgerError):
    """A model update is malformed or fails verification; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{reason}: {message}", hint=hint)
        self.reason = reason


class TrainingError(LoRALedgerError):
    """Local training cannot run: bad data, model or configuration."""
