"""chain.attest computes offline exactly what the contract hashes and checks: the result hash,
the EIP-712 domain and digest, and who signed; a signature the contract refuses recovers to no
one offline either."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import attest, errors
from chain.attest import (
    ZERO_ADDRESS,
    attestation_digest,
    recover_signer,
    result_hash,
    sign_result,
    typed_data,
)
from chain.bindings import Attestation, Finalization
from tests.support.chain import TOKEN, LedgerEnv, reverts

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

results = st.builds(
    Finalization,
    global_cid=st.text(min_size=1, max_size=70),
    global_digest=st.binary(min_size=32, max_size=32),
    report_cid=st.text(min_size=1, max_size=70),
    accepted=st.integers(0, 2**32 - 1),
    rejected=st.integers(0, 2**32 - 1),
    reward_root=st.binary(min_size=32, max_size=32),
    reward_total=st.integers(0, 2**256 - 1),
    slash_root=st.binary(min_size=32, max_size=32),
    scores_bitmap=st.integers(0, 2**32 - 1),
)


def _closed_round(env: LedgerEnv) -> tuple[int, int]:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    round_ = env.open(task_id)
    env.commit(task_id, round_, env.nodes[0])
    env.reveal_all(task_id, round_)
    return task_id, round_


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(result=results, scores=st.binary(min_size=32, max_size=32))
def test_offline_hash_and_digest_equal_the_contracts_views(
    embedded: LedgerEnv, result: Finalization, scores: bytes
) -> None:
    task_id = embedded.create_task(fund=0, bonds=False)
    hashed = embedded.ledger.result_hash(task_id, 1, result)  # round 1 is in epoch 0
    assert result_hash(task_id, 1, 0, result) == hashed
    digest = embedded.ledger.attestation_digest(task_id, 1, hashed, result, scores)
    assert (
        attestation_digest(
            embedded.chain.chain_id, embedded.ledger.address, task_id, 1, hashed, result, scores
        )
        == digest
    )


def test_the_result_hash_follows_the_rounds_epoch(embedded: LedgerEnv) -> None:
    env = embedded
    task_id, round_ = _closed_round(env)
    rewards = {env.nodes[0].address: 10 * TOKEN, env.aggregator.address: 5 * TOKEN}
    result, tree = env.result(task_id, round_, rewards, accepted=1)
    assert tree is not None
    assert env.ledger.result_hash(task_id, round_, result) == result_hash(
        task_id, round_, 0, result
    )
    env.ledger.finalize_round(
        task_id, round_, result, env.sign(task_id, round_, result), env.aggregator
    )
    env.ledger.challenge_reward(
        task_id,
        round_,
        env.aggregator.address,
        5 * TOKEN,
        tree.proof(env.aggregator.address),
        env.nodes[3],
    )
    assert env.ledger.round(task_id, round_).epoch == 1
    assert env.ledger.result_hash(task_id, round_, result) == result_hash(
        task_id, round_, 1, result
    )
    assert result_hash(task_id, round_, 0, result) != result_hash(task_id, round_, 1, result)


def test_the_typed_data_domain_is_the_contracts_eip712_domain(embedded: LedgerEnv) -> None:
    fields, name, version, chain_id, contract, salt, extensions = (
        embedded.ledger.contract.functions.eip712Domain().call()
    )
    data = typed_data(
        embedded.chain.chain_id,
        embedded.ledger.address,
        1,
        1,
        b"\x00" * 32,
        Finalization("g", b"\x01" * 32, "r", 0, 0, b"\x00" * 32, 0),
        b"\x00" * 32,
    )
    assert data["domain"] == {
        "name": name,
        "version": version,
        "chainId": chain_id,
        "verifyingContract": contract,
    }
    assert (name, version, fields, salt, extensions) == (
        attest.DOMAIN_NAME,
        attest.DOMAIN_VERSION,
        b"\x0f",
        b"\x00" * 32,
        [],
    )


def test_a_signature_recovers_its_signer_and_nobody_for_any_other_message(
    embedded: LedgerEnv,
) -> None:
    validator = embedded.validators[0]
    result = Finalization("bafy-g", b"\x01" * 32, "bafy-r", 1, 0, b"\x02" * 32, TOKEN)
    where: dict[str, Any] = dict(
        chain_id=embedded.chain.chain_id,
        verifying_contract=embedded.ledger.address,
        task_id=4,
        round_=2,
        epoch=0,
        result=result,
        scores_digest=b"\x03" * 32,
    )
    signed = sign_result(validator, **where)
    assert signed == Attestation(validator.address, signed.signature)
    assert recover_signer(signed.signature, **where) == validator.address
    elsewhere = [
        {"chain_id": where["chain_id"] + 1},
        {"verifying_contract": embedded.token.address},
        {"task_id": 5},
        {"round_": 3},
        {"epoch": 1},
        {"scores_digest": b"\x00" * 32},
        {"result": Finalization("bafy-g", b"\x01" * 32, "bafy-r", 1, 0, b"\x02" * 32, TOKEN + 1)},
    ]
    for change in elsewhere:
        assert recover_signer(signed.signature, **(where | change)) != validator.address


def test_malformed_and_malleable_signatures_recover_to_nobody_here_and_on_chain(
    embedded: LedgerEnv,
) -> None:
    env = embedded
    task_id, round_ = _closed_round(env)
    result, _ = env.result(task_id, round_, {env.nodes[0].address: TOKEN})
    v0, v1, _ = env.validators
    (good,) = env.sign(task_id, round_, result, v0)
    (honest,) = env.sign(task_id, round_, result, v1)
    r, s, v = (
        honest.signature[:32],
        int.from_bytes(honest.signature[32:64], "big"),
        honest.signature[64],
    )
    malleated = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # same point, high s
    where: dict[str, Any] = dict(
        chain_id=env.chain.chain_id,
        verifying_contract=env.ledger.address,
        task_id=task_id,
        round_=round_,
        epoch=0,
        result=result,
        scores_digest=b"\x00" * 32,
    )
    for signature in (honest.signature[:64], malleated, honest.signature[:64] + b"\x05"):
        assert recover_signer(signature, **where) == ZERO_ADDRESS
        with reverts(
            errors.LedgerInvalidSignature,
            taskId=task_id,
            round=round_,
            validator=v1.address,
            recovered=ZERO_ADDRESS,
        ):
            env.ledger.finalize_round(
                task_id, round_, result, [good, Attestation(v1.address, signature)], env.aggregator
            )
    env.ledger.finalize_round(task_id, round_, result, [good, honest], env.aggregator)
