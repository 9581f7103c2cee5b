"""The real ``loraledger`` entry point, run in-process as a user would run it."""

from __future__ import annotations

import sys

import pytest

from scripts.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``loraledger ARGS`` through :func:`scripts.cli.main`; return exit code, stdout,
    stderr."""
    argv = sys.argv
    sys.argv = ["loraledger", *args]
    try:
        main()
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err
