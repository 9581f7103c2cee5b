"""Brownie deploy script: LedgerToken and LoRALedger on a local chain, plus a demo task.

Run it with brownie from its own venv (it imports `brownie`, which the main venv lacks):

    make brownie-deploy        # brownie run scripts/brownie_deploy.py --network ganache-cli

accounts[0] deploys both contracts and sponsors the demo task; accounts[1] is the demo task's
aggregator and accounts[2..4] its validators (quorum 2); LoRALedger has no global role. The
main project's `loraledger deploy` is the supported way to deploy for the CLI; this script is
the brownie counterpart.
"""

from brownie import LedgerToken, LoRALedger, accounts
from eth_utils import keccak

INITIAL_SUPPLY = 1_000_000 * 10**18
DEMO_FUNDING = 10_000 * 10**18
DEMO_TASK = {
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "initial_cid": "bafkreidemoinitialglobaladapter",
    "initial_digest": keccak(text="demo initial global adapter"),
    "reward_per_round": 1_000 * 10**18,
    "min_stake": 10 * 10**18,
    "submission_window": 600,
    "reveal_window": 600,
    "max_examples": 100_000,
    "max_rounds": 3,
    "quorum": 2,
}


def main():
    admin, aggregator = accounts[0], accounts[1]
    token = LedgerToken.deploy(admin, INITIAL_SUPPLY, {"from": admin})
    validators = accounts[2:5]
    ledger = LoRALedger.deploy({"from": admin})

    params = (
        keccak(text=DEMO_TASK["base_model"]),
        DEMO_TASK["initial_cid"],
        DEMO_TASK["initial_digest"],
        token.address,
        DEMO_TASK["reward_per_round"],
        DEMO_TASK["min_stake"],
        DEMO_TASK["submission_window"],
        DEMO_TASK["reveal_window"],
        DEMO_TASK["max_examples"],
        DEMO_TASK["max_rounds"],
        aggregator.address,
        [v.address for v in validators],
        DEMO_TASK["quorum"],
        0,  # aggregatorBond
        0,  # validatorBond
        0,  # validatorShareBps
        600,  # challengeWindow
        600,  # slashWindow
        3600,  # gracePeriod
    )
    task_id = ledger.createTask(params, {"from": admin}).return_value
    token.approve(ledger, DEMO_FUNDING, {"from": admin})
    ledger.fundTask(task_id, DEMO_FUNDING, {"from": admin})

    print(f"LedgerToken  {token.address}")
    print(f"LoRALedger   {ledger.address}")
    print(f"aggregator   {aggregator.address} (of the demo task)")
    print(f"validators   {', '.join(str(v) for v in ledger.validatorsOf(task_id))}")
    print(f"demo task    {task_id} (funded {DEMO_FUNDING // 10**18} LLT)")
    return token, ledger, task_id
