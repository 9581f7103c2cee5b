"""``loraledger bench ...``: every benchmark prints ratios against a baseline from the same run.

Each area adds its commands in ``scripts/bench_<area>.py`` through ``register(app)``.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True)

_AREAS = ["scripts.bench_gas", "scripts.bench_storage", "scripts.bench_train", "scripts.bench_aggregate", "scripts.bench_round", "scripts.bench_all"]

for _name in _AREAS:
    try:
        importlib.import_module(_name).register(app)
    except ModuleNotFoundError as _exc:
        if _exc.name != _name:
            raise
