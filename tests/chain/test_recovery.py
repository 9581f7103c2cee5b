"""A loop rides out a few chain-changed errors in a row, waiting longer each time, and gives
up with the error itself when the chain keeps disagreeing."""

from __future__ import annotations

import pytest

from chain.errors import ChainMoved
from chain.recovery import Recovery


def test_pauses_double_up_to_the_longest_and_a_success_starts_again() -> None:
    recovery = Recovery("test loop", attempts=6, first=0.5, longest=3.0)
    error = ChainMoved("round 2 is gone")
    assert [recovery.failed(error) for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    recovery.succeeded()
    assert recovery.failed(error) == 0.5  # counted afresh
    assert recovery.recovered == 5


def test_the_error_stands_when_the_chain_keeps_disagreeing() -> None:
    recovery = Recovery("test loop", attempts=3)
    error = ChainMoved("never published")
    recovery.failed(error)
    recovery.failed(error)
    with pytest.raises(ChainMoved, match="never published"):
        recovery.failed(error)


def test_a_command_started_while_a_service_restarts_waits_for_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`node run`, `aggregator run` and `validator run` started while the chain or the IPFS
    node restarts wait for them (one line per try) instead of exiting; other errors stand at
    once, and a service that never comes back is the error after the last try."""
    from chain.errors import ChainUnavailable
    from chain.recovery import outlast
    from loraledger.errors import ConfigError

    pauses: list[float] = []
    monkeypatch.setattr("chain.recovery.time.sleep", pauses.append)
    answers = iter([ChainUnavailable("no chain answers"), ChainUnavailable("no chain"), "session"])

    def start() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with caplog.at_level("WARNING"):
        assert outlast(start, "node run of task 1") == "session"
    assert pauses == [0.5, 1.0]
    assert sum("a service does not answer" in r.getMessage() for r in caplog.records) == 2

    def wrong() -> str:
        raise ConfigError("bad --data")

    with pytest.raises(ConfigError):
        outlast(wrong, "node run of task 1")
    assert pauses == [0.5, 1.0]

    def never() -> str:
        raise ChainUnavailable("no chain answers")

    with pytest.raises(ChainUnavailable):
        outlast(never, "node run of task 1")
