"""The aggregator as a Flower ``ServerApp``: join the connected nodes to the task, then run
:class:`flower_app.strategy.LedgerStrategy` for ``rounds`` rounds.

The ServerApp signs with the task's aggregator account (``aggregator-account``) and
reads and writes content in ``ipfs``; every node signs with its own account. What the run did is
on chain (``RoundFinalized`` events, round reports by CID); a caller in the same process (the
simulation) also gets the strategy's per-round log through ``on_done``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp

from flower_app.config import ServerConfig
from flower_app.messages import Instruction
from flower_app.strategy import LedgerStrategy, join_nodes

logger = logging.getLogger(__name__)

WINDOW_MARGIN_SECONDS = 60.0


def run_federation(grid: Grid, config: ServerConfig) -> LedgerStrategy:
    """Join the nodes, then open, wait for and finalize ``config.rounds`` rounds."""
    from aggregator.combine import StrategyConfig
    from aggregator.round import RoundRunner, RoundSettings
    from aggregator.validator import Validator
    from chain.network import parse_network
    from chain.session import open_session
    from flower_app.accounts import resolve_account

    network = parse_network(config.ledger.network)
    session = open_session(
        network,
        account=resolve_account(config.account, network),
        ipfs=config.ledger.ipfs,
        ledger=config.ledger.ledger,
        from_block=config.ledger.from_block,
        state_root=config.work_dir / "aggregator" if config.work_dir else None,
        timeout=30,
    )
    ledger, chain = session.ledger, session.ledger.chain
    settings = RoundSettings(strategy=StrategyConfig(name=config.strategy))  # type: ignore[arg-type]
    task_id = config.ledger.task_id
    # the validators named in the config validate here, each with its own account (no held-out
    # data: verdicts, no scores); the others run `loraledger validator run`
    validators = [
        Validator(
            open_session(
                network,
                account=resolve_account(spec, network),
                ipfs=config.ledger.ipfs,
                ledger=config.ledger.ledger,
                from_block=config.ledger.from_block,
                state_root=config.work_dir / f"validator-{i}" if config.work_dir else None,
                timeout=30,
            ),
            task_id,
            None,
            settings,
            propose_after=0.0,
        )
        for i, spec in enumerate(config.validator_accounts)
    ]
    runner = RoundRunner(session, task_id, settings, validators=validators)
    task = ledger.task(task_id)
    # a round takes commitments, then reveals: at most both windows
    window = float(task.submission_window + task.reveal_window) + WINDOW_MARGIN_SECONDS
    instruction = Instruction(ledger.address, chain.chain_id, config.ledger.task_id)
    members = join_nodes(
        grid,
        instruction,
        min_nodes=config.min_nodes,
        timeout=config.reply_timeout,
        poll_seconds=config.poll_seconds,
    )
    strategy = LedgerStrategy(
        runner,
        {n: r.node for n, r in members.items()},
        fraction_train=config.fraction_train,
        poll_seconds=config.poll_seconds,
        window_timeout=window,
    )
    # nodes cannot commit after the window: waiting longer for replies gains nothing
    strategy.start(
        grid, ArrayRecord(), num_rounds=config.rounds, timeout=min(config.reply_timeout, window)
    )
    return strategy


def build_server_app(
    overrides: Mapping[str, Any] | None = None,
    on_done: Callable[[LedgerStrategy], None] | None = None,
) -> ServerApp:
    """The ServerApp; ``overrides`` are laid over the run config (see ``build_client_app``)."""
    extra = dict(overrides or {})
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        config = ServerConfig.from_config({**dict(context.run_config), **extra})
        strategy = run_federation(grid, config)
        if on_done is not None:
            on_done(strategy)

    return server


app = build_server_app()
"""The ServerApp that ``flwr run`` loads (``[tool.flwr.app.components] serverapp``)."""
