"""``loraledger task``: sponsors create and fund training tasks; anyone inspects them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import typer

from chain import errors
from chain.bindings import (
    DEFAULT_CHALLENGE_WINDOW,
    DEFAULT_GRACE_PERIOD,
    DEFAULT_MAX_EXAMPLES,
    DEFAULT_SLASH_WINDOW,
    Ledger,
    Round,
    Task,
    TaskParams,
    Token,
    base_model_hash,
    pack_privacy,
    unpack_privacy,
)
from chain.deployments import load_deployment
from loraledger.display import chain_time, compact_time, tokens
from loraledger.errors import ChainError, ConfigError
from loraledger.privacy import ACCOUNTANTS, DEFAULT_DELTA, PRIVACY_MODES, TaskPrivacy
from scripts.console import account, console, err_console
from scripts.console import table as new_table
from scripts.options import (
    AccountOption,
    IpfsOption,
    JsonOption,
    NetworkOption,
    TaskArgument,
    TaskOrOption,
    dev_labels,
    one_of,
    one_task,
    open_chain,
    open_cli_session,
    parse_amount,
    signer,
    with_option_group,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from chain.network import NetworkSpec
    from chain.session import Session

app = typer.Typer(no_args_is_help=True)


def _digest(text: str) -> bytes:
    value = text.removeprefix("0x")
    try:
        digest = bytes.fromhex(value)
    except ValueError as exc:
        raise ConfigError(f"digest must be 64 hex characters, got {text!r}") from exc
    if len(digest) != 32:
        raise ConfigError(f"digest must be 32 bytes (64 hex characters), got {len(digest)} bytes")
    return digest


@dataclass(frozen=True)
class _PrivacyOptions:
    """The ``--dp-*`` options of ``task create`` as given (``None``: left out)."""

    mode: str
    noise_multiplier: float | None
    clip_norm: float | None
    target_epsilon: float | None
    delta: float | None
    accountant: str | None
    min_nodes: int | None

    def policy(self, max_rounds: int) -> tuple[TaskPrivacy, float | None]:
        """The task's policy as the chain will record it (rounded to its fixed point), and under
        node-level DP what ``max_rounds`` rounds spend at the least noise it allows, checked
        against its target epsilon. Node-level DP without ``--dp-noise-multiplier`` takes the
        smallest noise that meets the target over ``max_rounds`` rounds."""
        from loraledger.privacy import accountant_named, noise_multiplier, schedule_epsilon

        if self.mode == "none":
            return TaskPrivacy(), None
        accountant = accountant_named(self.accountant or "rdp")
        target = self.target_epsilon or 0.0
        delta = DEFAULT_DELTA if self.delta is None else self.delta
        sigma = self.noise_multiplier
        if sigma is None:  # node-level (example-level DP requires it): the least noise, rounded up
            sigma = _rounded_up(noise_multiplier(target, delta, 1.0, max_rounds, accountant), 6)
        given = TaskPrivacy(
            mode=self.mode,
            noise_multiplier=sigma,
            clip_norm=1.0 if self.clip_norm is None else self.clip_norm,
            target_epsilon=target,
            delta=delta,
            accountant=accountant,
            min_nodes=self.min_nodes or 0,
        )
        recorded = unpack_privacy(pack_privacy(given))  # what nodes and auditors will read
        if recorded.mode != "node":
            return recorded, None
        spent = schedule_epsilon(recorded, max_rounds)
        if spent > recorded.target_epsilon:
            needed = noise_multiplier(
                recorded.target_epsilon, recorded.delta, 1.0, max_rounds, recorded.accountant
            )
            shown = f"{_rounded_up(needed, 4):.4f}".rstrip("0").rstrip(".")
            raise ConfigError(
                f"node-level DP at noise multiplier {recorded.noise_multiplier:g} spends epsilon "
                f"{spent:.4g} over the task's {max_rounds} round(s) of {recorded.min_nodes} "
                f"node(s), past --dp-epsilon {recorded.target_epsilon:g}: that target needs a "
                f"noise multiplier of {shown}",
                hint=f"give --dp-noise-multiplier {shown} or more, or leave it out for the "
                "smallest that meets --dp-epsilon",
            )
        return recorded, spent


def _rounded_up(value: float, decimals: int) -> float:
    """``value`` rounded up to ``decimals`` decimals (more noise, never less)."""
    scale = 10**decimals
    return math.ceil(value * scale) / scale


def _privacy_options(
    mode: str = typer.Option(
        "none",
        "--dp-mode",
        help="The differential privacy the task requires of its updates (docs/privacy.md): "
        "none, example (DP-SGD on each node) or node (node-level DP-FedAvg: each node adds a "
        "share of the noise). Recorded on chain; the --dp-* options need it.",
        callback=one_of(PRIVACY_MODES, "privacy mode"),
    ),
    noise_multiplier: float | None = typer.Option(
        None,
        "--dp-noise-multiplier",
        help="Noise standard deviation over the clipping bound that updates must carry at "
        "least. Example-level: required (what a round spends depends on each node's data). "
        "Node-level: default the smallest with which --max-rounds rounds of --dp-min-nodes "
        "nodes spend at most --dp-epsilon.",
    ),
    clip_norm: float | None = typer.Option(
        None,
        "--dp-clip-norm",
        help="L2 clipping bound: of each example's gradient (example-level) or of each node's "
        "update (node-level). Default 1.0.",
    ),
    target_epsilon: float | None = typer.Option(
        None,
        "--dp-epsilon",
        help="Target epsilon (required with a mode). Example-level: the most each node spends "
        "on the task, which its own privacy ledger bounds (`node run --dp-budget`). "
        "Node-level: the most the task's global adapters spend together over --max-rounds.",
    ),
    delta: float | None = typer.Option(
        None, "--dp-delta", help="Delta of (epsilon, delta)-DP. Default 1e-5."
    ),
    accountant: str | None = typer.Option(
        None,
        "--dp-accountant",
        help="How epsilon is counted: rdp (default) or prv (tighter).",
        callback=one_of(ACCOUNTANTS, "accountant"),
    ),
    min_nodes: int | None = typer.Option(
        None,
        "--dp-min-nodes",
        help="Node-level only (required there): the updates a round must accept to publish "
        "its aggregate; each node adds noise of 1/sqrt(this) of the full noise.",
    ),
) -> _PrivacyOptions:
    given = {
        "--dp-noise-multiplier": noise_multiplier,
        "--dp-clip-norm": clip_norm,
        "--dp-epsilon": target_epsilon,
        "--dp-delta": delta,
        "--dp-accountant": accountant,
        "--dp-min-nodes": min_nodes,
    }
    named = [option for option, value in given.items() if value is not None]
    if mode == "none" and named:
        raise ConfigError(
            f"{', '.join(named)} {'sets' if len(named) == 1 else 'set'} a privacy policy, "
            "which --dp-mode chooses",
            hint="give --dp-mode example or --dp-mode node, or leave the --dp-* options out",
        )
    if mode != "none" and target_epsilon is None:
        raise ConfigError(
            f"--dp-mode {mode} needs --dp-epsilon, the target epsilon",
            hint="`loraledger privacy epsilon` says what a schedule spends",
        )
    if mode == "example" and noise_multiplier is None:
        raise ConfigError(
            "--dp-mode example needs --dp-noise-multiplier: what a round of DP-SGD spends "
            "depends on each node's data, so the task fixes the noise and each node's ledger "
            "bounds its total at --dp-epsilon",
            hint="`loraledger privacy noise` finds the noise for a target epsilon",
        )
    if mode == "example" and min_nodes is not None:
        raise ConfigError(
            "--dp-min-nodes is for --dp-mode node: under example-level DP each node adds all "
            "of its own noise"
        )
    if mode == "node" and min_nodes is None:
        raise ConfigError(
            "--dp-mode node needs --dp-min-nodes: the updates whose noise shares add up to the "
            "full noise",
            hint="a round that accepts fewer keeps the task's adapter",
        )
    return _PrivacyOptions(
        mode, noise_multiplier, clip_norm, target_epsilon, delta, accountant, min_nodes
    )


with_privacy_options = with_option_group(_privacy_options, "privacy")
"""The task's privacy policy (``--dp-*``): ``task create``."""


