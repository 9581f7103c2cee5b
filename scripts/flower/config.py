"""The Flower app's configuration: ``[tool.flwr.app.config]`` (run config) and each SuperNode's
``--node-config``, parsed into frozen, validated dataclasses.

Flower hands both over as flat mappings of hyphenated keys to scalars. The server reads the run
config; a node reads the run config overlaid by its own node config, so every SuperNode can name
its own account, data, rank, chain RPC and IPFS node. Keys never carry secrets: an account is a
spec (``dev:N``, ``env:VAR``, ``keystore:PATH``) resolved on the machine that signs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraledger.errors import ConfigError

Scalar = bool | int | float | str
STRATEGIES = ("fedavg", "fedavgm", "fedadam", "fedyogi", "clip", "median", "trimmed-mean", "krum",
              "flexlora", "zero-pad")  # fmt: skip


def _get(values: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = values.get(key, default)
    return default if value == "" else value


def _int(values: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    value = _get(values, key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {value!r}") from None


def _float(values: Mapping[str, Any], key: str, default: float) -> float:
    value = _get(values, key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None


def _bool(values: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = _get(values, key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, int):
        return bool(value)
    raise ConfigError(f"{key} must be true or false, got {value!r}")


def _ints(text: str, key: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(text).replace(" ", "").split(",") if p)
    except ValueError:
        raise ConfigError(
            f"{key} must be a comma-separated list of integers, got {text!r}"
        ) from None


def _require(value: Any, key: str) -> Any:
    if value is None or value == "":
        raise ConfigError(
            f"the Flower run config has no {key!r}", hint=f'pass --run-config "{key}=..."'
        )
    return value


@dataclass(frozen=True)
class LedgerConfig:
    """Where the federation lives: a chain RPC, the LoRALedger contract, the task, the store."""

    network: str
    ledger: str
    task_id: int
    ipfs: str
    from_block: int = 0

    def __post_init__(self) -> None:
        if self.network == "embedded":
            raise ConfigError(
                "the embedded chain lives inside one process and cannot be shared by Flower nodes",
                hint="use anvil:PORT, ganache:PORT or a JSON-RPC URL",
            )
        if not (self.ledger.startswith("0x") and len(self.ledger) == 42):
            raise ConfigError(
                f"ledger must be a contract address (0x + 40 hex), got {self.ledger!r}"
            )
        if self.task_id < 1:
            raise ConfigError(f"task-id must be positive, got {self.task_id}")
        if self.from_block < 0:
            raise ConfigError(f"from-block must be >= 0, got {self.from_block}")

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> LedgerConfig:
        return cls(
            network=str(_require(_get(values, "network"), "network")),
            ledger=str(_require(_get(values, "ledger"), "ledger")),
            task_id=int(_require(_int(values, "task-id"), "task-id")),
            ipfs=str(_get(values, "ipfs", "embedded")),
            from_block=_int(values, "from-block", 0) or 0,
        )


@dataclass(frozen=True)
class ServerConfig:
    """The ServerApp: the aggregator's account, rounds, strategy and waiting limits."""

    ledger: LedgerConfig
    rounds: int
    account: str = "dev:1"
    strategy: str = "fedavg"
    min_nodes: int = 2
    fraction_train: float = 1.0
    reply_timeout: float = 3600.0
    poll_seconds: float = 1.0
    work_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be positive, got {self.rounds}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if self.min_nodes < 1:
            raise ConfigError(f"min-nodes must be positive, got {self.min_nodes}")
        if not 0 < self.fraction_train <= 1:
            raise ConfigError(f"fraction-train must be in (0, 1], got {self.fraction_train}")
        if self.reply_timeout <= 0 or self.poll_seconds <= 0:
            raise ConfigError("reply-timeout and poll-seconds must be positive")

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> ServerConfig:
        work = _get(values, "work-dir")
        return cls(
            ledger=LedgerConfig.from_config(values),
            rounds=_int(values, "rounds", 1) or 0,
            account=str(_get(values, "aggregator-account", "dev:1")),
            strategy=str(_get(values, "strategy", "fedavg")),
            min_nodes=_int(values, "min-nodes", 2) or 0,
            fraction_train=_float(values, "fraction-train", 1.0),
            reply_timeout=_float(values, "reply-timeout", 3600.0),
            poll_seconds=_float(values, "poll-seconds", 1.0),
            work_dir=Path(str(work)).expanduser() if work else None,
        )


