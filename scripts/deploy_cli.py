"""``loraledger deploy``: deploy LedgerToken and LoRALedger and record where they are."""

from __future__ import annotations

import typer

from chain.deployments import check_replaceable, deploy, record_path, recorded
from chain.network import DEV_ACCOUNTS, dev_account
from loraledger.display import tokens
from scripts.console import console, err_console, report_transaction
from scripts.options import (
    AccountOption,
    NetworkOption,
    open_chain,
    parse_amount,
    signer,
)


def deploy_command(
    network: str = NetworkOption,
    account: str = AccountOption,
    aggregator: str | None = typer.Option(
        None,
        "--aggregator",
        help="Account recorded as new tasks' default aggregator (tasks name their own; there is "
        "no global role): an address or dev:N (default: dev:1 on local chains, else the deployer).",
    ),
    supply: str = typer.Option(
        "1000000000", "--supply", help="LedgerToken minted to the deployer (whole tokens)."
    ),
    dev_tokens: str = typer.Option(
        "1000000",
        "--dev-tokens",
        help="On local chains, tokens sent to each other dev account (0: none).",
    ),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Record a new deployment although the chain's recorded one is still there (it "
        "stays in `loraledger deployments list`).",
    ),
) -> None:
    """Deploy the contracts and record the deployment for this chain id.

    Every other command then finds the contracts by chain id. On the embedded chain the
    deployment lasts as long as this process: use it to check that deploying works.
    """
    chain = open_chain(network)
    deployer = signer(account, chain.network)
    previous = None
    if chain.network.kind != "embedded":
        # before any transaction: a live recorded ledger is replaced only when asked
        previous = recorded(chain.chain_id) if replace else check_replaceable(chain)
    if aggregator is None:
        aggregator_address = (
            dev_account(chain.network, 1).address if chain.network.is_local else deployer.address
        )
    elif aggregator.startswith("dev:"):
        aggregator_address = signer(aggregator, chain.network).address
    else:
        aggregator_address = aggregator
    with console.status(f"deploying to {chain.network.name} (chain id {chain.chain_id})"):
        deployment = deploy(
            chain,
            deployer,
            aggregator=aggregator_address,
            initial_supply=parse_amount(supply),
            replace=True,  # checked above
        )
        per_account = parse_amount(dev_tokens)
        if chain.network.is_local and per_account > 0:
            token = deployment.token_contract(chain)
            transfers: list[int] = []  # one summary line, not a line per dev account
            chain.on_mined = lambda _what, receipt: transfers.append(int(receipt["gasUsed"]))
            for index in range(DEV_ACCOUNTS):
                address = dev_account(chain.network, index).address
                if address != deployer.address:
                    token.transfer(address, per_account, deployer)
            chain.on_mined = report_transaction
            err_console.print(
                f"{len(transfers)} transfers of {tokens(per_account)} to the dev "
                f"accounts, gas {sum(transfers):,} in all",
                style="dim",
                highlight=False,
            )
    console.print(f"LoRALedger  [bold]{deployment.ledger}[/]")
    console.print(f"LedgerToken [bold]{deployment.token}[/]")
    console.print(
        f"aggregator  {deployment.aggregator}   deployer {deployment.deployer}   block "
        f"{deployment.block}"
    )
    if chain.network.kind == "embedded":
        console.print(
            "[yellow]embedded chain:[/] this deployment ends with this process (use --network "
            "ganache to keep it)"
        )
    else:
        console.print(f"recorded in {record_path(chain.chain_id)}")
        if previous is not None:
            console.print(
                f"the earlier deployment (LoRALedger {previous.ledger}) stays in `loraledger "
                f"deployments list --network {chain.network.name}`"
            )


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_command)
