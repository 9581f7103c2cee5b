"""The bindings' own encodings: a task's privacy policy packed into the one word
``TaskParams.privacy`` records (ILoRALedger.sol's layout), read back as the same policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.bindings import pack_privacy, unpack_privacy
from loraledger.errors import ConfigError
from loraledger.privacy import ACCOUNTANTS, NO_PRIVACY, TaskPrivacy


def test_no_policy_is_the_zero_word_and_the_fields_sit_where_the_contract_reads_them() -> None:
    assert pack_privacy(NO_PRIVACY) == 0
    assert unpack_privacy(0) == NO_PRIVACY
    word = pack_privacy(TaskPrivacy("node", 1.5, 0.25, 8.0, 1e-5, "prv", 7))
    assert word & 0xFF == 2 and word >> 8 & 0xFF == 1 and word >> 16 & 0xFFFFFFFF == 7
    mask = (1 << 52) - 1
    assert (word >> 48 & mask, word >> 100 & mask, word >> 152 & mask) == (
        250_000,
        1_500_000,
        8_000_000,
    )
    assert word >> 204 == 10**10  # 1e-5 in units of 1e-15


@given(
    mode=st.sampled_from(["example", "node"]),
    accountant=st.sampled_from(ACCOUNTANTS),
    noise=st.integers(1, 10**9),
    clip=st.integers(1, 10**9),
    target=st.integers(1, 10**9),
    delta=st.integers(1, 10**15 - 1),
    nodes=st.integers(1, 2**32 - 1),
)
def test_a_policy_at_the_chains_fixed_point_survives_the_round_trip(
    mode: str, accountant: str, noise: int, clip: int, target: int, delta: int, nodes: int
) -> None:
    policy = TaskPrivacy(
        mode="node" if mode == "node" else "example",
        noise_multiplier=noise / 1e6,
        clip_norm=clip / 1e6,
        target_epsilon=target / 1e6,
        delta=delta / 1e15,
        accountant="prv" if accountant == "prv" else "rdp",
        min_nodes=nodes if mode == "node" else 0,
    )
    assert unpack_privacy(pack_privacy(policy)) == policy


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (TaskPrivacy("example", 1e-9, 1.0, 3.0, 1e-5), "noise multiplier 1e-09"),
        (TaskPrivacy("example", 1.0, 1.0, 1e10, 1e-5), "target epsilon 1e\\+10"),
        (TaskPrivacy("example", 1.0, 1.0, 3.0, 1e-17), "delta 1e-17"),
        (TaskPrivacy("node", 1.0, 1.0, 3.0, 1e-5, min_nodes=2**32 + 5), "minimum of 4294967301"),
    ],
)
def test_a_value_the_chain_cannot_record_is_refused_before_sending(
    policy: TaskPrivacy, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        pack_privacy(policy)


def test_an_unknown_mode_or_accountant_in_a_word_is_one_error() -> None:
    with pytest.raises(ConfigError, match="unknown privacy policy word"):
        unpack_privacy(3)
    with pytest.raises(ConfigError, match="unknown privacy policy word"):
        unpack_privacy(1 | 2 << 8)
