"""``loraledger dashboard``: a local, read-only web page of the round history, live.

The page polls the server every 2 s; the server reads the chain and the store through
:mod:`aggregator.audit` (the same reads as ``loraledger audit``), so it can run beside
``aggregator run`` in another terminal, on another machine with the deployment record, or
after the task is over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from scripts.console import console
from scripts.options import IpfsOption, NetworkOption, open_cli_session

if TYPE_CHECKING:
    from chain.network import NetworkSpec


def dashboard_command(
    network: str = NetworkOption,
    ipfs: str | None = IpfsOption,
    port: int = typer.Option(8750, "--port", "-p", help="Port to serve on (0: any free port)."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to bind (loopback by default: the page is for this machine).",
    ),
) -> None:
    """Serve the round history (tasks, rounds, verdicts, rewards, loss and reward plots) at
    http://127.0.0.1:8750, refreshed every 2 seconds while rounds run.

    Read-only; Ctrl-C stops it."""
    from aggregator.audit import Auditor
    from dashboard.server import HistoryFeed, Source, make_server
    from loraledger.errors import ConfigError

    session = open_cli_session(network, ipfs)
    ledger, store, chain = session.ledger, session.store, session.ledger.chain
    feed = HistoryFeed(
        Auditor(ledger, session.history, store),
        Source(_network_label(chain.network), chain.chain_id, ledger.address, store.location),
    )
    try:
        server = make_server(feed, host, port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint="pick another --port"
        ) from None
    bound_host, bound_port = server.server_address[:2]
    console.print(
        f"dashboard for {ledger.address} on {chain.network.name}: "
        f"[bold]http://{bound_host}:{bound_port}/[/] (Ctrl-C stops it)",
        highlight=False,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        console.print("dashboard stopped")
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard_command)


def _network_label(network: NetworkSpec) -> str:
    """What the page names as its chain: ``ganache:8545``, ``embedded``, or an RPC URL without
    its credentials, path or query (a provider's API key stays off the page)."""
    from urllib.parse import urlsplit

    if network.url is None:
        return network.name
    url = urlsplit(network.url)
    where = f"{url.hostname}:{url.port}" if url.port else str(url.hostname)
    return f"{network.kind}:{url.port}" if network.is_local else f"{url.scheme}://{where}"
