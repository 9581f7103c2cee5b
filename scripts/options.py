"""Options shared by every command group, written once (as Ape's ``cli/options.py``)."""

from __future__ import annotations

import difflib
import functools
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import typer

from aggregator.names import REWARD_RULES, STRATEGIES
from loraledger.display import TOKEN_DECIMALS
from loraledger.errors import ConfigError
from scripts.console import report_transaction

if TYPE_CHECKING:  # web3, eth-account and torch load slowly: commands that need them import them
    from eth_account.signers.local import LocalAccount

    from aggregator.round import RoundSettings
    from aggregator.verify import Evaluator
    from chain.network import Chain, NetworkSpec
    from chain.session import Session


NetworkOption = typer.Option(
    "embedded",
    "--network",
    "-n",
    envvar="LORALEDGER_NETWORK",
    help="embedded (in-process, this command only), ganache[:PORT], anvil[:PORT] "
    "or a JSON-RPC URL.",
)
AccountOption = typer.Option(
    "dev:0",
    "--account",
    "-a",
    envvar="LORALEDGER_ACCOUNT",
    help="Signing account: dev:N (local chains), env:VAR (private key in $VAR) or keystore:PATH; "
    "a 0x address to look at an account read-only (status).",
)
YesOption = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
ConfirmationsOption = typer.Option(
    0,
    "--confirmations",
    min=0,
    envvar="LORALEDGER_CONFIRMATIONS",
    help="Blocks a round's inputs (for a node: the round's opening) must have on top of them "
    "before this process acts on them (0: the head; docs/operating.md).",
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def open_chain(network: str) -> Chain:
    """The chain ``--network`` names; every transaction mined through it is reported (hash,
    block, gas) on stderr."""
    from chain.network import connect, parse_network

    chain = connect(parse_network(network))
    chain.on_mined = report_transaction
    return chain


def dev_labels(network: NetworkSpec) -> dict[str, str]:
    """``dev:N`` for each dev account of a local chain (lower-case address -> label), so tables
    name the accounts people pass as ``--account dev:N``; nothing for other chains."""
    from chain.network import DEV_ACCOUNTS, dev_account

    if not network.is_local:
        return {}
    return {
        dev_account(network, index).address.lower(): f"dev:{index}" for index in range(DEV_ACCOUNTS)
    }


def signer(spec: str, network: NetworkSpec) -> LocalAccount:
    """Resolve ``--account``; a keystore's password comes from $LORALEDGER_KEYSTORE_PASSWORD
    or a prompt."""
    from chain.network import load_account

    return load_account(spec, network, password=_password(spec))


def open_cli_session(
    network: str, ipfs: str | None, account: str | None = None, *, state_root: Path | None = None
) -> Session:
    """The session of a command: ``--network`` (its recorded deployment), ``--ipfs`` and
    ``--account`` (``None``: read-only), opened by :func:`chain.session.open_session`;
    ``state_root``: where its local state goes (default: per role under $LORALEDGER_HOME)."""
    from chain.session import open_session

    password = _password(account) if account else None
    session = open_session(
        network, account=account, ipfs=ipfs, password=password, state_root=state_root
    )
    session.ledger.chain.on_mined = report_transaction
    return session


def _password(spec: str) -> str | None:
    """A keystore's password: $LORALEDGER_KEYSTORE_PASSWORD, else a prompt."""
    if not spec.startswith("keystore:"):
        return None
    password = os.environ.get("LORALEDGER_KEYSTORE_PASSWORD")
    if password is None:
        password = typer.prompt("keystore password", hide_input=True)
    return password


def parse_amount(text: str) -> int:
    """Token amount in whole tokens (``1.5`` -> 1.5 * 10**18 base units)."""
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ConfigError(f"amount must be a number, got {text!r}") from exc
    if value < 0:
        raise ConfigError(f"amount must not be negative, got {text}")
    units = value * (10**TOKEN_DECIMALS)
    if units != units.to_integral_value():
        raise ConfigError(f"amount {text} has more than {TOKEN_DECIMALS} decimals")
    return int(units)


def one_of(choices: Sequence[str], what: str) -> Callable[[str | None], str | None]:
    """An option callback that accepts only ``choices`` (``None`` passes: the default applies)
    and names them, with the closest one, before any slow work starts."""

    def check(value: str | None) -> str | None:
        if value is None or value in choices:
            return value
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
        guess = f"; did you mean {close[0]}?" if close else ""
        raise typer.BadParameter(f"{value!r} is not a {what} (use {', '.join(choices)}){guess}")

    return check


StrategyCheck = one_of(STRATEGIES, "strategy")
"""The ``--strategy`` options' check: the aggregator's strategy names."""


IpfsOption = typer.Option(
    None,
    "--ipfs",
    envvar="LORALEDGER_IPFS",
    help="Where content lives: 'embedded' (default, $LORALEDGER_HOME/store), 'embedded:/dir', "
    "or a Kubo RPC API URL such as http://127.0.0.1:5001.",
)
"""The store option every command that reads or writes content shares."""


TaskOption = typer.Option(..., "--task", "-t", help="Task id.")
"""The task a role's command acts on (``loraledger task`` commands take it as an argument)."""

TaskArgument = typer.Argument(
    None, metavar="[TASK]", help="Task id (or --task/-t).", show_default=False
)
TaskOrOption = typer.Option(None, "--task", "-t", help="Task id (or the TASK argument).")
"""A command whose only argument is a task takes it either way: ``task show 1`` or
``task show --task 1`` (see :func:`one_task`)."""


AdapterRoundOption = typer.Option(
    None,
    "--round",
    "-r",
    help="The round whose published global adapter to use (0: the task's initial adapter; "
    "default: the latest finalized round's).",
)
AdapterFolderOption = typer.Option(
    ...,
    "--out",
    "-o",
    help="Folder to write the adapter into: adapter_config.json and adapter_model.safetensors, "
    "which plain peft loads.",
)
ReplaceAdapterOption = typer.Option(
    False, "--force", help="Replace the adapter files of a folder that already has them."
)
"""``adapter export`` and ``node personalize``: which published adapter, and where it goes."""


def one_task(argument: int | None, option: int | None) -> int:
    """The task id given as the TASK argument or as ``--task`` (a usage error: neither, or two
    different ones)."""
    if argument is None and option is None:
        raise click.UsageError("which task? give its id: TASK or --task N")
    if argument is not None and option is not None and argument != option:
        raise click.UsageError(f"two tasks given: TASK {argument} and --task {option}")
    return argument if argument is not None else int(option or 0)


def with_option_group(
    builder: Callable[..., Any], name: str = "opts"
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the options ``builder`` declares, written once for every command that
    shares them: the command takes ``name`` (what ``builder`` returns from those options,
    keyword-only) besides its own parameters, and its ``--help`` lists both. Groups stack: a
    command can take several under different names."""
    extra = list(inspect.signature(builder).parameters.values())
    names = [p.name for p in extra]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command).parameters.values() if p.name != name]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> None:
            group = builder(**{option: kwargs.pop(option) for option in names})
            command(**{name: group}, **kwargs)

        merged = own + extra
        # keyword-only parameters (other groups not built yet) go last, as a signature wants
        params = [p for p in merged if p.kind is not p.KEYWORD_ONLY]
        params += [p for p in merged if p.kind is p.KEYWORD_ONLY]
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must read the merged signature, not the original
        return wrapper

    return decorate


@dataclass(frozen=True)
class RoundOptions:
    """How rounds are verified, scored and aggregated: the options the aggregator and the
    validators share (a validator signs only results made with the settings it runs with)."""

    strategy: str
    clip_norm: float | None
    trim_ratio: float
    byzantine: int
    server_lr: float | None
    outlier_threshold: float
    max_rank: int
    validation_data: Path | None
    model: str | None
    max_loss_increase: float
    max_length: int
    fetch_workers: int
    gpu: bool | None
    reward_rule: str | None
    legacy_rewards: bool

    def settings(self) -> RoundSettings:
        """The :class:`~aggregator.round.RoundSettings` these options name (checked: a bad value
        is one error naming its option)."""
        from pydantic import ValidationError

        from aggregator.combine import StrategyConfig
        from aggregator.device import select_compute
        from aggregator.round import RoundSettings
        from aggregator.stats import OutlierPolicy
        from aggregator.verify import VerifyPolicy

        if self.model is not None and self.validation_data is None:
            raise ConfigError(
                "--model is used with --validation-data",
                hint="give the held-out data to evaluate on",
            )
        try:
            config = StrategyConfig(
                name=self.strategy,  # type: ignore[arg-type]  # checked by pydantic
                clip_norm=self.clip_norm,
                trim_ratio=self.trim_ratio,
                byzantine=self.byzantine,
                server_lr=self.server_lr,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            field = "-".join(str(p) for p in first["loc"]).replace("_", "-")
            option = "strategy" if field in ("", "name") else field
            raise ConfigError(f"--{option}: {first['msg']}") from None
        outliers = (
            OutlierPolicy(threshold=self.outlier_threshold) if self.outlier_threshold > 0 else None
        )
        policy = VerifyPolicy(
            max_rank=self.max_rank,
            outliers=outliers,
            max_loss_increase=self.max_loss_increase,
            fetch_workers=self.fetch_workers,
        )
        compute = select_compute(self.gpu)
        if self.legacy_rewards:
            return RoundSettings.legacy(policy, strategy=config, compute=compute)
        try:
            return RoundSettings(
                strategy=config,
                verify=policy,
                compute=compute,
                reward_rule=self.reward_rule,  # type: ignore[arg-type]  # checked by pydantic
            )
        except ConfigError as exc:
            raise ConfigError(f"--reward-rule: {exc}") from None

    def evaluator(self) -> Evaluator | None:
        """The evaluator on ``--validation-data`` with ``--model`` (loaded now: slow), or
        ``None`` without validation data."""
        if self.validation_data is None:
            return None
        if self.model is None:
            raise ConfigError(
                "--validation-data needs --model (the task's base model: smollm2, tiny, a folder "
                "or a hub id)"
            )
        from fl_node.data import load_examples
        from fl_node.evaluate import AdapterEvaluator
        from fl_node.model import ModelConfig, load_base_model
        from scripts.console import console

        examples = load_examples(self.validation_data)
        with console.status(f"loading {self.model} for validation"):
            loaded = load_base_model(ModelConfig(source=self.model))
        return AdapterEvaluator(loaded, examples, max_length=self.max_length)


def _round_options(
    strategy: str = typer.Option(
        "fedavg",
        "--strategy",
        "-s",
        help="fedavg, fedavgm, fedadam, fedyogi, clip, median, trimmed-mean, krum, flexlora or "
        "zero-pad.",
        callback=StrategyCheck,
    ),
    clip_norm: float | None = typer.Option(
        None, "--clip-norm", help="clip: largest update norm (default: the round's median)."
    ),
    trim_ratio: float = typer.Option(
        0.1, "--trim-ratio", help="trimmed-mean: fraction dropped per side."
    ),
    byzantine: int = typer.Option(
        1, "--byzantine", help="krum: number of attackers tolerated (needs 2f+3 updates)."
    ),
    server_lr: float | None = typer.Option(
        None, "--server-lr", help="fedavgm/fedadam/fedyogi: server learning rate."
    ),
    outlier_threshold: float = typer.Option(
        3.5,
        "--outlier-threshold",
        help="Reject updates whose norm's robust z-score exceeds this (0: off).",
    ),
    max_rank: int = typer.Option(64, "--max-rank", help="Largest LoRA rank accepted from a node."),
    validation_data: Path | None = typer.Option(
        None,
        "--validation-data",
        help="Private held-out examples (JSON/JSONL/CSV/folder) this account, as one of the "
        "task's validators, scores every update on; its score sheet is posted each round.",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="The task's base model for validation: smollm2, tiny, a folder or a hub id.",
    ),
    max_loss_increase: float = typer.Option(
        0.5,
        "--max-loss-increase",
        help="With validation: reject an update whose loss is this much (fraction) worse than "
        "the start adapter's (non-IID nodes specialise: honest ones measured up to 30% worse).",
    ),
    max_length: int = typer.Option(256, "--max-length", help="Validation: tokens per example."),
    fetch_workers: int = typer.Option(
        4, "--fetch-workers", help="Updates fetched and verified at once."
    ),
    gpu: bool | None = typer.Option(
        None, "--gpu/--cpu", help="Aggregate on CUDA or the CPU (default: CUDA when present)."
    ),
    reward_rule: str | None = typer.Option(
        None,
        "--reward-rule",
        help="contribution (the validators' scores; the default when most score sheets have "
        "them), examples (claims capped at the median; the default otherwise) or claimed (the "
        "old rule).",
        callback=one_of(REWARD_RULES, "reward rule"),
    ),
    legacy_rewards: bool = typer.Option(
        False,
        "--legacy-rewards",
        help="The rules before contribution scoring: claimed examples, no cap, no free-rider "
        "or copy screening, no slashing (to compare; not for real tasks).",
    ),
) -> RoundOptions:
    return RoundOptions(
        strategy=strategy,
        clip_norm=clip_norm,
        trim_ratio=trim_ratio,
        byzantine=byzantine,
        server_lr=server_lr,
        outlier_threshold=outlier_threshold,
        max_rank=max_rank,
        validation_data=validation_data,
        model=model,
        max_loss_increase=max_loss_increase,
        max_length=max_length,
        fetch_workers=fetch_workers,
        gpu=gpu,
        reward_rule=reward_rule,
        legacy_rewards=legacy_rewards,
    )


with_round_options = with_option_group(_round_options)
"""The round options (:class:`RoundOptions`) for ``aggregator run|finalize`` and
``validator run``."""
