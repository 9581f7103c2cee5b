"""One exception class per contract custom error, generated from the ABI and decoded the same
way whichever chain raised the revert."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from eth_abi import encode
from eth_tester.exceptions import TransactionFailed
from eth_utils import function_signature_to_4byte_selector
from web3.exceptions import ContractCustomError, ContractLogicError

from chain import errorgen, errors
from chain.compiler import ARTIFACTS_DIR, DEPLOYABLE, load_artifact
from chain.errors import ContractRevert, ErrorDecoder, TransactionReverted
from chain.round_state import RoundState

NODE = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"


def _decoder() -> ErrorDecoder:
    return ErrorDecoder(load_artifact(name).abi for name in DEPLOYABLE)


def _data(error: type[ContractRevert], *values: object) -> bytes:
    return error.selector() + encode(list(error.TYPES), list(values))


def test_generated_error_classes_match_the_committed_abis() -> None:
    assert errorgen.check() == []


def test_every_custom_error_of_the_abis_has_its_class_with_the_same_arguments() -> None:
    abi_errors = errorgen.errors_of(errorgen.shipped_abis())
    assert {e["name"] for e in abi_errors} == {
        cls.__name__ for cls in errors.CONTRACT_ERRORS.values()
    }
    for item in abi_errors:
        cls = getattr(errors, item["name"])
        assert issubclass(cls, ContractRevert)
        assert tuple(i["name"] for i in item["inputs"]) == cls.FIELDS
        assert tuple(errors.abi_type(i) for i in item["inputs"]) == cls.TYPES
        assert errors.CONTRACT_ERRORS[cls.signature()] is cls


def test_check_reports_classes_that_disagree_with_the_abi(tmp_path: Path) -> None:
    shutil.copytree(ARTIFACTS_DIR, tmp_path / "artifacts")
    module = tmp_path / "errors.py"
    module.write_text(errorgen.ERRORS_MODULE.read_text())
    assert errorgen.check(module, tmp_path / "artifacts") == []

    # the ABI gains an argument the committed class does not have
    path = tmp_path / "artifacts" / "LoRALedger.json"
    body = json.loads(path.read_text())
    (item,) = [i for i in body["abi"] if i.get("name") == "LedgerCountMismatch"]
    item["inputs"].append({"internalType": "uint32", "name": "extra", "type": "uint32"})
    path.write_text(json.dumps(body))
    assert errorgen.check(module, tmp_path / "artifacts") == [
        "errors.py: its error classes differ from the ABIs in artifacts/"
    ]

    # a hand edit inside the generated block is drift too
    shutil.copy(ARTIFACTS_DIR / "LoRALedger.json", path)
    module.write_text(
        module.read_text().replace(
            'TYPES = ("uint256", "uint32", "address")', 'TYPES = ("uint256",)', 1
        )
    )
    assert errorgen.check(module, tmp_path / "artifacts") != []


def test_an_abi_enum_without_a_python_mirror_is_refused() -> None:
    abi = [
        {
            "type": "error",
            "name": "X",
            "inputs": [{"internalType": "enum I.Mood", "name": "m", "type": "uint8"}],
        }
    ]
    with pytest.raises(errors.ChainError, match=r"enum I.Mood"):
        errorgen.render([abi])


def test_a_revert_maps_to_the_same_class_from_eth_tester_and_from_rpc_chains() -> None:
    data = _data(errors.LedgerCountMismatch, 3, 2, 1, 0, 2)
    raised = [
        TransactionFailed(data),  # eth-tester (embedded chain)
        TransactionFailed(f"execution reverted: {data!r}"),  # eth-tester, older message form
        ContractCustomError("0x" + data.hex(), data="0x" + data.hex()),  # anvil / Ganache via web3
        ContractLogicError(
            "revert", data={"result": "0x" + data.hex(), "message": "revert"}
        ),  # Ganache
    ]
    decoded = [_decoder().from_exception(exc) for exc in raised]
    for error in decoded:
        assert type(error) is errors.LedgerCountMismatch
        assert isinstance(error, errors.ChainError)
        assert error.args == (3, 2, 1, 0, 2)
        assert (error.task_id, error.round, error.accepted, error.rejected, error.reveals) == (
            3,
            2,
            1,
            0,
            2,
        )
        assert error.name == "LedgerCountMismatch"
        assert (
            str(error)
            == "LedgerCountMismatch(taskId=3, round=2, accepted=1, rejected=0, reveals=2)"
        )


def test_callers_catch_the_class_of_the_error() -> None:
    with pytest.raises(errors.LedgerAlreadyCommitted) as info:
        raise _decoder().decode(_data(errors.LedgerAlreadyCommitted, 1, 2, NODE.lower()))
    assert info.value.node == NODE  # addresses come back checksummed
    assert info.value.hint == errors.HINTS["LedgerAlreadyCommitted"]
    with pytest.raises(errors.LedgerUnknownTask):
        raise _decoder().decode(_data(errors.LedgerUnknownTask, 9))


def test_the_round_state_error_decodes_its_state_and_expected_states() -> None:
    bitmap = RoundState.to_bitmap({RoundState.CLOSED})
    error = _decoder().decode(_data(errors.LedgerUnexpectedRoundState, 4, 2, 1, bitmap))
    assert isinstance(error, errors.LedgerUnexpectedRoundState)
    assert error.current is RoundState.OPEN
    assert error.expected_states == bitmap and error.expected == {RoundState.CLOSED}
    assert error.args == (4, 2, RoundState.OPEN, bitmap)
    assert (
        str(error)
        == "LedgerUnexpectedRoundState(taskId=4, round=2, current=OPEN, expectedStates={CLOSED})"
    )
    assert error.hint == "wait until the commit window closes and the commitments are revealed"


def test_contract_errors_survive_pickling() -> None:
    error = errors.LedgerInsufficientPool(1, 60, 100)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.LedgerInsufficientPool
    assert (copy.args, copy.available, str(copy), copy.hint) == (
        error.args,
        60,
        str(error),
        error.hint,
    )


def test_an_error_of_an_abi_the_project_does_not_ship_still_decodes() -> None:
    abi = [
        {
            "type": "error",
            "name": "Foreign",
            "inputs": [{"internalType": "uint256", "name": "someValue", "type": "uint256"}],
        }
    ]
    data = bytes(function_signature_to_4byte_selector("Foreign(uint256)")) + encode(
        ["uint256"], [7]
    )
    error = ErrorDecoder([abi]).from_exception(ContractCustomError("", data="0x" + data.hex()))
    assert isinstance(error, ContractRevert) and error.name == "Foreign"
    assert error.args == (7,) and error.some_value == 7
    assert str(error) == "Foreign(someValue=7)"


def test_a_revert_without_a_known_error_is_a_plain_transaction_revert() -> None:
    assert isinstance(_decoder().from_exception(TransactionFailed(b"")), TransactionReverted)
    assert isinstance(
        _decoder().from_exception(TransactionFailed(b"\x12\x34\x56\x78")), TransactionReverted
    )
    assert _decoder().from_exception(ValueError("not a revert")) is None


def test_round_state_bitmaps_round_trip_and_reject_unknown_bits() -> None:
    for states in ({RoundState.OPEN}, {RoundState.UNOPENED, RoundState.FINALIZED}, set(RoundState)):
        assert RoundState.from_bitmap(RoundState.to_bitmap(states)) == states
    assert RoundState.to_bitmap({RoundState.CLOSED}) == (8).to_bytes(32, "big")
    assert RoundState.to_bitmap({RoundState.REVEALING}) == (4).to_bytes(32, "big")
    with pytest.raises(ValueError, match="no known round state"):
        RoundState.from_bitmap((1 << 7).to_bytes(32, "big"))  # states run 0..6
    assert RoundState.to_bitmap({RoundState.SETTLED, RoundState.ABANDONED}) == (96).to_bytes(
        32, "big"
    )


def test_round_state_groups_name_the_states_they_hold() -> None:
    assert {s for s in RoundState if s.pending} == {
        RoundState.OPEN,
        RoundState.REVEALING,
        RoundState.CLOSED,
    }
    assert {s for s in RoundState if s.claimable} == {RoundState.SETTLED}
    assert {s for s in RoundState if s.final} == {RoundState.SETTLED, RoundState.ABANDONED}
