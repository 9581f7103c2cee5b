"""``loraledger contracts``: compile the Solidity sources offline and check the artifacts."""

from __future__ import annotations

import typer

from chain import compiler
from scripts.console import console, err_console

app = typer.Typer(no_args_is_help=True)


@app.command()
def build() -> None:
    """Compile contracts/ with solc 0.8.37 (npm, offline) and write chain/artifacts/."""
    with console.status("compiling with solc " + compiler.SOLC_VERSION):
        artifacts = compiler.compile_contracts()
    for path in compiler.write_artifacts(artifacts):
        console.print(f"wrote {path}")


@app.command()
def check() -> None:
    """Recompile and fail if the committed artifacts differ from the sources."""
    with console.status("compiling with solc " + compiler.SOLC_VERSION):
        drift = compiler.check_artifacts()
    if drift:
        for line in drift:
            err_console.print(f"[red]drift:[/] {line}")
        err_console.print("hint: run `loraledger contracts build` and commit chain/artifacts/")
        raise typer.Exit(1)
    console.print("artifacts match a fresh compile of contracts/")
