"""Validator attestations, offline: the result hash and the EIP-712 signature of a result.

The contract hashes a round's result (``resultHashOf``) and checks each validator's signature
of it (``attestationDigest``, OpenZeppelin's ``EIP712`` and ``ECDSA``); this module computes the
same values without a chain, so a validator signs on its own machine and an audit re-checks
every signature from the event logs. Tests prove both sides agree.

A validator signs, in the domain ``LoRALedger``/``3`` of one chain id and contract::

    RoundResult(uint256 taskId,uint32 round,bytes32 resultHash,bytes32 globalDigest,
                bytes32 reportCidHash,bytes32 rewardRoot,bytes32 scoresDigest)

where ``scoresDigest`` is the digest of the score sheet it posted for the round (zero if none)
and ``resultHash`` binds the round's epoch (:func:`result_hash`), so a signature never carries
over to another task, round, epoch, contract or chain.
"""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.bindings import Attestation, Finalization

DOMAIN_NAME = "LoRALedger"
DOMAIN_VERSION = "3"
PRIMARY_TYPE = "RoundResult"
ROUND_RESULT_FIELDS = (
    ("taskId", "uint256"),
    ("round", "uint32"),
    ("resultHash", "bytes32"),
    ("globalDigest", "bytes32"),
    ("reportCidHash", "bytes32"),
    ("rewardRoot", "bytes32"),
    ("scoresDigest", "bytes32"),
)
_RESULT_HASH_TYPES = (
    "uint256",  # taskId
    "uint32",  # round
    "uint32",  # epoch
    "bytes32",  # globalDigest
    "bytes32",  # keccak256(globalCid)
    "bytes32",  # keccak256(reportCid)
    "uint32",  # accepted
    "uint32",  # rejected
    "bytes32",  # rewardRoot
    "uint256",  # rewardTotal
    "bytes32",  # slashRoot
    "uint32",  # scoresBitmap
)


def result_hash(task_id: int, round_: int, epoch: int, result: Finalization) -> bytes:
    """What the contract's ``resultHashOf`` gives for ``result`` in ``epoch`` of the round."""
    values = (
        task_id,
        round_,
        epoch,
        result.global_digest,
        keccak(text=result.global_cid),
        keccak(text=result.report_cid),
        result.accepted,
        result.rejected,
        result.reward_root,
        result.reward_total,
        result.slash_root,
        result.scores_bitmap,
    )
    return keccak(encode(_RESULT_HASH_TYPES, values))


def typed_data(
    chain_id: int,
    verifying_contract: str,
    task_id: int,
    round_: int,
    result_hash: bytes,
    result: Finalization,
    scores_digest: bytes,
) -> dict[str, Any]:
    """The EIP-712 message a validator signs, as ``encode_typed_data(full_message=...)`` takes
    it (also what wallets show: ``eth_signTypedData_v4``)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            PRIMARY_TYPE: [{"name": name, "type": typ} for name, typ in ROUND_RESULT_FIELDS],
        },
        "primaryType": PRIMARY_TYPE,
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(verifying_contract),
        },
        "message": {
            "taskId": task_id,
            "round": round_,
            "resultHash": result_hash,
            "globalDigest": result.global_digest,
            "reportCidHash": keccak(text=result.report_cid),
            "rewardRoot": result.reward_root,
            "scoresDigest": scores_digest,
        },
    }


class ResultFields(TypedDict):
    """What a signature is over: ``result`` for ``round_`` of ``task_id`` in ``epoch`` (the
    round's epoch now: ``Ledger.round(...).epoch``), with the signer's ``scores_digest``, on the
    ledger at ``verifying_contract`` of chain ``chain_id``."""

    chain_id: int
    verifying_contract: str
    task_id: int
    round_: int
    epoch: int
    result: Finalization
    scores_digest: bytes


def _signable(**where: Unpack[ResultFields]) -> SignableMessage:
    task_id, round_, result = where["task_id"], where["round_"], where["result"]
    hashed = result_hash(task_id, round_, where["epoch"], result)
    data = typed_data(
        where["chain_id"],
        where["verifying_contract"],
        task_id,
        round_,
        hashed,
        result,
        where["scores_digest"],
    )
    return encode_typed_data(full_message=data)


def attestation_digest(
    chain_id: int,
    verifying_contract: str,
    task_id: int,
    round_: int,
    result_hash: bytes,
    result: Finalization,
    scores_digest: bytes,
) -> bytes:
    """What the contract's ``attestationDigest`` gives: the 32 bytes a validator's key signs."""
    data = typed_data(
        chain_id, verifying_contract, task_id, round_, result_hash, result, scores_digest
    )
    message = encode_typed_data(full_message=data)
    return keccak(b"\x19" + message.version + message.header + message.body)


def sign_result(account: LocalAccount, **where: Unpack[ResultFields]) -> Attestation:
    """``account``'s attestation of the result ``where`` names, ready for ``Ledger.attest`` or
    ``finalize_round``."""
    signed = account.sign_message(_signable(**where))
    return Attestation(account.address, bytes(signed.signature))


#: The zero address: what the contract's ``ECDSA.tryRecover`` gives for a malformed signature.
ZERO_ADDRESS = to_checksum_address("0x" + "00" * 20)
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def recover_signer(signature: bytes, **where: Unpack[ResultFields]) -> ChecksumAddress:
    """The account whose key made ``signature`` over the result ``where`` names, as
    :func:`sign_result` signs it (any other message recovers to some other address). A
    signature the contract refuses as malformed (not 65 bytes, ``v`` not 27/28, or a malleable
    high ``s``) recovers to :data:`ZERO_ADDRESS`, as on chain."""
    if (
        len(signature) != 65
        or signature[64] not in (27, 28)
        or int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N
    ):
        return ZERO_ADDRESS
    try:
        return to_checksum_address(Account.recover_message(_signable(**where), signature=signature))
    except (ValueError, BadSignature):  # no point on the curve for these r, s
        return ZERO_ADDRESS
