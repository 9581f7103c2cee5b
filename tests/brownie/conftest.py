"""Fixtures for the brownie suite: it runs only under `brownie test` (make brownie-test), in
.venv-brownie; the main pytest suite skips this folder.

Accounts are the local chain's unlocked dev accounts, plus three validators with keys of their
own (they sign results with EIP-712). Module-scoped fixtures deploy once per module;
`fn_isolation` reverts the chain to that state after every test.
"""

import pytest
from eth_utils import keccak

INITIAL_SUPPLY = 10**24


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    """Run every test in its own chain snapshot."""


@pytest.fixture(scope="module")
def admin(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def aggregator(accounts):
    return accounts[1]


@pytest.fixture(scope="module")
def sponsor(accounts):
    return accounts[2]


@pytest.fixture(scope="module")
def node_a(accounts):
    return accounts[3]


@pytest.fixture(scope="module")
def node_b(accounts):
    return accounts[4]


@pytest.fixture(scope="module")
def outsider(accounts):
    return accounts[5]


@pytest.fixture(scope="module")
def validators(accounts, admin):
    """Three validators whose private keys the tests hold (to sign results), with gas money."""
    added = []
    for i in range(3):
        account = accounts.add(keccak(text=f"loraledger-brownie-validator-{i}").hex())
        admin.transfer(account, 10**18)
        added.append(account)
    return added


@pytest.fixture(scope="module")
def token(LedgerToken, admin):
    """LedgerToken with the whole initial supply held by `admin`."""
    return LedgerToken.deploy(admin, INITIAL_SUPPLY, {"from": admin})


@pytest.fixture(scope="module")
def ledger(LoRALedger, admin):
    """LoRALedger: no constructor argument, no global role (tasks name their own)."""
    return LoRALedger.deploy({"from": admin})


def pytest_configure(config):
    # brownie's own isolation fixtures call the deprecated rpc.* helpers
    config.addinivalue_line(
        "filterwarnings", r"ignore:rpc\..* should not be called directly:FutureWarning"
    )