@dataclass(frozen=True)
class NodeConfig:
    """One SuperNode's training node: its account, data, rank and training schedule.

    ``account``: ``dev:N`` / ``env:VAR`` / ``keystore:PATH``; in a simulation, where nodes have
    no config of their own, ``account-offset`` + the node's partition id picks a dev account.
    ``data``: a JSON/JSONL/CSV file or folder; without it the bundled sample data is split into
    ``num-partitions`` shards (``shard-strategy``) and the node takes shard ``partition-id``.
    ``rank``: the LoRA rank; without it ``ranks`` (a list) is cycled by partition id, which gives
    a federation of heterogeneous ranks. ``drop-out``: the node joins but never submits (tests
    and drills of a node that fails mid-round).
    """

    ledger: LedgerConfig
    account: str
    model: str
    rank: int
    alpha: float
    targets: tuple[str, ...]
    data: Path | None = None
    partition_id: int = 0
    num_partitions: int = 1
    shard_strategy: str = "iid"
    eval_fraction: float = 0.2
    steps: int = 2
    batch_size: int = 4
    max_length: int = 128
    learning_rate: float = 2e-4
    drop_out: bool = False
    work_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"rank must be positive, got {self.rank}")
        if not 0 <= self.partition_id < self.num_partitions:
            raise ConfigError(
                f"partition-id must be in 0..{self.num_partitions - 1}, got {self.partition_id}"
            )
        if self.steps < 1 or self.batch_size < 1 or self.max_length < 2:
            raise ConfigError("steps and batch-size must be positive and max-length at least 2")

    @classmethod
    def from_config(
        cls, run_config: Mapping[str, Any], node_config: Mapping[str, Any]
    ) -> NodeConfig:
        values = {**run_config, **node_config}
        partition = _int(values, "partition-id", 0) or 0
        account = _get(values, "account")
        if account is None:
            offset = _int(values, "account-offset", -1)
            if offset is None or offset < 0:
                raise ConfigError(
                    "this SuperNode has no account",
                    hint="start it with --node-config \"account='dev:N'\" (or env:VAR, keystore:PATH)",
                )
            account = f"dev:{offset + partition}"
        rank = _int(values, "rank")
        if rank is None:
            ranks = _ints(str(_get(values, "ranks", "8")), "ranks")
            if not ranks:
                raise ConfigError("ranks must name at least one rank")
            rank = ranks[partition % len(ranks)]
        alpha_per_rank = _float(values, "alpha-per-rank", 2.0)
        data = _get(values, "data")
        work = _get(values, "work-dir")
        drop_out = _bool(values, "drop-out", False) or partition in _ints(
            str(_get(values, "drop-out-partitions", "")), "drop-out-partitions"
        )
        return cls(
            ledger=LedgerConfig.from_config(values),
            account=str(account),
            model=str(_get(values, "model", "smollm2")),
            rank=rank,
            alpha=alpha_per_rank * rank,
            targets=tuple(
                t
                for t in str(_get(values, "targets", "q_proj,k_proj,v_proj,o_proj")).split(",")
                if t
            ),
            data=Path(str(data)).expanduser() if data else None,
            partition_id=partition,
            num_partitions=_int(values, "num-partitions", 1) or 1,
            shard_strategy=str(_get(values, "shard-strategy", "iid")),
            eval_fraction=_float(values, "eval-fraction", 0.2),
            steps=_int(values, "steps", 2) or 0,
            batch_size=_int(values, "batch-size", 4) or 0,
            max_length=_int(values, "max-length", 128) or 0,
            learning_rate=_float(values, "learning-rate", 2e-4),
            drop_out=drop_out,
            work_dir=Path(str(work)).expanduser() if work else None,
        )
