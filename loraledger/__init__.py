"""LoRA Ledger core: what every other package shares: errors, paths, the update and report
formats, low-rank maths, software versions.

Nothing here imports the chain, storage, training or aggregation packages: imports point one
way, ``scripts -> ... -> fl_node / aggregator -> chain -> ipfs -> loraledger`` (README).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("loraledger")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
