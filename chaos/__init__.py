"""Fault campaigns on real processes: ``loraledger chaos`` (docs/operating.md).

A campaign starts a real chain (Ganache or anvil), a store (the embedded one or the js-ipfs
daemon), ``aggregator run`` and one ``node run`` per node as separate processes, and injects
faults at seeded random moments: ``kill -9`` of the aggregator or a node, the IPFS daemon or the
chain process killed and restarted, chain reorganisations (anvil), and a JSON-RPC proxy that
drops, resets, duplicates and delays requests. It then checks what must hold and writes a
report: every round finalized once, no update lost, no double payment, the same results and
rewards as an uninterrupted run with the same inputs, and the audit passing.
"""

from chaos.campaign import FAULT_KINDS, CampaignConfig, CampaignResult, run_campaign

__all__ = ["FAULT_KINDS", "CampaignConfig", "CampaignResult", "run_campaign"]