@app.command()
@with_privacy_options
def create(
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Build the initial global adapter from this base model (smollm2, tiny, a folder or "
        "a hub id) and pin it.",
    ),
    rank: int = typer.Option(
        8, "--rank", help="LoRA rank of the initial adapter (the task's maximum)."
    ),
    alpha: float = typer.Option(16.0, "--alpha", help="LoRA alpha of the initial adapter."),
    targets: str = typer.Option(
        "q_proj,k_proj,v_proj,o_proj", "--targets", help="LoRA target modules."
    ),
    base_model: str | None = typer.Option(
        None, "--base-model", help="Base model id hashed on chain (default: the model's id)."
    ),
    initial_cid: str | None = typer.Option(
        None, "--initial-cid", help="CID of an initial adapter already pinned (instead of --model)."
    ),
    initial_digest: str | None = typer.Option(
        None, "--initial-digest", help="sha256 (hex) of that adapter's bytes."
    ),
    reward_per_round: str = typer.Option(
        "100", "--reward-per-round", help="Tokens paid per round (most)."
    ),
    min_stake: str = typer.Option("10", "--min-stake", help="Tokens a node stakes to join."),
    window: int = typer.Option(
        600, "--window", help="Commit window in seconds (nodes commit to hidden updates)."
    ),
    reveal_window: int | None = typer.Option(
        None,
        "--reveal-window",
        help="Seconds after the commit window during which nodes reveal (default: --window).",
    ),
    max_examples: int = typer.Option(
        DEFAULT_MAX_EXAMPLES,
        "--max-examples",
        help="Most training examples a node may claim per round (caps its weight).",
    ),
    max_rounds: int = typer.Option(
        3, "--max-rounds", help="Rounds after which the task is complete."
    ),
    fund: str = typer.Option(
        "0", "--fund", help="Tokens to deposit into the reward pool right away."
    ),
    aggregator: str | None = typer.Option(
        None,
        "--aggregator",
        help="The account that opens rounds and proposes results: an address or dev:N "
        "(default: the one `loraledger deploy` recorded, dev:1 on local chains).",
    ),
    validators: list[str] = typer.Option(
        [],
        "--validator",
        help="An account that scores updates and signs results: an address or dev:N; repeat "
        "it or separate with commas (default on local chains: the aggregator's account alone).",
    ),
    quorum: int | None = typer.Option(
        None,
        "--quorum",
        help="Validator signatures a result needs: a majority (default: the smallest, "
        "validators/2 + 1).",
    ),
    aggregator_bond: str = typer.Option(
        "0", "--aggregator-bond", help="Tokens the aggregator locks before the first round."
    ),
    validator_bond: str = typer.Option(
        "0", "--validator-bond", help="Tokens each validator locks before it scores or signs."
    ),
    validator_share: str = typer.Option(
        "0",
        "--validator-share",
        help="Percent of each round's paid reward that goes to the validators (0 to 50, in "
        "steps of 0.01: 10 means 10%).",
    ),
    challenge_window: int = typer.Option(
        DEFAULT_CHALLENGE_WINDOW,
        "--challenge-window",
        help="Seconds after a round is finalized during which its result can be challenged; "
        "rewards are claimable after it.",
    ),
    slash_window: int = typer.Option(
        DEFAULT_SLASH_WINDOW,
        "--slash-window",
        help="Seconds after the challenge window during which the round's slashes can be made.",
    ),
    grace_period: int = typer.Option(
        DEFAULT_GRACE_PERIOD,
        "--grace-period",
        help="Seconds after a round's reveal deadline after which anyone may abandon it "
        "unfinalized; also how long the task may sit idle before its sponsor may cancel it.",
    ),
    network: str = NetworkOption,
    account: str = AccountOption,
    ipfs: str | None = IpfsOption,
    *,
    privacy: _PrivacyOptions,
) -> None:
    """Create a training task (the account becomes its sponsor), optionally funding it.

    Give either --model (the initial adapter is built, pinned and digested here) or an adapter
    you pinned yourself with --initial-cid, --initial-digest and --base-model. The task names
    its aggregator and validators, their bonds and the windows that hold them to account
    (docs/accountability.md), and the differential privacy it requires of every update
    (--dp-mode and the --dp-* options; docs/privacy.md).
    """
    from sponsor.task import TaskRoles

    policy, spent = privacy.policy(max_rounds)
    chain = open_chain(network)
    sponsor = signer(account, chain.network)
    deployment = load_deployment(chain)
    ledger, token = deployment.ledger_contract(chain), deployment.token_contract(chain)
    amount = parse_amount(fund)
    roles = TaskRoles(
        *_roles(aggregator or deployment.aggregator, validators, chain.network),
        quorum=quorum,
        aggregator_bond=parse_amount(aggregator_bond),
        validator_bond=parse_amount(validator_bond),
        validator_share_bps=_share_bps(validator_share),
        challenge_window=challenge_window,
        slash_window=slash_window,
        grace_period=grace_period,
    )
    if len(roles.validators) == 1:
        err_console.print(
            f"[yellow]warning:[/] one validator ({roles.validators[0]}) is trusted alone: "
            "nobody else checks the results it signs; name more with --validator",
            highlight=False,
            soft_wrap=True,
        )
    if policy.mode == "node":
        err_console.print(
            "[yellow]warning:[/] node-level DP sums the updates with equal weights: the task's "
            "aggregator must run `--strategy fedavg` (it refuses any other strategy here)",
            highlight=False,
            soft_wrap=True,
        )
    if model is not None:
        if initial_cid or initial_digest:
            raise ConfigError("give either --model or --initial-cid/--initial-digest, not both")
        from fl_node.model import ModelConfig, load_base_model
        from ipfs import open_store
        from loraledger.update import PeftSpec
        from sponsor.task import publish_task

        spec = PeftSpec(
            rank=rank,
            alpha=alpha,
            target_modules=tuple(t.strip() for t in targets.split(",") if t.strip()),
        )
        with console.status(f"building the initial adapter from {model}"):
            loaded = load_base_model(ModelConfig(source=model))
        if base_model is not None and base_model != loaded.model_id:
            raise ConfigError(
                f"--base-model {base_model!r} differs from the model's id {loaded.model_id!r}"
            )
        base_model = loaded.model_id
        with (
            console.status("pinning the initial adapter and creating the task"),
            _task_params_errors(),
        ):
            task_id, initial_cid = publish_task(
                ledger,
                token,
                open_store(ipfs),
                loaded,
                spec,
                sponsor,
                reward_per_round=parse_amount(reward_per_round),
                min_stake=parse_amount(min_stake),
                window=window,
                max_rounds=max_rounds,
                fund=amount,
                reveal_window=reveal_window,
                max_examples=max_examples,
                roles=roles,
                privacy=policy,
            )
        console.print(f"initial adapter {initial_cid} (rank {rank})")
    elif not (initial_cid and initial_digest and base_model):
        raise ConfigError(
            "give --model, or all of --initial-cid, --initial-digest and --base-model"
        )
    else:
        from sponsor.task import create_funded_task

        params = TaskParams(
            base_model_hash=base_model_hash(base_model),
            initial_global_cid=initial_cid,
            initial_global_digest=_digest(initial_digest),
            token=deployment.token,
            reward_per_round=parse_amount(reward_per_round),
            min_stake=parse_amount(min_stake),
            submission_window=window,
            max_rounds=max_rounds,
            reveal_window=reveal_window,
            max_examples=max_examples,
            aggregator=roles.aggregator,
            validators=roles.validators,
            quorum=roles.effective_quorum,
            aggregator_bond=roles.aggregator_bond,
            validator_bond=roles.validator_bond,
            validator_share_bps=roles.validator_share_bps,
            challenge_window=roles.challenge_window,
            slash_window=roles.slash_window,
            grace_period=roles.grace_period,
            privacy=policy,
        )
        with _task_params_errors():
            task_id = create_funded_task(ledger, token, params, sponsor, fund=amount)
    console.print(
        f"created task [bold]{task_id}[/] on {chain.network.name} (base model {base_model})"
    )
    console.print(
        f"aggregator {roles.aggregator}; {len(roles.validators)} validator(s), quorum "
        f"{roles.effective_quorum}; bonds {tokens(roles.aggregator_bond)} / "
        f"{tokens(roles.validator_bond)}; validators' share "
        f"{roles.validator_share_bps / 100:g}%",
        highlight=False,
    )
    console.print(f"privacy: {policy.describe()}", highlight=False, soft_wrap=True)
    if spent is not None:
        console.print(
            f"its global adapters spend at most epsilon {spent:.3f} over {max_rounds} round(s)",
            highlight=False,
        )
    if amount:
        console.print(f"funded task {task_id} with {tokens(amount)}")


