"""``loraledger ipfs ...``: a local IPFS node, and putting/getting content by CID."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.table import Table

from ipfs import (
    DEFAULT_MAX_SIZE,
    ContentStore,
    EmbeddedConfig,
    EmbeddedStore,
    compute_cid,
    copy_content,
    open_store,
)
from ipfs.daemon import DaemonConfig, install, start, status, stop
from loraledger.errors import ConfigError
from loraledger.paths import home
from scripts.console import console
from scripts.options import IpfsOption

app = typer.Typer(no_args_is_help=True)

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``"64MB"``, ``"2G"``, ``"1048576"`` -> bytes (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"not a size: {text!r} (use e.g. 67108864, 64M or 2G)")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _UNITS[unit]


def _store(spec: str | None) -> ContentStore:
    return open_store(spec)


def _daemon_config(port: int = 5001) -> DaemonConfig:
    return DaemonConfig(state_dir=home() / "ipfs", api_port=port)


@app.command("install")
def install_cmd() -> None:
    """Install the local IPFS node (js-ipfs with Node 22) with `npm ci` in ipfs/daemon."""
    with console.status("npm ci in ipfs/daemon (a few minutes the first time)..."):
        install()
    console.print("[green]installed[/] the IPFS daemon; start it with `loraledger ipfs up`")


@app.command("up")
def up(
    port: int = typer.Option(5001, "--port", help="Port of the RPC API on 127.0.0.1."),
) -> None:
    """Start a local, offline IPFS daemon (idempotent); returns once its API answers."""
    config = _daemon_config(port)
    with console.status("starting the IPFS daemon..."):
        found = start(config)
    console.print(
        f"js-ipfs node ready at [bold]{found.api_url}[/] (pid {found.pid}; its RPC API reports "
        f"version {found.version}); use it with --ipfs {found.api_url}",
        highlight=False,
    )


@app.command("down")
def down() -> None:
    """Stop the local IPFS daemon and everything it started."""
    if stop(_daemon_config()):
        console.print("IPFS daemon stopped")
    else:
        console.print("no IPFS daemon was running")


@app.command("status")
def status_cmd() -> None:
    """Show the local daemon and the embedded store."""
    found = status(_daemon_config())
    table = Table(title="Content-addressed storage", show_header=True)
    table.add_column("store")
    table.add_column("state")
    table.add_column("where")
    if found.running:
        table.add_row(
            "local IPFS daemon", f"running {found.version} (pid {found.pid})", str(found.api_url)
        )
    else:
        table.add_row("local IPFS daemon", "stopped", str(found.repo_dir))
    store_dir = home() / "store"
    if (store_dir / "STORE.json").is_file():
        count = len(EmbeddedStore(EmbeddedConfig(root=store_dir)).cids())
        table.add_row("embedded", f"{count} objects", str(store_dir))
    else:
        table.add_row("embedded", "empty (created on first put)", str(store_dir))
    console.print(table)


@app.command("put")
def put(
    path: Path = typer.Argument(..., help="File to store."),
    ipfs: str | None = IpfsOption,
) -> None:
    """Store a file (streamed) and print its CID."""
    if not path.is_file():
        raise ConfigError(f"{path} is not a file")
    with _store(ipfs) as store, console.status(f"storing {path.name}..."):
        cid = store.put_file(path)
    console.print(cid, highlight=False, soft_wrap=True)


@app.command("get")
def get(
    cid: str = typer.Argument(..., help="CID to fetch."),
    dest: Path = typer.Argument(..., help="File to write (written whole or not at all)."),
    ipfs: str | None = IpfsOption,
    max_size: str = typer.Option(
        str(DEFAULT_MAX_SIZE), "--max-size", help="Refuse larger content (e.g. 512M)."
    ),
) -> None:
    """Fetch content by CID into a file, verified against the CID."""
    limit = parse_size(max_size)
    with _store(ipfs) as store, console.status(f"fetching {cid}..."):
        size = store.get_file(cid, dest, max_size=limit)
    console.print(
        f"wrote {size} bytes to {dest} (verified against {cid})", highlight=False, soft_wrap=True
    )


@app.command("cid")
def cid_cmd(path: Path = typer.Argument(..., help="File whose CID to compute.")) -> None:
    """Compute a file's CID locally (same import parameters as every node), storing nothing."""
    if not path.is_file():
        raise ConfigError(f"{path} is not a file")
    console.print(compute_cid(path), highlight=False, soft_wrap=True)


@app.command("pin")
def pin(
    cid: str = typer.Argument(...),
    ipfs: str | None = IpfsOption,
) -> None:
    """Pin content so garbage collection keeps it."""
    with _store(ipfs) as store:
        store.pin(cid)
    console.print(f"pinned {cid}", highlight=False)


@app.command("has")
def has(
    cid: str = typer.Argument(...),
    ipfs: str | None = IpfsOption,
) -> None:
    """Say whether the store holds a CID (exit code 0 if it does, 1 if not)."""
    with _store(ipfs) as store:
        present = store.has(cid)
    console.print(f"{cid}: {'present' if present else 'absent'}", highlight=False)
    if not present:
        raise typer.Exit(1)


@app.command("push")
def push(
    cids: list[str] = typer.Argument(
        None, help="CIDs to copy (default: every pinned CID with --pinned)."
    ),
    to: str = typer.Option(..., "--to", help="Target store, e.g. http://127.0.0.1:5001."),
    source: str | None = typer.Option(None, "--from", help="Source store (default: embedded)."),
    pinned: bool = typer.Option(
        False, "--pinned", help="Copy every CID pinned in the embedded source."
    ),
) -> None:
    """Copy content between stores (e.g. embedded -> a Kubo node); CIDs are checked unchanged."""
    with _store(source) as src, _store(to) as dst:
        wanted = list(cids or [])
        if pinned:
            if not isinstance(src, EmbeddedStore):
                raise ConfigError(
                    "--pinned lists pins of an embedded store; give CIDs for other sources"
                )
            wanted += [c for c in src.pins() if c not in wanted]
        if not wanted:
            raise ConfigError("nothing to copy", hint="give CIDs, or --pinned")
        table = Table(title=f"{src.location} -> {dst.location}")
        table.add_column("CID")
        table.add_column("result")
        scratch = home() / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        with console.status("copying...") as spinner:
            for number, cid in enumerate(wanted, 1):
                spinner.update(f"copying {number}/{len(wanted)}: {cid}")
                copy_content(src, dst, cid, scratch=scratch)
                table.add_row(cid, "copied, same CID, pinned")
    console.print(table)
