"""The software versions every artifact records (updates, global adapters, round reports)."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

__all__ = ["RECORDED", "software_versions"]

RECORDED = ("loraledger", "torch", "transformers", "peft", "safetensors")
"""What an artifact records: the packages that change the numbers in it, or its bytes."""


def software_versions(packages: Iterable[str] = RECORDED) -> dict[str, str]:
    """``{package: version}`` of the installed ``packages`` (``"unknown"`` when not installed)."""
    out: dict[str, str] = {}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out