def _roles(
    aggregator: str, validators: list[str], network: NetworkSpec
) -> tuple[str, tuple[str, ...]]:
    """``--aggregator`` and ``--validator`` as addresses; on a local chain the validator is
    the aggregator's own account when none is named."""
    aggregator_address = _address(aggregator, network, "--aggregator")
    specs = [part.strip() for item in validators for part in item.split(",") if part.strip()]
    if not specs:
        if not network.is_local:
            raise ConfigError(
                f"--validator is needed on {network.name}",
                hint="name the accounts that will run `loraledger validator run` (a majority "
                "of them must sign each result)",
            )
        return aggregator_address, (aggregator_address,)
    return aggregator_address, tuple(_address(v, network, "--validator") for v in specs)


def _address(spec: str, network: NetworkSpec, option: str) -> str:
    """An account given as an address or dev:N, checksummed."""
    from web3 import Web3

    from chain.network import dev_account

    if spec.startswith("dev:"):
        index = spec.removeprefix("dev:")
        if not index.isdigit():
            raise ConfigError(f"{option} takes dev:N with a number N, got {spec!r}")
        return dev_account(network, int(index)).address
    if not Web3.is_address(spec):
        raise ConfigError(
            f"{option} takes an address (0x and 40 hex digits) or dev:N, got {spec!r}"
        )
    return str(Web3.to_checksum_address(spec))


