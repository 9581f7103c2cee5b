"""``loraledger adapter``: a task's published global adapter, as a folder plain peft loads.

On chain and in the store a global adapter is one safetensors file that carries its
``adapter_config.json`` in its header (docs/update-format.md), so that one digest covers both.
``export`` fetches it by what the chain recorded, checks it against that digest and writes the
two files ``PeftModel.from_pretrained`` reads; nothing of LoRA Ledger is needed to use them.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from loraledger.update import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    check_adapter_folder,
    unpack_global_adapter,
)
from scripts.console import console
from scripts.options import (
    AdapterFolderOption,
    AdapterRoundOption,
    IpfsOption,
    JsonOption,
    NetworkOption,
    ReplaceAdapterOption,
    TaskArgument,
    TaskOrOption,
    one_task,
    open_cli_session,
)

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Export a task's published global adapter as a folder plain peft loads."""


@app.command("export")
def export_command(
    task: int | None = TaskArgument,
    task_option: int | None = TaskOrOption,
    out: Path = AdapterFolderOption,
    round_: int | None = AdapterRoundOption,
    force: bool = ReplaceAdapterOption,
    network: str = NetworkOption,
    ipfs: str | None = IpfsOption,
    as_json: bool = JsonOption,
) -> None:
    """Fetch the global adapter a round published, check it against the digest the chain
    recorded, and write adapter_config.json + adapter_model.safetensors, which
    `PeftModel.from_pretrained(base_model, OUT)` loads as is."""
    task_id = one_task(task, task_option)
    from aggregator.inputs import load_published_adapter

    targets = check_adapter_folder(out, replace=force)
    session = open_cli_session(network, ipfs)
    published = load_published_adapter(
        session.ledger, session.history, session.store, task_id, round_
    )
    unpack_global_adapter(published.adapter, out)
    meta = published.adapter.metadata
    if as_json:
        body = {
            "task_id": task_id,
            "round": published.round,
            "cid": published.cid,
            "digest": published.adapter.digest,
            "settled": published.settled,
            "base_model": meta.base_model,
            "num_updates": meta.num_updates,
            "peft": meta.peft.model_dump(mode="json"),
            "folder": str(out),
            "files": [str(path) for path in targets],
        }
        console.print_json(json.dumps(body))
        return
    what = (
        "initial adapter" if published.round == 0 else f"global adapter of round {published.round}"
    )
    console.print(
        f"task {task_id}: the {what} ({meta.peft.method}, rank {meta.peft.rank}, "
        f"{meta.num_updates} update(s)), {published.cid}, checked against its on-chain digest",
        highlight=False,
    )
    console.print(
        f"written to {out}/ ({ADAPTER_CONFIG_NAME}, {ADAPTER_WEIGHTS_NAME})", highlight=False
    )
    if not published.settled:
        console.print(
            f"[yellow]note:[/] round {published.round} is still in its challenge window: a "
            "successful challenge voids this result",
            highlight=False,
        )
    console.print(
        "load it with peft: PeftModel.from_pretrained("
        f"AutoModelForCausalLM.from_pretrained({meta.base_model!r}), {str(out)!r})",
        highlight=False,
        soft_wrap=True,
    )
