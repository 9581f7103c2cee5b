"""Token amounts in the round report: written as decimal strings, read back exactly, and read
from reports written before (JSON integers); anything else is one clear rejection."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ValidationError

from loraledger.report import RewardLine, TokenAmount


class _Holder(BaseModel):
    amount: TokenAmount


BIG = 2**200 + 1  # far above 2^53: a double cannot hold it


def test_an_amount_is_written_as_a_decimal_string_and_read_back_exactly() -> None:
    line = RewardLine(node="0xabc", amount=BIG, proof=())
    body = json.loads(line.model_dump_json())
    assert body["amount"] == str(BIG)
    assert RewardLine.model_validate_json(line.model_dump_json()).amount == BIG
    assert line.model_dump()["amount"] == BIG  # in Python it stays an int


def test_a_report_from_before_amounts_were_strings_still_reads() -> None:
    assert _Holder.model_validate_json(json.dumps({"amount": BIG})).amount == BIG


@pytest.mark.parametrize(
    "raw",
    [
        '"1e20"',
        '"-5"',
        '" 5"',
        '"5.0"',
        '"0x10"',
        '"007"',
        '""',
        "true",
        "1.5",
        '"١٢"',
        '"9' + "9" * 78 + '"',
    ],
)
def test_anything_but_digits_or_an_integer_is_rejected(raw: str) -> None:
    with pytest.raises(ValidationError):
        _Holder.model_validate_json('{"amount": ' + raw + "}")


def test_the_minimum_still_holds_for_strings() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        RewardLine.model_validate_json('{"node": "0xabc", "amount": "0", "proof": []}')