def _share_bps(text: str) -> int:
    """``--validator-share`` (percent) in basis points."""
    try:
        percent = Decimal(text.strip().removesuffix("%"))
    except InvalidOperation:
        raise ConfigError(f"--validator-share must be a percentage, got {text!r}") from None
    bps = percent * 100
    if percent < 0 or bps != bps.to_integral_value():
        raise ConfigError(
            f"--validator-share {text}: a percentage from 0, in steps of 0.01 (10 means 10%)"
        )
    return int(bps)


@contextmanager
def _task_params_errors() -> Iterator[None]:
    """The contract's refusals of a task's roles and windows, as the options that caused them."""
    try:
        yield
    except errors.LedgerInvalidQuorum as exc:
        n = int(exc.validators)
        raise ConfigError(
            f"--quorum {exc.quorum} is not a majority of the task's {n} validator(s)",
            hint=f"give --quorum from {n // 2 + 1} to {n}, or leave it out",
        ) from None
    except errors.LedgerInvalidShare as exc:
        raise ConfigError(
            f"--validator-share {int(exc.validator_share_bps) / 100:g}%: validators get at most "
            "50% of a round's reward"
        ) from None
    except errors.LedgerInvalidRole as exc:
        raise ConfigError(
            f"{exc.account} cannot take that role: the aggregator and the validators must be "
            "distinct, nonzero accounts",
            hint="check --aggregator and --validator",
        ) from None
    except errors.LedgerInvalidValidatorCount as exc:
        raise ConfigError(f"a task has 1 to 32 validators, got {exc.count}") from None
    except errors.LedgerInvalidDuration:
        raise ConfigError(
            "--challenge-window, --slash-window and --grace-period must be positive"
        ) from None
    except errors.LedgerInvalidPrivacy as exc:
        raise ConfigError(
            f"the chain refused the task's privacy policy (mode {exc.mode}, accountant "
            f"{exc.accountant})",
            hint="check the --dp-* options",
        ) from None


