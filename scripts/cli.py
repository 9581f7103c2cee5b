"""The ``loraledger`` command: one group per role.

Each group lives in its own module (``scripts/<group>_cli.py``) and is registered here.
"""

from __future__ import annotations

import importlib
import sys

import typer

from loraledger import __version__
from loraledger.errors import LoRALedgerError
from scripts.console import fail, setup_logging

# (module, group name or None for top-level commands, help)
_GROUPS: list[tuple[str, str | None, str]] = [
    ("scripts.chain_cli", "chain", "Start, stop and inspect local chains (Ganache, anvil)."),
    ("scripts.contracts_cli", "contracts", "Compile the Solidity contracts and check artifacts."),
    ("scripts.deploy_cli", None, "Deploy the contracts and record the deployment."),
    ("scripts.task_cli", "task", "Create, fund and inspect training tasks (sponsors)."),
    ("scripts.ipfs_cli", "ipfs", "Content-addressed storage: a local IPFS node and the embedded store."),
    ("scripts.data_cli", "data", "Prepare training data: bundled samples and node shards."),
    ("scripts.node_cli", "node", "Run a training node: join, train, submit, claim."),
    ("scripts.aggregator_cli", "aggregator", "Verify, aggregate, publish and finalize rounds."),
    ("scripts.bench_cli", "bench", "Benchmarks that print ratios against a same-run baseline."),
]

app = typer.Typer(
    name="loraledger",
    help="LoRA Ledger: federated LoRA fine-tuning with on-chain commitments and token rewards.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"loraledger {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-vv: debug)."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    setup_logging(verbose)


def _register() -> None:
    for module_name, group, help_text in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # the group has not landed yet
                continue
            raise
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group, help=help_text)


_register()


def main() -> None:
    """Console entry point: user errors become one line and exit code 1, never a traceback."""
    try:
        app(standalone_mode=False)
    except LoRALedgerError as error:
        raise SystemExit(fail(error).exit_code) from None
    except typer.Exit as exit_:
        raise SystemExit(exit_.exit_code) from None
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise


if __name__ == "__main__":
    main()
