"""``loraledger contracts``: compile the Solidity sources offline and check the artifacts."""

from __future__ import annotations

import typer

from chain import compiler, errorgen
from scripts.console import console, err_console

app = typer.Typer(no_args_is_help=True)


@app.command()
def build() -> None:
    """Compile contracts/ with solc 0.8.37 (npm, offline), write chain/artifacts/ and the
    exception classes of their custom errors (chain/errors.py)."""
    with console.status("compiling with solc " + compiler.SOLC_VERSION):
        artifacts = compiler.compile_contracts()
    for path in compiler.write_artifacts(artifacts):
        console.print(f"wrote {path}")
    path = errorgen.write(artifact.abi for _, artifact in sorted(artifacts.items()))
    console.print(f"wrote the error classes in {path}")


@app.command()
def check() -> None:
    """Recompile and fail if the committed artifacts (or the error classes generated from
    them) differ from the sources."""
    with console.status("compiling with solc " + compiler.SOLC_VERSION):
        drift = compiler.check_artifacts() + errorgen.check()
    if drift:
        for line in drift:
            err_console.print(f"[red]drift:[/] {line}")
        err_console.print(
            "hint: run `loraledger contracts build` and commit chain/artifacts/ and chain/errors.py"
        )
        raise typer.Exit(1)
    console.print("artifacts and error classes match a fresh compile of contracts/")
