"""The ``loraledger`` command and operator scripts: the top layer, thin entry points over the
product packages (flower_app, bench, experiments, dashboard, demo, sponsor, fl_node, aggregator,
ipfs, chain); nothing imports it."""

__all__ = [
    "aggregator_cli",
    "audit_cli",
    "bench_cli",
    "brownie_deploy",
    "chain_cli",
    "cli",
    "console",
    "contracts_cli",
    "dashboard_cli",
    "data_cli",
    "demo_cli",
    "deploy_cli",
    "experiment_cli",
    "flower_cli",
    "ipfs_cli",
    "node_cli",
    "options",
    "task_cli",
]  # the public modules
