"""Options every command group shares: names checked against what the code runs, before any
slow work, with the closest one suggested."""

from __future__ import annotations

import pytest
import typer

from aggregator.names import REWARD_RULES, STRATEGIES
from scripts.options import one_of
from tests.support.cli import run_cli


def test_a_choice_passes_known_names_and_the_default_and_suggests_the_closest() -> None:
    check = one_of(STRATEGIES, "strategy")
    assert check("krum") == "krum" and check(None) is None
    with pytest.raises(typer.BadParameter, match="did you mean trimmed-mean"):
        check("trimmed_mean")
    with pytest.raises(typer.BadParameter) as info:
        check("nope")
    assert "did you mean" not in str(info.value) and "zero-pad" in str(info.value)


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (("demo", "--tiny", "--strategy", "fedavgg"), "did you mean fedavg?"),
        (("aggregator", "finalize", "--task", "1", "--strategy", "krumm"), "did you mean krum?"),
        (("flower", "simulate", "--strategy", "medain"), "did you mean median?"),
        (("aggregator", "run", "--task", "1", "--reward-rule", "contrib"), "contribution?"),
    ],
)
def test_a_misspelt_name_is_a_usage_error_before_any_work(
    args: tuple[str, ...], suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    # exit 2: click's usage error, raised while parsing, before a model, chain or store loads
    assert suggestion in " ".join(err.split()) and "Traceback" not in err


def test_the_reward_rule_names_are_the_rewards_modules() -> None:
    from aggregator.rewards import RULES

    assert set(RULES) == set(REWARD_RULES)
