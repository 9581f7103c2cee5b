"""Publishing a task as its sponsor, on the embedded chain and store with a real (tiny) model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from chain.events import History
from fl_node.model import LoadedModel
from ipfs import EmbeddedConfig, EmbeddedStore
from loraledger.errors import ChainError
from loraledger.update import PeftSpec, parse_global_adapter
from sponsor.task import TaskRoles, create_funded_task, publish_task
from tests.support.chain import TOKEN, LedgerEnv

SPEC = PeftSpec(rank=4, alpha=8.0)


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(EmbeddedConfig(root=tmp_path / "store"))


def test_a_sponsor_publishes_a_funded_task_whose_initial_adapter_is_pinned_and_committed(
    embedded: LedgerEnv, store: EmbeddedStore, tiny: LoadedModel
) -> None:
    env = embedded
    roles = TaskRoles(
        aggregator=env.aggregator.address,
        validators=tuple(v.address for v in env.validators),
        aggregator_bond=5 * TOKEN,
        validator_bond=2 * TOKEN,
        validator_share_bps=1000,
        challenge_window=30,
    )
    task_id, cid = publish_task(
        env.ledger,
        env.token,
        store,
        tiny,
        SPEC,
        env.sponsor,
        reward_per_round=100 * TOKEN,
        min_stake=10 * TOKEN,
        window=600,
        max_rounds=2,
        fund=200 * TOKEN,
        roles=roles,
    )
    task = env.ledger.task(task_id)
    assert History(env.ledger).task_created(task_id).initial_global_cid == cid
    assert task.funded == 200 * TOKEN and cid in store.pins()
    adapter = store.get_bytes(cid)
    assert hashlib.sha256(adapter).digest() == task.global_digest
    assert parse_global_adapter(adapter).metadata.task_id == task_id  # built for this very task
    # the roles the sponsor named, on the terms it set (quorum by default: a strict majority)
    assert task.aggregator == env.aggregator.address
    assert env.ledger.validators(task_id) == roles.validators
    assert task.quorum == roles.effective_quorum == 2
    assert (task.aggregator_bond, task.validator_bond) == (5 * TOKEN, 2 * TOKEN)
    assert (task.validator_share_bps, task.challenge_window) == (1000, 30)


def test_a_task_created_in_between_is_refused_not_left_mismatched(embedded: LedgerEnv) -> None:
    env = embedded
    expected = env.ledger.task_count() + 1
    env.create_task()  # someone else takes the id the adapter was built for
    with pytest.raises(ChainError, match="another task was created meanwhile"):
        create_funded_task(
            env.ledger, env.token, env.task_params(), env.sponsor, fund=0, expected_id=expected
        )
