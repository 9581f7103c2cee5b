"""``loraledger dashboard`` in a real headless browser (Debian's chromium through Selenium):
rounds run on a real Ganache, the dashboard runs as its own process with only the deployment
record, and the page shows the task, the rounds with their verdict counts and reasons, each
node's reward and the loss plot, and picks up a round finalized while it is open."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import torch

from aggregator.round import RoundRunner, RoundSettings
from chain import local
from chain.bindings import ClaimRequest
from chain.deployments import save_deployment
from loraledger.update import LocalMetrics, PeftSpec, parse_global_adapter
from tests.aggregator.round_builders import SPEC, RoundWorld, make_world
from tests.support.chain import LedgerEnv, ganache_env  # noqa: F401
from tests.support.ipfs import free_port

CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1800",
)


def validation_loss(
    tensors: dict[str, torch.Tensor], spec: PeftSpec, target: dict[str, torch.Tensor]
) -> float:
    """A synthetic validation objective: mean squared distance of the adapter to ``target``."""
    return float(
        sum(((tensors[k].double() - target[k].double()) ** 2).mean() for k in target) / len(target)
    )


def run_round(world: RoundWorld, runner: RoundRunner, target: dict[str, torch.Tensor]) -> None:
    """Four nodes step halfway towards ``target`` from the round's start adapter; a fifth sends a
    x100 update (a norm outlier)."""
    env = world.env
    round_ = runner.open()
    start_cid = runner.session.history.global_adapter_at(
        world.task_id, env.ledger.round(world.task_id, round_).start_digest
    )
    start = parse_global_adapter(world.store.get_bytes(start_cid)).tensors
    for i, node in enumerate(env.nodes[:5]):
        g = torch.Generator().manual_seed(100 * round_ + i)
        tensors = {
            k: v + 0.5 * (target[k] - v) + 0.01 * torch.randn(v.shape, generator=g)
            for k, v in start.items()
        }
        if i == 4:
            tensors = {k: v * 100 for k, v in tensors.items()}
        own = LocalMetrics(
            eval_loss_after=validation_loss(tensors, SPEC, target)
        )  # what a node self-reports
        world.submit(round_, node, tensors, examples=10 * (i + 1), metrics=own)
    runner.finalize(round_)


@pytest.fixture
def chain_env(ganache_env: LedgerEnv) -> Iterator[LedgerEnv]:
    snapshot = ganache_env.snapshot()
    yield ganache_env
    ganache_env.revert(snapshot)


def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "chromium and chromedriver are not installed: `make setup` installs them "
            "(apt-get install -y chromium chromium-driver)",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def until(condition: Callable[[], object], timeout: float = 30, what: str = "the page") -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if condition():
                return
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last error: {last})")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.ganache
def test_the_dashboard_shows_the_round_history_live_in_a_browser(
    ganache_process: local.ChainProcess, chain_env: LedgerEnv, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser()  # fails first, and clearly, when chromium is missing
    home = tmp_path / "home"
    save_deployment(chain_env.deployment, root=home)
    world = make_world(chain_env, tmp_path, nodes=5, max_rounds=2)
    target = {k: v + 0.2 for k, v in world.start.items()}
    runner = world.runner(
        RoundSettings(), evaluator=lambda t, spec: validation_loss(dict(t), spec, target)
    )
    run_round(world, runner, target)
    report = world.runner().finalize(1).report  # already finalized: the published report
    line = report.reward_for(chain_env.nodes[3].address)
    assert line is not None
    request = ClaimRequest(
        world.task_id, 1, line.amount, tuple(bytes.fromhex(p) for p in line.proof)
    )
    chain_env.ledger.claim(request, chain_env.nodes[3])

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.cli",
            "dashboard",
            "--network",
            f"ganache:{ganache_process.port}",
            "--ipfs",
            f"embedded:{world.store.root}",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LORALEDGER_HOME": str(home)},
    )
    url = f"http://127.0.0.1:{port}/"
    artifacts = Path(os.environ.get("LORALEDGER_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        until(
            lambda: httpx.get(url + "api/history", timeout=5).status_code == 200,
            60,
            "the dashboard to serve",
        )
        assert httpx.post(url + "api/history").status_code == 501  # read-only: no other methods
        driver.get(url)
        tid = world.task_id
        section = f"[data-testid='task-{tid}']"
        until(
            lambda: driver.find_element(By.CSS_SELECTOR, f"{section} [data-round='1']"),
            what="round 1 to render",
        )

        assert driver.find_element(By.CSS_SELECTOR, f"{section} h2").text == f"Task {tid}"
        row = driver.find_element(By.CSS_SELECTOR, f"{section} [data-round='1']")
        assert row.find_element(By.CLASS_NAME, "accepted-count").text == "4"
        assert row.find_element(By.CLASS_NAME, "rejected-count").text == "1"
        # the boosted update: its validation loss is checked before the norm screening
        assert "validation_worse x1" in row.find_element(By.CLASS_NAME, "reasons").text
        assert row.find_element(By.CLASS_NAME, "reward-rule").text == "contribution"
        node_row = driver.find_element(
            By.CSS_SELECTOR, f"{section} [data-node='{chain_env.nodes[3].address}']"
        )
        assert node_row.find_element(By.CLASS_NAME, "reward").text == tokens(line.amount)
        assert node_row.find_element(By.CLASS_NAME, "claimed").text == tokens(line.amount)
        scores = [
            cell.get_attribute("textContent")
            for cell in driver.find_elements(
                By.CSS_SELECTOR, f"[data-testid='submissions-{tid}-1'] td.score"
            )
        ]
        assert len(scores) == 5 and sum(1 for x in scores if x != "-") == 4  # the 4 scored
        points = driver.find_elements(By.CSS_SELECTOR, f"#loss-plot-{tid} circle.point")
        assert len(points) == 2  # round 1: global and the nodes' own eval loss (one point each)

        run_round(world, runner, target)  # while the page is open
        until(
            lambda: (
                driver.find_element(
                    By.CSS_SELECTOR, f"{section} [data-round='2'] .accepted-count"
                ).text
                == "4"
            ),
            what="round 2 to appear without a reload",
        )
        global_points = driver.find_elements(By.CSS_SELECTOR, f"#loss-plot-{tid} path.series")
        assert len(global_points) >= 1
        assert len(driver.find_elements(By.CSS_SELECTOR, f"#loss-plot-{tid} circle.point")) == 4
        assert (
            len(driver.find_elements(By.CSS_SELECTOR, f"#reward-plot-{tid} rect.bar")) == 4
        )  # reserved+claimed x2
        losses = [r.round.global_eval_loss for r in _rounds(world)]
        assert losses[1] < losses[0]  # the plotted loss falls, as the nodes move to the target
        shot = artifacts / "dashboard.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        print(f"dashboard screenshot: {shot}")
    finally:
        driver.quit()
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in output


def tokens(units: int) -> str:
    """Whole tokens as the page writes them (at most 4 decimals, truncated)."""
    whole, frac = divmod(units, 10**18)
    digits = f"{frac:018d}"[:4].rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def _rounds(world: RoundWorld):
    from aggregator.audit import Auditor
    from chain.events import History

    return (
        Auditor(world.env.ledger, History(world.env.ledger), world.store)
        .history_of(world.task_id)
        .rounds
    )


def test_the_browser_test_fails_with_the_setup_hint_when_chromium_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="`make setup` installs them"):
        browser()
