"""The Flower app's configuration: ``[tool.flwr.app.config]`` (run config) and each SuperNode's
``--node-config``, parsed into frozen settings validated on construction.

Flower hands both over as flat mappings of hyphenated keys to scalars. The server reads the run
config; a node reads the run config overlaid by its own node config, so every SuperNode can name
its own account, data, rank, chain RPC and IPFS node. Keys never carry secrets: an account is a
spec (``dev:N``, ``env:VAR``, ``keystore:PATH``) resolved on the machine that signs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import ValidationInfo, field_validator, model_validator

from aggregator.names import STRATEGIES
from loraledger.errors import ConfigError
from loraledger.settings import Invalid, Settings

if TYPE_CHECKING:
    from fl_node.train import TrainSettings
    from loraledger.update import PeftSpec

Scalar = bool | int | float | str


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


def _key(info: ValidationInfo) -> str:
    """A field's name as the config spells its key (``min_nodes`` -> ``min-nodes``)."""
    return str(info.field_name).replace("_", "-")


def _require(value: Any, key: str) -> Any:
    if value is None or value == "":
        raise ConfigError(
            f"the Flower run config has no {key!r}", hint=f'pass --run-config "{key}=..."'
        )
    return value


class LedgerConfig(Settings):
    """Where the federation lives: a chain RPC, the LoRALedger contract, the task, the store."""

    network: str
    ledger: str
    task_id: int
    ipfs: str
    from_block: int = 0

    @field_validator("network")
    @classmethod
    def _shared_chain(cls, value: str) -> str:
        if value == "embedded":
            raise Invalid(
                "the embedded chain lives inside one process and cannot be shared by Flower nodes",
                hint="use anvil:PORT, ganache:PORT or a JSON-RPC URL",
            )
        return value

    @field_validator("ledger")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if not (value.startswith("0x") and len(value) == 42):
            raise ValueError(f"ledger must be a contract address (0x + 40 hex), got {value!r}")
        return value

    @field_validator("task_id")
    @classmethod
    def _task_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"task-id must be positive, got {value}")
        return value

    @field_validator("from_block")
    @classmethod
    def _block_not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"from-block must be >= 0, got {value}")
        return value

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> LedgerConfig:
        return cls(
            network=str(_require(_get(values, "network"), "network")),
            ledger=str(_require(_get(values, "ledger"), "ledger")),
            task_id=int(_require(_int(values, "task-id"), "task-id")),
            ipfs=str(_get(values, "ipfs", "embedded")),
            from_block=_int(values, "from-block", 0) or 0,
        )


class ServerConfig(Settings):
    """The ServerApp: the aggregator's account, rounds, strategy and waiting limits.

    ``validator_accounts``: validators of the task that the ServerApp runs in its own process
    (each signing with its own account; none: they run ``loraledger validator run``)."""

    ledger: LedgerConfig
    rounds: int
    account: str = "dev:1"
    validator_accounts: tuple[str, ...] = ()
    strategy: str = "fedavg"
    min_nodes: int = 2
    fraction_train: float = 1.0
    reply_timeout: float = 3600.0
    poll_seconds: float = 1.0
    work_dir: Path | None = None

    @field_validator("rounds", "min_nodes")
    @classmethod
    def _positive(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError(f"{_key(info)} must be positive, got {value}")
        return value

    @field_validator("strategy")
    @classmethod
    def _a_strategy(cls, value: str) -> str:
        if value not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {value!r}")
        return value

    @field_validator("fraction_train")
    @classmethod
    def _a_fraction(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(f"fraction-train must be in (0, 1], got {value}")
        return value

    @field_validator("reply_timeout", "poll_seconds")
    @classmethod
    def _waits_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("reply-timeout and poll-seconds must be positive")
        return value

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> ServerConfig:
        work = _get(values, "work-dir")
        return cls(
            ledger=LedgerConfig.from_config(values),
            rounds=_int(values, "rounds", 1) or 0,
            account=str(_get(values, "aggregator-account", "dev:1")),
            validator_accounts=tuple(
                a.strip()
                for a in str(_get(values, "validator-accounts", "")).split(",")
                if a.strip()
            ),
            strategy=str(_get(values, "strategy", "fedavg")),
            min_nodes=_int(values, "min-nodes", 2) or 0,
            fraction_train=_float(values, "fraction-train", 1.0),
            reply_timeout=_float(values, "reply-timeout", 3600.0),
            poll_seconds=_float(values, "poll-seconds", 1.0),
            work_dir=Path(str(work)).expanduser() if work else None,
        )


class NodeConfig(Settings):
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

    @field_validator("rank")
    @classmethod
    def _rank_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"rank must be positive, got {value}")
        return value

    @model_validator(mode="after")
    def _a_partition_and_schedule(self) -> Self:
        if not 0 <= self.partition_id < self.num_partitions:
            raise ValueError(
                f"partition-id must be in 0..{self.num_partitions - 1}, got {self.partition_id}"
            )
        if self.steps < 1 or self.batch_size < 1 or self.max_length < 2:
            raise ValueError("steps and batch-size must be positive and max-length at least 2")
        return self

    def training(self) -> tuple[PeftSpec, TrainSettings]:
        """The node's LoRA settings and training schedule (seeded by its partition)."""
        from fl_node.train import TrainSettings
        from loraledger.update import PeftSpec

        peft = PeftSpec(rank=self.rank, alpha=self.alpha, target_modules=self.targets)
        settings = TrainSettings(
            max_steps=self.steps,
            batch_size=self.batch_size,
            max_length=self.max_length,
            learning_rate=self.learning_rate,
            seed=self.partition_id,
        )
        return peft, settings

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
                    hint="start it with --node-config \"account='dev:N'\" (or env:VAR, "
                    "keystore:PATH)",
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
