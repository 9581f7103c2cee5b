"""The ``loraledger`` command: one group per role.

Each group lives in its own module (``scripts/<group>_cli.py``) and is registered here. A group
is imported only when invoked; one whose module fails to import is an error naming the module
and the import error, never a group quietly missing from the command.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
from typing import Any

import click
import typer

from loraledger import __version__
from loraledger.display import set_exact_amounts
from loraledger.errors import LoRALedgerError
from scripts.config import apply_config, find_config, load_config
from scripts.console import fail, setup_logging
from scripts.hints import pasteable

logger = logging.getLogger(__name__)


class CommandGroupUnavailable(LoRALedgerError):
    """A command group's module failed to import: the installation is broken or incomplete."""


# (module, group name or None for top-level commands, help)
_GROUPS: list[tuple[str, str | None, str]] = [
    ("scripts.chain_cli", "chain", "Start, stop and inspect local chains (Ganache, anvil)."),
    ("scripts.contracts_cli", "contracts", "Compile the Solidity contracts and check artifacts."),
    ("scripts.deploy_cli", None, "Deploy the contracts and record the deployment."),
    (
        "scripts.account_cli",
        "account",
        "Encrypted keystores for --account keystore:PATH: new, import, show.",
    ),
    (
        "scripts.deployments_cli",
        "deployments",
        "The deployments recorded for a chain: list them, make an earlier one current.",
    ),
    ("scripts.task_cli", "task", "Create, fund, inspect and cancel training tasks (sponsors)."),
    (
        "scripts.ipfs_cli",
        "ipfs",
        "Content-addressed storage: a local IPFS node and the embedded store.",
    ),
    ("scripts.data_cli", "data", "Prepare training data: bundled samples and node shards."),
    ("scripts.node_cli", "node", "Run a training node: join, train, submit, claim, leave."),
    (
        "scripts.aggregator_cli",
        "aggregator",
        "Open rounds, aggregate, propose results for the validators to sign, settle.",
    ),
    (
        "scripts.validator_cli",
        "validator",
        "Score rounds on private held-out data and sign the results that hold.",
    ),
    (
        "scripts.privacy_cli",
        "privacy",
        "Plan differential privacy: the epsilon a schedule spends, the noise a target needs.",
    ),
    ("scripts.round_cli", "round", "Abandon a round nobody finalized in time (anyone may)."),
    (
        "scripts.challenge_cli",
        None,
        "Challenge a finalized round that pays an account that took no part (anyone may).",
    ),
    (
        "scripts.audit_cli",
        "audit",
        "Rebuild round history from the chain and re-check every round.",
    ),
    (
        "scripts.adapter_cli",
        "adapter",
        "Export a round's global adapter as a folder plain peft loads.",
    ),
    (
        "scripts.dashboard_cli",
        None,
        "Serve a local, read-only web page of the round history, live.",
    ),
    (
        "scripts.demo_cli",
        None,
        "The whole story: deploy, train N nodes for R rounds, aggregate, claim, audit.",
    ),
    ("scripts.bench_cli", "bench", "Benchmarks that print ratios against a same-run baseline."),
    (
        "scripts.chaos_cli",
        None,
        "A seeded fault campaign on real processes: kills, restarts, reorgs, a flaky RPC.",
    ),
    (
        "scripts.experiment_cli",
        "experiment",
        "Research experiments: tables and plots under docs/results/.",
    ),
    (
        "scripts.flower_cli",
        "flower",
        "Federations on Flower: simulate many nodes, or run SuperLink and SuperNodes.",
    ),
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
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        metavar="",  # a counted flag (-v, -vv), not a number to pass
        show_default=False,
        help="More log output: -v info, -vv debug, -vvv with the HTTP and RPC libraries' too.",
    ),
    exact_amounts: bool = typer.Option(
        False,
        "--exact-amounts",
        envvar="LORALEDGER_EXACT_AMOUNTS",
        help="Show token amounts with every digit (default: cut to 6 decimals, marked '…'); "
        "--json always gives base units.",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    setup_logging(verbose)
    set_exact_amounts(exact_amounts)


class _LazyCommand(click.Command):
    """A command group imported only when it is invoked, so `--help` and each command start fast
    (the training groups import torch; the chain groups do not need to)."""

    def __init__(self, name: str, module_name: str, top_level: bool, help_text: str) -> None:
        super().__init__(name, help=help_text, short_help=help_text)
        self._module_name = module_name
        self._top_level = top_level

    def load(self) -> click.Command:
        try:
            module = importlib.import_module(self._module_name)
        except ImportError as error:
            logger.debug("importing %s failed", self._module_name, exc_info=True)
            raise CommandGroupUnavailable(
                f"the `{self.name}` command cannot be loaded: importing {self._module_name} "
                f"failed: {error}",
                hint="reinstall the package (`pip install -e .`); run with -vv for the traceback",
            ) from error
        if self._top_level:
            holder = typer.Typer()
            module.register(holder)
            command = typer.main.get_command(holder)
        else:
            command = typer.main.get_command(module.app)
            command.help = command.help or self.help
        command.name = self.name
        _reflow_help(command)
        # each group is its own Typer app; completion is offered once, not per group
        command.params = [
            p for p in command.params if p.name not in ("install_completion", "show_completion")
        ]
        return command

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self.load().make_context(info_name, args, parent=parent, **extra)


def reflow(text: str) -> str:
    """A docstring as paragraphs the help wraps to the terminal: the lines of a paragraph are
    joined (typer's rich help keeps each source line break, so an 80-column terminal showed
    ragged half lines); blank lines, and paragraphs that are lists or indented blocks, stay."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    shaped = []
    for paragraph in paragraphs:
        lines = paragraph.splitlines()
        if any(_LISTED.match(line) or line.startswith((" ", "\b")) for line in lines):
            shaped.append(paragraph)
        else:
            shaped.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(shaped)


_LISTED = re.compile(r"\s*([-*•]|\d+[.)])\s")


def _reflow_help(command: click.Command) -> None:
    """Reflow the help of ``command`` and of every command under it."""
    if command.help:
        command.help = reflow(command.help)
    for sub in getattr(command, "commands", {}).values():
        _reflow_help(sub)


def build_command() -> click.Group:
    """The root click group with every command group attached lazily."""
    root = typer.main.get_command(app)
    assert isinstance(root, click.Group)
    for module_name, group, help_text in _GROUPS:
        name = group or module_name.removeprefix("scripts.").removesuffix("_cli")
        root.add_command(_LazyCommand(name, module_name, group is None, help_text), name)
    return root


def main() -> None:
    """Console entry point: user errors become one line and exit code 1, never a traceback."""
    command = build_command()
    argv = sys.argv[1:]
    try:
        path = find_config()
        if path is not None:  # the file's network, store and accounts, unless said otherwise
            argv = apply_config(load_config(path), command, argv)
            logger.debug("config %s: loraledger %s", path, " ".join(argv))
        code = command.main(args=argv, standalone_mode=False, prog_name="loraledger")
    except LoRALedgerError as error:
        try:
            error.hint = pasteable(error.hint, command, argv)
        except Exception:  # a hint is help, never a second failure
            logger.debug("could not complete the hint %r", error.hint, exc_info=True)
        raise SystemExit(fail(error).exit_code) from None
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        raise SystemExit(1) from None
    except click.ClickException as exc:  # usage errors come through here in non-standalone mode
        exc.show()
        raise SystemExit(exc.exit_code) from None
    # non-standalone click returns typer.Exit's code instead of exiting
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
