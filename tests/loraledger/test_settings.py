"""The one base of user settings: unknown fields and bad values refused with a ConfigError that
names the field and the value, instances frozen, and every package's settings round-tripping
through ``model_dump`` / ``model_validate``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError, field_validator, model_validator

from aggregator.reproduce import Tolerance
from aggregator.round import RoundSettings
from aggregator.stats import OutlierPolicy
from aggregator.verify import VerifyPolicy
from demo.run import DemoConfig
from experiments.config import ExperimentConfig
from fl_node.model import ModelConfig
from fl_node.train import NodeTrainConfig, TrainSettings
from flower_app.config import LedgerConfig, NodeConfig, ServerConfig
from flower_app.simulation import SimulationSettings
from ipfs.daemon import DaemonConfig
from ipfs.embedded import EmbeddedConfig
from ipfs.errors import DaemonError, InvalidStoreSpec, StorageError
from ipfs.kubo import KuboConfig
from loraledger.errors import ConfigError
from loraledger.settings import Invalid, Settings
from loraledger.update import PeftSpec

LEDGER = "0x" + "ab" * 20


class Schedule(Settings):
    """A settings class of the test's own, to exercise the base alone."""

    steps: int = 4
    names: tuple[str, ...] = ("a",)
    budget: int | None = None

    @field_validator("steps")
    @classmethod
    def _steps_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"steps must be positive, got {value}")
        return value

    @model_validator(mode="after")
    def _within_budget(self) -> Schedule:
        if self.budget is not None and self.steps > self.budget:
            raise Invalid(
                f"{self.steps} steps exceed the budget {self.budget}", hint="ask for fewer"
            )
        return self


class Plan(Settings):
    schedule: Schedule = Schedule()


def test_an_unknown_setting_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"^Schedule has no setting 'stpes'$"):
        Schedule(stpes=3)


def test_a_bad_value_raises_config_error_with_the_validators_own_line() -> None:
    with pytest.raises(ConfigError) as caught:
        Schedule(steps=0)
    assert str(caught.value) == "steps must be positive, got 0"
    assert caught.value.hint is None
    assert caught.value.__cause__ is None  # one line for the CLI, no pydantic report behind it


def test_a_value_of_the_wrong_type_names_the_field_and_the_value() -> None:
    with pytest.raises(
        ConfigError, match=r"^steps: input should be a valid integer.*, got 'four'$"
    ):
        Schedule(steps="four")


def test_a_missing_setting_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^LedgerConfig needs 'ipfs'$"):
        LedgerConfig(network="anvil:8545", ledger=LEDGER, task_id=1)


def test_every_bad_value_is_reported_on_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        Schedule(steps=0, names=3)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("steps must be positive, got 0; names: ")


def test_a_validators_hint_reaches_the_error() -> None:
    with pytest.raises(ConfigError, match="5 steps exceed the budget 2") as caught:
        Schedule(steps=5, budget=2)
    assert caught.value.hint == "ask for fewer"


def test_a_bad_nested_value_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="steps must be positive, got 0"):
        Plan(schedule={"steps": 0})
    with pytest.raises(ConfigError, match="fetch_workers must be positive, got 0"):
        RoundSettings(verify={"fetch_workers": 0})


def test_model_validate_and_json_refuse_with_config_error() -> None:
    with pytest.raises(ConfigError, match="steps must be positive, got -1"):
        Schedule.model_validate({"steps": -1})
    with pytest.raises(ConfigError, match="has no setting 'extra'"):
        Schedule.model_validate_json('{"extra": 1}')


def test_settings_are_frozen() -> None:
    schedule = Schedule()
    with pytest.raises(ValidationError, match="frozen"):
        schedule.steps = 9
    assert schedule.steps == 4


def test_replace_validates_the_copy() -> None:
    schedule = Schedule(budget=10)
    assert schedule.replace(steps=7) == Schedule(steps=7, budget=10)
    with pytest.raises(ConfigError, match="12 steps exceed the budget 10"):
        schedule.replace(steps=12)
    assert schedule.model_copy(update={"steps": 12}).steps == 12  # model_copy does not validate


def test_equal_settings_are_equal_and_hash_alike() -> None:
    assert Schedule(names=("x",)) == Schedule(names=("x",))
    assert len({Schedule(), Schedule(), Schedule(steps=5)}) == 2


def test_the_storage_layer_raises_its_own_errors() -> None:
    """ipfs keeps its promise that every failure there is a StorageError."""
    with pytest.raises(InvalidStoreSpec, match="retries must be between 0 and 10, got 11"):
        KuboConfig(api_url="http://127.0.0.1:5001", retries=11)
    with pytest.raises(DaemonError, match="api_port: input should be a valid integer"):
        DaemonConfig(state_dir=Path("/tmp/x"), api_port="port")
    with pytest.raises(StorageError, match="EmbeddedConfig has no setting 'threads'"):
        EmbeddedConfig(root=Path("/tmp/x"), threads=2)


USER_SETTINGS = [
    ModelConfig,
    TrainSettings,
    NodeTrainConfig,
    VerifyPolicy,
    OutlierPolicy,
    RoundSettings,
    Tolerance,
    KuboConfig,
    DaemonConfig,
    EmbeddedConfig,
    DemoConfig,
    ExperimentConfig,
    SimulationSettings,
    LedgerConfig,
    ServerConfig,
    NodeConfig,
]


@pytest.mark.parametrize("cls", USER_SETTINGS, ids=lambda c: c.__name__)
def test_every_user_setting_is_a_settings_model(cls: type) -> None:
    assert issubclass(cls, Settings)


ONE_PER_PACKAGE = [
    NodeTrainConfig(
        task_id=1,
        round=2,
        node="0xaa",
        peft=PeftSpec(rank=4, alpha=8.0),
        train=TrainSettings(max_steps=3, max_grad_norm=None),
        max_rank=8,
    ),
    VerifyPolicy(max_rank=None, outliers=OutlierPolicy(threshold=2.0, two_sided=True)),
    DaemonConfig(state_dir=Path("/tmp/state"), api_port=5002),
    DemoConfig(nodes=2, ranks=(4, 2, 8)),
    ExperimentConfig(model="tiny", examples=40, target_modules=("q_proj",)),
    NodeConfig(
        ledger=LedgerConfig(network="anvil:8546", ledger=LEDGER, task_id=3, ipfs="embedded:/s"),
        account="dev:2",
        model="smollm2",
        rank=4,
        alpha=8.0,
        targets=("q_proj", "v_proj"),
        data=Path("/data/shard.jsonl"),
    ),
]


@pytest.mark.parametrize("settings", ONE_PER_PACKAGE, ids=lambda s: type(s).__name__)
def test_settings_round_trip_through_model_dump(settings: Settings) -> None:
    cls = type(settings)
    assert cls.model_validate(settings.model_dump()) == settings
    assert cls.model_validate_json(settings.model_dump_json()) == settings