@app.command("fund")
def fund_command(
    task_id: int = typer.Argument(..., help="Task id."),
    amount: str = typer.Argument(..., help="Tokens to deposit."),
    network: str = NetworkOption,
    account: str = AccountOption,
) -> None:
    """Deposit tokens into a task's reward pool (approves the ledger first)."""
    chain = open_chain(network)
    funder = signer(account, chain.network)
    deployment = load_deployment(chain)
    ledger = deployment.ledger_contract(chain)
    task = ledger.task(task_id)
    units = parse_amount(amount)
    Token(chain, task.token).approve(ledger.address, units, funder)
    ledger.fund_task(task_id, units, funder)
    console.print(f"task {task_id} pool: {tokens(ledger.task(task_id).funded)} funded")


@app.command("cancel")
def cancel_command(
    task: int | None = TaskArgument,
    task_option: int | None = TaskOrOption,
    network: str = NetworkOption,
    account: str = AccountOption,
) -> None:
    """Cancel a task that cannot go on and take back its unreserved pool (the sponsor).

    A task can be cancelled when no round is in flight and its pool is short of a round's
    reward, no node is active, its last round was abandoned, its aggregator's bond is missing
    or slashed, or nothing happened for its grace period. Rewards of finalized rounds stay
    reserved for their claims; bonds and stakes come back to their owners.
    """
    task_id = one_task(task, task_option)
    chain = open_chain(network)
    sponsor = signer(account, chain.network)
    ledger = load_deployment(chain).ledger_contract(chain)
    task_info = ledger.task(task_id)
    if task_info.cancelled:
        console.print(f"task {task_id} was already cancelled")
    else:
        try:
            ledger.cancel_task(task_id, sponsor)
        except errors.LedgerTaskActive as exc:
            raise ChainError(
                f"task {task_id} can still go on, so it cannot be cancelled now; if nothing "
                f"happens, it can be from {chain_time(int(exc.cancellable_at), chain.timestamp())}",
                hint="a task is cancelled when it cannot go on: no active node, a pool short "
                "of a round's reward, its last round abandoned, or its aggregator's bond "
                "missing or slashed",
            ) from None
        except errors.LedgerUnexpectedRoundState as exc:
            raise ChainError(
                f"task {task_id} has round {exc.round} in flight ({exc.current.name.lower()})",
                hint="a task is cancelled between rounds: wait until the round is settled, or "
                f"abandon it after its grace period (`loraledger round abandon --task {task_id} "
                f"--round {exc.round}`)",
            ) from None
        except errors.LedgerTaskComplete:
            raise ChainError(
                f"task {task_id} is complete: there is nothing to cancel",
                hint=f"take back what is left with `loraledger task withdraw {task_id}`",
            ) from None
        console.print(f"cancelled task {task_id}: no round opens any more")
    _withdraw_remainder(ledger, task_id, sponsor)


