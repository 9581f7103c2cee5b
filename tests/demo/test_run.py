"""The demo's settings: every account it needs is a dev account of the local chain."""

from __future__ import annotations

import pytest

from chain.network import DEV_ACCOUNTS
from demo.run import DemoConfig
from loraledger.errors import ConfigError


def test_the_sponsor_the_aggregator_the_validators_and_every_node_fit_the_dev_accounts() -> None:
    free = DEV_ACCOUNTS - 2 - 3  # after the sponsor, the aggregator and three validators
    assert DemoConfig(nodes=free - 4, malicious=4).validators == 3
    with pytest.raises(ConfigError, match="left after the sponsor, the aggregator and 3 valid"):
        DemoConfig(nodes=free - 4, malicious=5)
    with pytest.raises(ConfigError) as caught:
        DemoConfig(nodes=free - 1, validators=5)  # with three validators they would fit
    assert caught.value.hint == f"use at most {free - 2} nodes in all"
    assert DemoConfig(nodes=free + 2, validators=1).nodes == free + 2


def test_liars_need_two_honest_validators_to_outvote_the_lying_one() -> None:
    with pytest.raises(ConfigError, match="outvoted only by two honest ones") as caught:
        DemoConfig(liars=True, validators=2)
    assert caught.value.hint == "use --validators 3 or more with the lying parties"
    assert DemoConfig(liars=True).validators == 3
    with pytest.raises(ConfigError, match=r"--validators must be in 1\.\.5, got 0"):
        DemoConfig(validators=0)
