"""Generates the exception classes of ``chain/errors.py`` from the contracts' ABIs.

Each custom error of the shipped artifacts becomes one class, declared statically (so mypy and
readers see every class and its typed attributes) between the ``BEGIN GENERATED`` and
``END GENERATED`` lines of ``chain/errors.py``. ``loraledger contracts build`` rewrites that
block after writing the artifacts; ``loraledger contracts check`` and ``tests/chain`` fail when
it disagrees with the committed ABIs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chain.compiler import ARTIFACTS_DIR, DEPLOYABLE, load_artifact
from chain.errors import abi_type, snake_case
from loraledger.errors import ChainError

ERRORS_MODULE = Path(__file__).resolve().parent / "errors.py"
BEGIN = (
    "# ---- BEGIN GENERATED from the ABIs in chain/artifacts by `loraledger contracts build`; "
    "do not edit ----"
)
END = "# ---- END GENERATED ----"

#: Hand-written bases (in chain/errors.py) that add behaviour to a generated error class.
BASES = {"LedgerUnexpectedRoundState": "RoundStateRevert"}
#: Solidity enums that errors carry, and their Python mirrors (in chain/errors.py's imports).
ENUMS = {"RoundState": "RoundState"}
#: Attributes every ContractRevert has; an error argument may not shadow them.
_RESERVED = {"name", "args", "args_by_name", "message", "hint", "signature", "selector", "expected"}


def _solidity_type(item: dict[str, Any]) -> str:
    internal = str(item.get("internalType", ""))
    return internal.rsplit(".", 1)[-1] if internal.startswith("enum ") else abi_type(item)


def _python_type(item: dict[str, Any]) -> str:
    internal = str(item.get("internalType", ""))
    if internal.startswith("enum "):
        enum = internal.rsplit(".", 1)[-1]
        if enum not in ENUMS:
            raise ChainError(
                f"the ABI uses the enum {internal}, "
                "which has no Python mirror in chain.errorgen.ENUMS"
            )
        return ENUMS[enum]
    typ = str(item["type"])
    if typ == "address":
        return "ChecksumAddress"
    if typ == "bool":
        return "bool"
    if typ == "string":
        return "str"
    if typ.startswith("bytes"):
        return "bytes"
    if re.fullmatch(r"u?int\d*", typ):
        return "int"
    return "Any"


def _tuple(items: list[str]) -> str:
    """A tuple of strings as ruff formats it: ``()``, ``("a",)``, ``("a", "b")``."""
    quoted = [f'"{item}"' for item in items]
    return f"({quoted[0]},)" if len(quoted) == 1 else f"({', '.join(quoted)})"


def errors_of(abis: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every custom error of ``abis`` once, sorted by name; two errors of one name must agree."""
    seen: dict[str, dict[str, Any]] = {}
    for abi in abis:
        for item in abi:
            if item.get("type") != "error":
                continue
            known = seen.setdefault(item["name"], item)
            if [abi_type(i) for i in known["inputs"]] != [abi_type(i) for i in item["inputs"]]:
                raise ChainError(
                    f"two ABIs declare the error {item['name']} with different arguments"
                )
    return [seen[name] for name in sorted(seen)]


def render(abis: Iterable[list[dict[str, Any]]]) -> str:
    """The generated block (markers included) for the custom errors of ``abis``."""
    lines = [BEGIN, "# fmt: off  (generated: kept as the generator writes it)", ""]
    names = []
    for item in errors_of(abis):
        name = str(item["name"])
        names.append(name)
        inputs = item["inputs"]
        fields = [str(i["name"]) for i in inputs]
        clash = _RESERVED & {snake_case(f) for f in fields}
        if clash:
            raise ChainError(
                f"error {name} has an argument named like a ContractRevert attribute: "
                f"{sorted(clash)}"
            )
        solidity = ", ".join(f"{_solidity_type(i)} {i['name']}" for i in inputs)
        lines += [
            "",
            f"class {name}({BASES.get(name, 'ContractRevert')}):",
            f'    """``{name}({solidity})``"""',
            "",
        ]
        lines.append(f"    FIELDS = {_tuple(fields)}")
        lines.append(f"    TYPES = {_tuple([abi_type(i) for i in inputs])}")
        enums = {
            str(i["name"]): _python_type(i)
            for i in inputs
            if str(i.get("internalType", "")).startswith("enum ")
        }
        if enums:
            lines.append("    ENUMS = {" + ", ".join(f'"{f}": {t}' for f, t in enums.items()) + "}")
        for i in inputs:
            lines.append(f"    {snake_case(str(i['name']))}: {_python_type(i)}")
        lines.append("")
    lines += [
        "",
        "#: Every generated class by its signature, e.g. ``LedgerUnknownTask(uint256)``.",
        "CONTRACT_ERRORS: dict[str, type[ContractRevert]] = {",
        "    cls.signature(): cls",
        "    for cls in (",
        *(f"        {name}," for name in names),
        "    )",
        "}",
        "# fmt: on",
        END,
    ]
    return "\n".join(lines) + "\n"


def shipped_abis(artifacts_dir: Path = ARTIFACTS_DIR) -> list[list[dict[str, Any]]]:
    """The ABIs of the committed artifacts."""
    return [load_artifact(name, artifacts_dir).abi for name in DEPLOYABLE]


def rewrite(source: str, abis: Iterable[list[dict[str, Any]]]) -> str:
    """``source`` (chain/errors.py) with its generated block rendered anew from ``abis``."""
    start, end = source.find(BEGIN), source.find(END)
    if start < 0 or end < start:
        raise ChainError(f"no generated block ({BEGIN!r} ... {END!r}) in the errors module")
    return source[:start] + render(abis) + source[end + len(END) + 1 :]


def write(abis: Iterable[list[dict[str, Any]]], path: Path = ERRORS_MODULE) -> Path:
    """Rewrite the generated block of ``path`` from ``abis``; returns ``path``."""
    path.write_text(rewrite(path.read_text(), abis))
    return path


def check(path: Path = ERRORS_MODULE, artifacts_dir: Path = ARTIFACTS_DIR) -> list[str]:
    """Drift between the generated classes and the committed ABIs (empty: in sync)."""
    source = path.read_text()
    if rewrite(source, shipped_abis(artifacts_dir)) != source:
        return [f"{path.name}: its error classes differ from the ABIs in {artifacts_dir.name}/"]
    return []