@app.command("withdraw")
def withdraw_command(
    task: int | None = TaskArgument,
    task_option: int | None = TaskOrOption,
    network: str = NetworkOption,
    account: str = AccountOption,
) -> None:
    """Take back the unreserved pool of a complete or cancelled task (the sponsor)."""
    task_id = one_task(task, task_option)
    chain = open_chain(network)
    sponsor = signer(account, chain.network)
    ledger = load_deployment(chain).ledger_contract(chain)
    try:
        _withdraw_remainder(ledger, task_id, sponsor)
    except errors.LedgerTaskNotComplete as exc:
        raise ChainError(
            f"task {task_id} is still running ({exc.rounds_ended} of {exc.max_rounds} rounds "
            "ended)",
            hint=f"wait for its last round, or cancel it: `loraledger task cancel {task_id}`",
        ) from None


def _withdraw_remainder(ledger: Ledger, task_id: int, sponsor: LocalAccount) -> None:
    """Withdraw what is not reserved for claims, if anything; print it and what stays."""
    task = ledger.task(task_id)
    if task.available == 0:
        console.print(
            f"nothing left to withdraw ({tokens(task.reserved - task.paid)} stay "
            "reserved for claims)"
        )
        return
    ledger.withdraw_remainder(task_id, sponsor)
    after = ledger.task(task_id)
    console.print(
        f"withdrew {tokens(task.available)} to {after.sponsor}; "
        f"{tokens(after.reserved - after.paid)} stay reserved for claims"
    )


@app.command("list")
def list_command(network: str = NetworkOption, as_json: bool = JsonOption) -> None:
    """List the tasks on this chain (--json: with each one's privacy policy)."""
    from chain.events import History

    chain = open_chain(network)
    deployment = load_deployment(chain)
    ledger = deployment.ledger_contract(chain)
    tasks = [ledger.task(i) for i in range(1, ledger.task_count() + 1)]
    if as_json:
        history = History(ledger, deployment.block)
        body = [
            _task_json(t) | {"privacy": history.task_created(t.task_id).params.privacy.as_json()}
            for t in tasks
        ]
        console.print_json(json.dumps(body))
        return
    table = new_table(
        "task",
        "sponsor",
        "aggregator",
        "rounds",
        "nodes",
        "reward per round (LLT)",
        "pool left (LLT)",
        "paid (LLT)",
    )
    labels = dev_labels(chain.network)
    for t in tasks:
        table.add_row(
            str(t.task_id),
            account(t.sponsor, labels),
            account(t.aggregator, labels),
            f"{t.rounds_opened}/{t.max_rounds}" + (" (cancelled)" if t.cancelled else ""),
            str(t.active_nodes),
            tokens(t.reward_per_round, unit=False),
            tokens(t.available, unit=False),
            tokens(t.paid, unit=False),
        )
    console.print(table)


