"""The README's layout rule: imports point one way, and no product package imports ``scripts``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# lower layers never import higher ones; within a layer only the edges listed below
LAYERS = {
    "loraledger": 0,
    "chain": 1,
    "ipfs": 1,
    "fl_node": 2,
    "aggregator": 2,
    "sponsor": 2,
    "flower_app": 3,
    "bench": 3,
    "experiments": 3,
    "dashboard": 3,
    "demo": 3,
    "chaos": 3,
    "scripts": 4,
}
SAME_LAYER = {
    ("chain", "ipfs"),  # chain.session opens a participant's store; ipfs never imports chain
    ("sponsor", "fl_node"),  # the initial adapter is built with the node's model code
    ("bench", "flower_app"),  # `bench all` times Flower rounds
    ("experiments", "demo"),  # the incentives experiment runs the whole demo per attack
    ("bench", "demo"),  # the contribution-scoring benchmark times demo rounds
}


def _imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path``, function-level ones included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_imports_point_one_way_and_nothing_imports_scripts() -> None:
    wrong = []
    for package, layer in LAYERS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            for name in _imported_packages(path) & LAYERS.keys() - {package}:
                if LAYERS[name] > layer or (
                    LAYERS[name] == layer and (package, name) not in SAME_LAYER
                ):
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []
