"""``loraledger privacy``: the accountant from the command line, and its bad input."""

from __future__ import annotations

import json

import pytest

from loraledger.privacy import Stretch, epsilon, epsilon_by_round
from tests.support.cli import run_cli


def test_epsilon_by_round_and_the_noise_for_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "privacy",
        "epsilon",
        "--noise-multiplier",
        "1.1",
        "--sample-rate",
        "0.01",
        "--steps",
        "100",
        "-r",
        "3",
        "--json",
    )
    assert code == 0, err
    body = json.loads(out)
    assert body["epsilon_by_round"] == epsilon_by_round(1.1, 0.01, 100, 3, 1e-5)

    code, out, err = run_cli(
        capsys,
        "privacy",
        "epsilon",
        "--noise-multiplier",
        "1.1",
        "--sample-rate",
        "0.01",
        "--steps",
        "100",
    )
    assert code == 0 and "epsilon 0.956 after 1 round(s)" in " ".join(out.split()), out

    args = [
        "--epsilon",
        "3",
        "--sample-rate",
        "1",
        "--steps",
        "10",
        "--accountant",
        "prv",
        "--delta",
        "1e-6",
    ]
    code, out, err = run_cli(capsys, "privacy", "noise", *args, "--json")
    assert code == 0, err
    body = json.loads(out)
    assert body["epsilon"] <= 3 and body["epsilon"] == pytest.approx(
        epsilon([Stretch(body["noise_multiplier"], 1.0, 10)], 1e-6, "prv")
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["epsilon", "--noise-multiplier", "-1", "--sample-rate", "0.1", "--steps", "1"],
            "noise multiplier must be positive",
        ),
        (
            ["epsilon", "--noise-multiplier", "1", "--sample-rate", "2", "--steps", "1"],
            "sample rate must be in (0, 1]",
        ),
        (
            [
                "epsilon",
                "--noise-multiplier",
                "1",
                "--sample-rate",
                "0.1",
                "--steps",
                "1",
                "--delta",
                "0",
            ],
            "delta must be in",
        ),
        (
            [
                "epsilon",
                "--noise-multiplier",
                "1",
                "--sample-rate",
                "0.1",
                "--steps",
                "1",
                "--accountant",
                "x",
            ],
            "unknown accountant",
        ),
        (
            ["noise", "--epsilon", "0", "--sample-rate", "0.1", "--steps", "1"],
            "target epsilon must be positive",
        ),
    ],
)
def test_bad_input_is_one_error_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "privacy", *args)
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error:") and message in err.splitlines()[0], err