@app.command()
def show(
    task: int | None = TaskArgument,
    task_option: int | None = TaskOrOption,
    network: str = NetworkOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one task: its base model and adapter (from its initial adapter, checked against the
    chain), its terms and privacy policy, its aggregator and validators with their bonds, its
    rounds."""
    task_id = one_task(task, task_option)
    session = open_cli_session(network, ipfs)
    ledger = session.ledger
    task_info = ledger.task(task_id)
    privacy = session.history.task_created(task_id).params.privacy
    model = _model_json(session, task_info)
    validators = ledger.validators(task_id)
    rounds = [ledger.round(task_id, r) for r in range(1, task_info.rounds_opened + 1)]
    states = {r.round: ledger.round_state(task_id, r.round).name.lower() for r in rounds}
    parties = [("aggregator", task_info.aggregator, task_info.aggregator_bond)] + [
        (f"validator {i}", v, task_info.validator_bond) for i, v in enumerate(validators)
    ]
    bonds = {address: ledger.bond_of(task_id, address) for _, address, _ in parties}
    if as_json:
        body = _task_json(task_info) | {
            "privacy": privacy.as_json(),
            "model": model,
            "validators": validators,
            "bonds": {
                address: {
                    "posted": bond.posted,
                    "slashed": bond.slashed,
                    "amount": str(bond.amount),
                }
                for address, bond in bonds.items()
            },
            "rounds": [_round_json(r) | {"state": states[r.round]} for r in rounds],
        }
        console.print_json(json.dumps(body))
        return
    amounts = {
        "reward_per_round",
        "min_stake",
        "funded",
        "reserved",
        "paid",
        "withdrawn",
        "aggregator_bond",
        "validator_bond",
    }
    seconds = {"submission_window", "reveal_window", "challenge_window", "slash_window"}
    if "error" in model:
        console.print(f"{'base model':>19}  [yellow]unknown:[/] {model['error']}", soft_wrap=True)
    else:
        peft = model["peft"]
        assert isinstance(peft, dict)
        console.print(
            f"{'base model':>19}  {model['base_model']}"
            + ("" if model["hash_matches"] else " [red](does not match base_model_hash!)[/]"),
            soft_wrap=True,
            highlight=False,
        )
        console.print(
            f"{'adapter':>19}  {peft['method']} rank {peft['rank']}, alpha {peft['alpha']:g}, "
            f"on {', '.join(peft['target_modules'])} (initial adapter {model['initial_cid']})",
            soft_wrap=True,
            highlight=False,
        )
    for key, value in _task_json(task_info).items():
        shown = (
            tokens(int(str(value)))
            if key in amounts
            else f"{value} s"
            if key in seconds or key == "grace_period"
            else f"{int(str(value)) / 100:g}% ({value} bps)"
            if key == "validator_share_bps"
            else value
        )
        console.print(f"{key:>19}  {shown}", soft_wrap=True)
    console.print(f"{'privacy':>19}  {privacy.describe()}", soft_wrap=True, highlight=False)
    roles = new_table("role", "account", "bond owed", "bond held", title="roles")
    labels = dev_labels(session.ledger.chain.network)
    for role, address, owed in parties:
        bond = bonds[address]
        held = "slashed" if bond.slashed else tokens(bond.amount) if bond.posted else "not posted"
        roles.add_row(role, account(address, labels), tokens(owed), held)
    console.print(roles)
    table = new_table(
        "round",
        "state",
        "deadline (UTC)",
        "commits / reveals",
        "accepted / rejected",
        "signers",
        "reward (LLT)",
        "claimed (LLT)",
        title="rounds",
        text=("state",),
    )
    for r in rounds:
        table.add_row(
            str(r.round),
            states[r.round],
            compact_time(r.deadline),
            f"{r.commits}/{r.reveals}",
            f"{r.accepted}/{r.rejected}",
            f"{r.signers.bit_count()}/{task_info.quorum}",
            tokens(r.reward_total, unit=False),
            tokens(r.claimed, unit=False),
        )
    console.print(table)


def _model_json(session: Session, task: Task) -> dict[str, object]:
    """What a joining node needs to load: the base model named in the task's initial adapter
    (fetched from the store and checked against its on-chain digest), whether its name hashes
    to the task's ``base_model_hash``, and the adapter's shape; ``{"error": ...}`` when the
    store cannot give it."""
    from aggregator.inputs import load_published_adapter
    from loraledger.errors import LoRALedgerError

    try:
        initial = load_published_adapter(
            session.ledger, session.history, session.store, task.task_id, 0
        )
    except LoRALedgerError as exc:
        return {"error": str(exc)}
    meta = initial.adapter.metadata
    return {
        "base_model": meta.base_model,
        "hash_matches": base_model_hash(meta.base_model) == task.base_model_hash,
        "peft": meta.peft.model_dump(mode="json"),
        "initial_cid": initial.cid,
    }


def _task_json(t: Task) -> dict[str, object]:
    return {
        "task_id": t.task_id,
        "sponsor": t.sponsor,
        "token": t.token,
        "base_model_hash": "0x" + t.base_model_hash.hex(),
        "global_digest": t.global_digest.hex(),
        "reward_per_round": str(t.reward_per_round),
        "min_stake": str(t.min_stake),
        "funded": str(t.funded),
        "reserved": str(t.reserved),
        "paid": str(t.paid),
        "withdrawn": str(t.withdrawn),
        "submission_window": t.submission_window,
        "reveal_window": t.reveal_window,
        "max_examples": t.max_examples,
        "max_rounds": t.max_rounds,
        "rounds_opened": t.rounds_opened,
        "active_nodes": t.active_nodes,
        "aggregator": t.aggregator,
        "quorum": t.quorum,
        "aggregator_bond": str(t.aggregator_bond),
        "validator_bond": str(t.validator_bond),
        "validator_share_bps": t.validator_share_bps,
        "challenge_window": t.challenge_window,
        "slash_window": t.slash_window,
        "grace_period": t.grace_period,
        "cancelled": t.cancelled,
    }


def _round_json(r: Round) -> dict[str, object]:
    return {
        "round": r.round,
        "start_digest": r.start_digest.hex(),
        "result_digest": r.result_digest.hex(),
        "result_hash": "0x" + r.result_hash.hex(),
        "reward_root": "0x" + r.reward_root.hex(),
        "reward_total": str(r.reward_total),
        "slash_root": "0x" + r.slash_root.hex(),
        "claimed": str(r.claimed),
        "opened_at": r.opened_at,
        "deadline": r.deadline,
        "reveal_deadline": r.reveal_deadline,
        "finalized_at": r.finalized_at,
        "eligible": r.eligible,
        "commits": r.commits,
        "reveals": r.reveals,
        "all_committed": r.all_committed,
        "submissions": r.submissions,
        "accepted": r.accepted,
        "rejected": r.rejected,
        "epoch": r.epoch,
        "scores_bitmap": r.scores_bitmap,
        "signers": r.signers,
        "abandoned": r.abandoned,
    }
