"""``loraledger bench train``: runs end to end on the tiny model; --gpu refuses without CUDA."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from loraledger.errors import ConfigError
from scripts.bench_cli import app


@pytest.mark.slow
def test_bench_train_prints_both_paths_with_ratio_and_equal_losses() -> None:
    result = CliRunner().invoke(
        app, ["train", "--model", "tiny", "--steps", "3", "--repeats", "1"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    rows = [
        line
        for line in result.output.splitlines()
        if "plain peft loop" in line or "train_round" in line
    ]
    assert len(rows) == 2
    losses = {row.split("│")[7].strip() for row in rows}
    assert len(losses) == 1  # same model, data, order and seed: the same maths


def test_bench_train_gpu_variant_refuses_clearly_without_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    result = CliRunner().invoke(app, ["train", "--gpu"])
    assert isinstance(result.exception, ConfigError)
    assert "needs a CUDA device" in str(result.exception)
