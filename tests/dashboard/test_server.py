"""``loraledger dashboard`` in a real headless browser (Debian's chromium through Selenium):
rounds run on a real Ganache with the task's validators in process, the dashboard runs as its
own process with only the deployment record, and the page shows the task with its roles and
bonds, the rounds with their state, verdict counts and reasons, the validators whose sheets
each round used (agreement, pay, signatures), each node's submissions (quality, score, eval
loss, verdict, reward) and charts with axis titles, ticks, legends and tooltips, one curve per
node; amounts with the token's symbol as the CLI writes them, links to each transaction and
block, the round's live line in the CLI's words; it picks up a round opened, finalized,
settled, abandoned and a task cancelled while it is open, fits an 800 px window and logs no
error. The feed itself shows challenges that voided a round and the bonds they slashed, the
transaction of each event, the token and no local path (on the embedded chain); the
transaction and block endpoints check their input."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from web3 import Web3

from aggregator.audit import Auditor, RoundDetail
from aggregator.round import RoundOutcome, RoundRunner, RoundSettings
from chain import local
from chain.bindings import ClaimRequest
from chain.deployments import save_deployment
from chain.events import History
from chain.progress import awaiting
from dashboard.server import HistoryFeed, Source, make_server, public_store
from ipfs import EmbeddedConfig, EmbeddedStore
from loraledger import display
from loraledger.update import LocalMetrics, PeftSpec, parse_global_adapter
from tests.aggregator.round_builders import SPEC, RoundWorld, make_world
from tests.support.chain import (
    AGGREGATOR_BOND,
    TOKEN,
    VALIDATOR_BOND,
    LedgerEnv,
    ganache_env,  # noqa: F401
)
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


def run_round(
    world: RoundWorld,
    runner: RoundRunner,
    target: dict[str, torch.Tensor],
    *,
    after_first_commit: Callable[[int], None] | None = None,
) -> RoundOutcome:
    """Four nodes step halfway towards ``target`` from the round's start adapter; a fifth sends a
    x100 update (a norm outlier). The task's validators finalize it (in its challenge window).
    ``after_first_commit`` is called with the round while it is open, one node committed."""
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
        if i == 0 and after_first_commit is not None:
            after_first_commit(round_)
    return runner.finalize(round_)


@pytest.fixture
def chain_env(ganache_env: LedgerEnv) -> Iterator[LedgerEnv]:
    snapshot = ganache_env.snapshot()
    yield ganache_env
    ganache_env.revert(snapshot)


def browser() -> Any:
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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console
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
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = browser()  # fails first, and clearly, when chromium is missing
    home = tmp_path / "home"
    save_deployment(chain_env.deployment, root=home)
    world = make_world(chain_env, tmp_path, nodes=5, max_rounds=4)
    target = {k: v + 0.2 for k, v in world.start.items()}
    runner = world.runner(
        RoundSettings(), evaluator=lambda t, spec: validation_loss(dict(t), spec, target)
    )
    report = run_round(world, runner, target).report
    world.settle(runner, 1)  # claims open once the challenge window has passed
    assert len(report.validators) == 3  # every validator's sheet was used, each one paid
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
        # the validators' median score: positive for the 4 accepted, 0 for the one they rejected
        assert len(scores) == 5 and sorted(float(x) > 0 for x in scores) == [False] + [True] * 4
        points = driver.find_elements(By.CSS_SELECTOR, f"#loss-plot-{tid} circle.point")
        assert len(points) == 2  # round 1: the aggregate's and the nodes' own eval loss

        # roles and bonds: the aggregator and the three validators, every bond posted and held
        bonds = f"[data-testid='bonds-{tid}'] tr[data-account]"
        assert attributes(driver, bonds, "data-account") == [chain_env.aggregator.address] + [
            v.address for v in chain_env.validators
        ]
        assert texts(driver, f"{bonds} .role") == ["aggregator"] + ["validator"] * 3
        assert (
            texts(driver, f"{bonds} .held")
            == [tokens(AGGREGATOR_BOND)] + [tokens(VALIDATOR_BOND)] * 3
        )
        assert texts(driver, f"{bonds} .bond-slashed") == [tokens(0)] * 4
        assert texts(driver, f"{section} .quorum") == ["quorum 2 of 3 validators"]
        # round 1 is settled; the validators' sheets it used, their agreement and pay, who signed
        first = f"{section} [data-round='1']"
        assert texts(driver, f"{first} .state") == ["settled"]
        assert texts(driver, f"{first} .epoch") == ["0"]  # never voided
        assert texts(driver, f"{first} .sheets") == ["3/3"]
        assert texts(driver, f"{first} .signers") == ["2/2"]  # the quorum's signatures
        validators = f"[data-testid='validators-{tid}-1'] tbody tr"
        assert texts(driver, f"{validators} .validator") == [
            v.address for v in chain_env.validators
        ]
        assert texts(driver, f"{validators} .agreement") == [
            f"{v.agreement:.3f}" for v in report.validators
        ]
        # honest validators scoring on the same held-out data agree fully, and are paid alike
        assert {v.agreement for v in report.validators} == {1.0}
        assert texts(driver, f"{validators} .pay") == [tokens(v.reward) for v in report.validators]
        assert all(v.reward > 0 for v in report.validators)
        assert sorted(texts(driver, f"{validators} .signed")) == ["no", "yes", "yes"]

        # the header: where the data comes from, the token, the block; no local path anywhere
        header = {
            name: texts(driver, f"[data-testid='header-{name}']")[0]
            for name in ("network", "chain", "ledger", "token", "store", "block")
        }
        assert header["network"] == f"network ganache:{ganache_process.port}"
        assert header["chain"] == f"chain id {chain_env.chain.chain_id}"
        assert header["ledger"] == f"ledger {chain_env.ledger.address}"
        symbol = chain_env.token.symbol()
        assert symbol == display.TOKEN_SYMBOL  # what the CLI writes, read from the contract
        assert header["token"] == f"token {symbol} {chain_env.token.address}"
        assert header["store"] == "store embedded store"
        assert re.fullmatch(r"block #\d+", header["block"])
        assert str(world.store.root) not in driver.page_source
        assert str(tmp_path) not in httpx.get(url + "api/history").text

        # every amount as the CLI writes it, with the symbol; every digit in its title
        assert texts(driver, f"{section} .token-symbol") == [symbol]
        for units in (0, 1, 10**12, 10**18, 99_999_999_999_999_999_997, 1234567 * 10**18 + 5):
            shown = driver.execute_script(
                "return tokenText(arguments[0], {symbol: arguments[1], decimals: 18})",
                str(units),
                symbol,
            )
            assert shown == {
                "text": display.tokens(units, exact=False),
                "exact": display.tokens(units, exact=True),
            }
        for seconds in (0, 26, -26, 119, 120, 3599, 7300, -200_000):
            said = driver.execute_script("return relative(arguments[0])", seconds)
            assert said == display.relative(seconds)

        # each node's submission: examples, quality, score, eval loss, verdict and reason, reward
        (first_round,) = _rounds(world)
        submissions = f"[data-testid='submissions-{tid}-1']"
        for sub in first_round.submissions:
            row = f"{submissions} tr[data-sub-node='{sub.node}']"
            cells = {
                name: texts(driver, f"{row} .{name}")[0]
                for name in ("examples", "quality", "score", "node-eval-loss", "verdict", "reward")
            }
            assert cells["examples"].startswith(str(sub.num_examples))
            assert sub.quality is not None and sub.eval_loss is not None
            assert float(cells["quality"]) == pytest.approx(sub.quality, rel=1e-2)
            assert float(cells["node-eval-loss"]) == pytest.approx(sub.eval_loss, rel=1e-3)
            assert cells["verdict"] == sub.verdict
            assert cells["reward"] == tokens(sub.reward)
            assert attributes(driver, f"{row} .reward .amount", "title") == [exact(sub.reward)]
        rejected = next(s for s in first_round.submissions if s.verdict == "rejected")
        assert texts(driver, f"{submissions} tr[data-sub-node='{rejected.node}'] .reason") == [
            "validation_worse"
        ]

        # charts: axis titles, nice ticks on both axes, a legend; one curve per node
        nodes = [s.node for s in first_round.submissions]
        charts = {
            "loss-plot": 2,  # the aggregate's and the nodes' own eval loss
            "node-loss-plot": len(nodes) + 1,  # and the aggregate's, dashed
            "node-score-plot": len(nodes),
            "node-reward-plot": len(nodes),
            "reward-plot": 2,  # reserved and claimed
        }
        for name, series in charts.items():
            chart = f"#{name}-{tid}"
            assert texts(driver, f"{chart} .x-title") == ["round"]
            (y_title,) = texts(driver, f"{chart} .y-title")
            assert texts(driver, f"{chart} .tick-x") == ["1"]
            assert_nice_ticks(texts(driver, f"{chart} .tick-y"), log="log scale" in y_title)
            assert len(texts(driver, f"[data-testid='legend-{name}-{tid}'] li")) == series
        assert "eval loss" in texts(driver, f"#node-loss-plot-{tid} .y-title")[0]
        assert texts(driver, f"#node-reward-plot-{tid} .y-title") == [f"reward ({symbol})"]
        for name in ("node-loss-plot", "node-score-plot", "node-reward-plot"):
            curves = f"#{name}-{tid} path.node-series"
            assert sorted(attributes(driver, curves, "data-node-series")) == sorted(nodes)
        # each node's own reward, not one bar per round: what the report pays each
        points = f"#node-reward-plot-{tid} circle.node-point"
        paid = dict(
            zip(
                attributes(driver, points, "data-node-series"),
                [float(v or "nan") for v in attributes(driver, points, "data-value")],
                strict=True,
            )
        )
        assert paid == {
            s.node: pytest.approx(s.reward / 10**18, rel=1e-6) for s in first_round.submissions
        }
        assert len({round(v, 6) for v in paid.values()}) > 2  # contributions differ, so do rewards
        # tooltips: every point names its node, round and value; hovering one shows it
        label = f"{rejected.node[:6]}…{rejected.node[-4:]}"
        loss_point = f"#node-loss-plot-{tid} circle.node-point[data-node-series='{rejected.node}']"
        (tip,) = attributes(driver, loss_point, "data-tip")
        assert tip is not None
        head, value, verdict = tip.splitlines()
        assert (head, verdict) == (f"{label} · round 1", "rejected: validation_worse")
        assert value.startswith("eval loss ")
        assert float(value.removeprefix("eval loss ")) == pytest.approx(rejected.eval_loss, 1e-4)
        assert all(attributes(driver, f"{section} .plot [data-tip]", "data-tip"))
        ActionChains(driver).move_to_element(
            driver.find_element(By.CSS_SELECTOR, loss_point)
        ).perform()
        until(
            lambda: driver.find_element(By.ID, "tooltip").text == tip,
            what="the tooltip of a point",
        )
        ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()
        until(lambda: not driver.find_element(By.ID, "tooltip").is_displayed(), what="it to go")

        # transactions and blocks link to read-only views of the chain
        paid_row = f"{submissions} tr[data-sub-node='{chain_env.nodes[3].address}']"
        (revealed,) = (s for s in first_round.submissions if s.node == chain_env.nodes[3].address)
        (reveal_link,) = links(driver, f"{paid_row} .reveal-tx a.tx-link")
        reveal = httpx.get(str(reveal_link)).json()
        assert (reveal["block"], reveal["function"], reveal["from"]) == (
            revealed.block,
            "revealUpdate",
            revealed.node,
        )
        assert [e["event"] for e in reveal["events"]] == ["UpdateRevealed"]
        (claim_link,) = links(driver, f"{paid_row} .claim a.tx-link")
        claim = httpx.get(str(claim_link))
        assert claim.status_code == 200
        assert claim.json()["function"] == "claim" and claim.json()["status"] == "success"
        assert "RewardClaimed" in [e["event"] for e in claim.json()["events"]]
        (block_link,) = links(driver, f"{paid_row} .reveal-tx a.block-link")
        block = httpx.get(str(block_link)).json()
        assert block["number"] == revealed.block
        assert reveal["hash"] in [t["hash"] for t in block["transactions"]]
        opened, finalized = links(driver, f"{first} .round-tx a.tx-link")
        assert httpx.get(str(opened)).json()["function"] == "openRound"
        # the attestation that reached the quorum finalized it
        finalizing = httpx.get(str(finalized)).json()
        assert "RoundFinalized" in [e["event"] for e in finalizing["events"]]

        # what the task waits for, in the CLI's words, counted down in chain time
        live = f"[data-testid='live-{tid}'] .live-text"
        assert texts(driver, live) == ["waiting for round 2 to be opened"]

        def while_open(round_: int) -> None:
            ledger = chain_env.ledger
            said = awaiting(
                ledger.round(tid, round_),
                ledger.round_state(tid, round_),
                chain_env.chain.timestamp(),
                quorum=chain_env.quorum,
                challenge_window=ledger.task(tid).challenge_window,
            )
            before = said.rsplit(" (", 1)[0]  # the deadline; then how far away it is
            assert before.startswith("round 2: 1 of 5 nodes committed; the commit window closes")
            until(lambda: texts(driver, live)[0].startswith(before), what="the live round line")
            assert re.fullmatch(r" \(in (59|60) min\)", texts(driver, live)[0][len(before) :])

        run_round(world, runner, target, after_first_commit=while_open)  # while the page is open
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
        first_loss, second_loss = (r.round.scored_eval_loss for r in _rounds(world))
        assert first_loss is not None and second_loss is not None  # the validators' median
        assert second_loss < first_loss  # the plotted loss falls, as the nodes move to the target
        round_two = f"{section} [data-round='2'] .state"
        # finalized: its challenge window runs, nothing can be claimed yet
        assert texts(driver, round_two)[0].startswith("finalized (challengeable until")
        until(
            lambda: texts(driver, live)[0].startswith(
                "round 2: finalized; its challenge window ends at "
            ),
            what="the live line of a finalized round",
        )
        assert texts(driver, f"#node-loss-plot-{tid} .tick-x") == ["1", "2"]

        # round 3 opens, nobody finalizes it: abandoned after its grace period; the task can
        # no longer go on and its sponsor cancels it
        world.settle(runner, 2)
        until(lambda: texts(driver, round_two) == ["settled"], what="round 2 to settle")
        assert runner.open() == 3
        chain_env.abandonable(tid, 3)
        chain_env.ledger.abandon_round(tid, 3, chain_env.nodes[7])
        chain_env.ledger.cancel_task(tid, chain_env.sponsor)
        until(
            lambda: (
                attributes(driver, f"{section} [data-round='3'] .state", "data-state")
                == ["abandoned"]
            ),
            what="round 3 to show as abandoned",
        )
        assert texts(driver, f"{section} [data-round='3'] .state") == [
            f"abandoned by {chain_env.nodes[7].address[:10]}..."
        ]
        until(
            lambda: texts(driver, f"{section} .task-state") == ["cancelled"],
            what="the task to show as cancelled",
        )
        assert texts(driver, live) == ["task cancelled"]

        # at 800 px nothing overflows the page (tables scroll in their own box); screenshots at
        # 1280 px and 800 px (taller, to show the tables too)
        for width, height, name in (
            (1280, 1800, "dashboard.png"),
            (800, 900, None),
            (800, 2000, "dashboard-800.png"),
        ):
            driver.set_window_size(width, height)
            until(
                lambda: driver.execute_script(
                    "return [...document.querySelectorAll('.plot-area')].every("
                    "a => Math.abs(a.firstElementChild.getBoundingClientRect().width"
                    " - a.clientWidth) < 1)"
                ),
                what=f"the charts to fit {width} px",
            )
            assert driver.execute_script("return document.documentElement.scrollWidth") <= width
            if name is None:
                continue
            shot = artifacts / name
            driver.save_screenshot(str(shot))
            shot_width, shot_height = png_size(shot)  # the viewport (the window less its frame)
            assert shot_width == width and shot_height > height - 200
            assert shot.stat().st_size > 10_000
            print(f"dashboard screenshot at {width} px: {shot}")
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == []  # no script error, no failed request
    finally:
        driver.quit()
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in output


def texts(driver: Any, css: str) -> list[str]:
    """The text of every element matching ``css``, read at once (the page re-renders each
    poll, so elements found earlier go stale), hidden ones included."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", css
        )
    )


def attributes(driver: Any, css: str, name: str) -> list[str | None]:
    """Attribute ``name`` of every element matching ``css``, read at once."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".map(e => e.getAttribute(arguments[1]))",
            css,
            name,
        )
    )


def links(driver: Any, css: str) -> list[str]:
    """Where every link matching ``css`` leads (absolute URLs), read at once."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.href)", css
        )
    )


def tokens(units: int) -> str:
    """An amount as the page writes it: as every command does (``loraledger.display``), with
    the symbol, cut to 6 decimals."""
    return display.tokens(units, exact=False)


def exact(units: int) -> str:
    """An amount with every digit (what the page puts in the amount's title)."""
    return display.tokens(units, exact=True)


def assert_nice_ticks(ticks: list[str], *, log: bool) -> None:
    """At least three tick labels, evenly spaced by 1, 2 or 5 times a power of ten (powers of
    ten on a log scale)."""
    values = [float(t.replace(",", "")) for t in ticks]
    assert len(values) >= 3, ticks
    if log:
        assert all(math.log10(v) == round(math.log10(v)) for v in values), ticks
        return
    steps = {round(b - a, 12) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1, ticks
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 9) in (1, 2, 5), ticks


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG (from its IHDR chunk)."""
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return int(width), int(height)


def _rounds(world: RoundWorld) -> tuple[RoundDetail, ...]:
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


@pytest.mark.slow
def test_the_feed_shows_voided_and_abandoned_rounds_slashed_bonds_and_conflicting_proposals(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Results made by hand (their reports are not pinned): a challenge voids a round whose
    result paid an outsider, slashing its proposer's and signers' bonds; with too few bonded
    validators left it is abandoned and the task cancelled. In another task a validator's
    proposal conflicting with the finalized result is slashed."""
    env, node, watcher = embedded, embedded.nodes[0], embedded.nodes[5]
    store = EmbeddedStore(EmbeddedConfig(root=tmp_path / "store"))

    voided_task = env.create_task()
    env.join(voided_task, node)
    round_ = env.open(voided_task)
    env.commit(voided_task, round_, node)
    env.reveal_all(voided_task, round_)
    outsider = env.aggregator.address  # paid, though it submitted nothing
    result, tree = env.result(
        voided_task, round_, {node.address: 10 * TOKEN, outsider: 80 * TOKEN}, accepted=1
    )
    assert tree is not None
    voided_hash = env.ledger.result_hash(voided_task, round_, result)
    env.ledger.finalize_round(
        voided_task, round_, result, env.sign(voided_task, round_, result), env.aggregator
    )
    env.ledger.challenge_reward(
        voided_task, round_, outsider, 80 * TOKEN, tree.proof(outsider), watcher
    )
    env.abandonable(voided_task, round_)  # one bonded validator is left: no quorum
    env.ledger.abandon_round(voided_task, round_, watcher)
    cancelled = env.ledger.cancel_task(voided_task, env.sponsor)

    conflict_task = env.create_task()
    env.join(conflict_task, node)
    env.open(conflict_task)
    env.commit(conflict_task, 1, node)
    env.reveal_all(conflict_task, 1)
    liar = env.validators[2]
    lie, _ = env.result(conflict_task, 1, {}, rejected=1, label="-lie")
    lie_hash = env.ledger.propose_result(conflict_task, 1, lie, liar)
    (signed,) = env.sign(conflict_task, 1, lie, liar)
    env.ledger.attest(conflict_task, 1, lie_hash, signed, liar)
    env.finalize(conflict_task, 1, {node.address: TOKEN})
    env.ledger.slash_conflicting(conflict_task, 1, lie_hash, watcher)

    source = Source("embedded", env.chain.chain_id, env.ledger.address, "embedded")
    feed = HistoryFeed(Auditor(env.ledger, History(env.ledger), store), source, min_interval=0)
    tasks = {t["task"]["task_id"]: t for t in json.loads(feed.body())["tasks"]}

    voided = tasks[voided_task]
    assert voided["task"]["cancelled"] and voided["task"]["rounds_abandoned"] == 1
    bonds = {b["account"]: b for b in voided["task"]["bonds"]}
    assert [b["role"] for b in bonds.values()] == ["aggregator"] + ["validator"] * 3
    slashed = [outsider, env.validators[0].address, env.validators[1].address]
    assert {a: (b["held"], b["slashed"]) for a, b in bonds.items()} == {
        outsider: (0, str(AGGREGATOR_BOND)),
        slashed[1]: (0, str(VALIDATOR_BOND)),
        slashed[2]: (0, str(VALIDATOR_BOND)),
        env.validators[2].address: (str(VALIDATOR_BOND), 0),
    }
    (only,) = voided["rounds"]
    r = only["round"]
    assert (r["state"], r["epoch"], r["finalized"], r["abandoned_by"]) == (
        "abandoned",
        1,
        False,
        watcher.address,
    )
    assert (r["signers"], r["result_hash"], r["validators"]) == ([], None, [])
    (void,) = r["voids"]
    assert void | {"block": None, "tx": None} == {
        "result_hash": voided_hash.hex(),
        "challenger": watcher.address,
        "account": outsider,
        "amount": str(80 * TOKEN),
        "epoch": 1,
        "block": None,
        "tx": None,
    }
    assert [(s["account"], s["reason"]) for s in r["bond_slashes"]] == [
        (a, "reward_challenged") for a in slashed
    ]
    # each links the transaction it landed in: the challenge slashed every bond at once
    assert void["tx"]["block"] == void["block"]
    assert {s["tx"]["tx"] for s in r["bond_slashes"]} == {void["tx"]["tx"]}
    assert voided["tx"]["cancelled"] == {
        "tx": Web3.to_hex(cancelled["transactionHash"]),
        "block": cancelled["blockNumber"],
    }
    assert [s["node"] for s in only["submissions"]] == [node.address]

    conflict = tasks[conflict_task]
    (only,) = conflict["rounds"]
    r = only["round"]
    info = env.ledger.round(conflict_task, 1)
    assert (r["state"], r["epoch"], r["result_hash"], r["proposer"]) == (
        "finalized",
        0,
        info.result_hash.hex(),
        env.aggregator.address,
    )
    assert (
        r["challenge_ends"] == info.finalized_at + env.ledger.task(conflict_task).challenge_window
    )
    assert r["signers"] == [env.validators[0].address, env.validators[1].address]
    assert r["report_error"] is not None  # the hand-made report CID holds nothing
    assert [
        (p["result_hash"], p["proposer"], p["finalized_hash"], p["slasher"])
        for p in r["proposal_slashes"]
    ] == [(lie_hash.hex(), liar.address, info.result_hash.hex(), watcher.address)]
    assert [(s["account"], s["amount"], s["reason"]) for s in r["bond_slashes"]] == [
        (liar.address, str(VALIDATOR_BOND), "conflicting_result")
    ]
    (conflicting,) = r["proposal_slashes"]
    assert conflicting["tx"] == r["bond_slashes"][0]["tx"]
    assert conflicting["tx"]["block"] == conflicting["block"]
    assert not conflict["task"]["cancelled"] and r["voids"] == []


# ------------------------------------------------------------------ the feed and the endpoints


@contextmanager
def serving(feed: HistoryFeed) -> Iterator[str]:
    """The dashboard's server for ``feed`` on a free port, in a thread; yields its URL."""
    server = make_server(feed, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def embedded_feed(env: LedgerEnv, store_root: Path) -> HistoryFeed:
    store = EmbeddedStore(EmbeddedConfig(root=store_root))
    source = Source("embedded", env.chain.chain_id, env.ledger.address, str(store_root))
    return HistoryFeed(Auditor(env.ledger, History(env.ledger), store), source, min_interval=0)


def settled_round_with_a_claim(env: LedgerEnv) -> tuple[int, Any]:
    """A task whose round 1 paid two nodes and is settled; the first claimed (its receipt)."""
    task_id = env.create_task()
    env.join(task_id, env.nodes[0], env.nodes[1])
    _, tree = env.run_round(task_id, {env.nodes[0]: 10 * TOKEN, env.nodes[1]: 20 * TOKEN})
    assert tree is not None
    proof = tuple(tree.proof(env.nodes[0].address))
    receipt = env.ledger.claim(ClaimRequest(task_id, 1, 10 * TOKEN, proof), env.nodes[0])
    return task_id, receipt


def test_the_feed_names_the_token_and_the_chain_time_and_no_local_path(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    settled_round_with_a_claim(embedded)
    feed = embedded_feed(embedded, tmp_path / "store")
    body = feed.body()
    data = json.loads(body)
    token = {"address": embedded.token.address, "symbol": "LLT", "decimals": 18}
    assert data["token"] == token and [t["token"] for t in data["tasks"]] == [token]
    latest = embedded.chain.w3.eth.get_block("latest")
    assert (data["block"], data["chain_time"]) == (latest["number"], latest["timestamp"])
    assert data["source"]["store"] == "embedded store"
    assert str(tmp_path).encode() not in body


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("/home/alice/.loraledger/store", "embedded store"),
        ("embedded", "embedded store"),
        ("http://127.0.0.1:5001", "http://127.0.0.1:5001"),
        ("https://user:secret@ipfs.example.org:5001/api/v0?x=1", "https://ipfs.example.org:5001"),
        ("http://[::1]:5001/", "http://[::1]:5001"),
    ],
)
def test_the_page_names_a_store_without_paths_or_credentials(location: str, shown: str) -> None:
    assert public_store(location) == shown


def test_the_feed_links_each_event_to_the_transaction_it_landed_in(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    task_id, claim = settled_round_with_a_claim(embedded)
    feed = embedded_feed(embedded, tmp_path / "store")
    (entry,) = (t for t in json.loads(feed.body())["tasks"] if t["task"]["task_id"] == task_id)
    history = History(embedded.ledger)

    def called(landed: dict[str, Any]) -> tuple[str, list[str]]:
        """The function the linked transaction called and the events it emitted, read back."""
        tx = feed.transaction(landed["tx"])
        assert tx is not None and tx["block"] == landed["block"] and tx["status"] == "success"
        return tx["function"], [e["event"] for e in tx["events"] if e["contract"] == "ledger"]

    assert entry["tx"]["created"]["block"] == history.task_created(task_id).block
    assert called(entry["tx"]["created"])[0] == "createTask"
    assert entry["tx"]["cancelled"] is None
    (detail,) = entry["rounds"]
    assert called(detail["tx"]["opened"]) == ("openRound", ["RoundOpened"])
    finalized = history.finalization(task_id, 1)
    assert finalized is not None and detail["tx"]["finalized"]["block"] == finalized.block
    assert called(detail["tx"]["finalized"])[0] == "finalizeRound"
    subs = {s["node"]: s for s in detail["submissions"]}
    for node in (embedded.nodes[0].address, embedded.nodes[1].address):
        assert called(subs[node]["tx"]["commit"]) == ("commitUpdate", ["UpdateCommitted"])
        assert called(subs[node]["tx"]["reveal"]) == ("revealUpdate", ["UpdateRevealed"])
        assert subs[node]["tx"]["reveal"]["block"] == subs[node]["block"]
    assert subs[embedded.nodes[0].address]["tx"]["claim"] == {
        "tx": Web3.to_hex(claim["transactionHash"]),
        "block": claim["blockNumber"],
    }
    assert subs[embedded.nodes[1].address]["tx"]["claim"] is None  # never claimed


def test_the_transaction_and_block_views_check_their_input(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """400 for anything but a transaction hash or a decimal block number, 404 for what the
    chain does not have, else the receipt or the block; GET and HEAD only."""
    _, claim = settled_round_with_a_claim(embedded)
    claim_hash = Web3.to_hex(claim["transactionHash"])
    with serving(embedded_feed(embedded, tmp_path / "store")) as url:
        for bad in ("0x12", "0x" + "zz" * 32, "ab" * 32, "0x" + "ab" * 33, claim_hash + "/x"):
            assert httpx.get(f"{url}/api/tx/{bad}").status_code == 400, bad
        for bad in ("x", "-1", "007", "1.5", "0x10", "1e3", "9" * 19, ""):
            assert httpx.get(f"{url}/api/block/{bad}").status_code == 400, bad
        unknown = httpx.get(f"{url}/api/tx/0x{'ab' * 32}")
        assert unknown.status_code == 404 and "no transaction" in unknown.json()["error"]
        head = embedded.chain.w3.eth.block_number
        assert httpx.get(f"{url}/api/block/{head + 100}").status_code == 404

        tx = httpx.get(f"{url}/api/tx/{claim_hash.upper().replace('0X', '0x')}")
        assert tx.status_code == 200
        body = tx.json()
        assert (body["hash"], body["block"], body["status"]) == (
            claim_hash,
            claim["blockNumber"],
            "success",
        )
        assert (body["from"], body["to"], body["to_label"], body["function"]) == (
            embedded.nodes[0].address,
            embedded.ledger.address,
            "ledger",
            "claim",
        )
        assert body["gas_used"] == claim["gasUsed"]
        events = {(e["contract"], e["event"]) for e in body["events"]}
        assert {("ledger", "RewardClaimed"), ("token LLT", "Transfer")} <= events
        block = httpx.get(f"{url}/api/block/{claim['blockNumber']}").json()
        assert block["number"] == claim["blockNumber"]
        assert [(t["hash"], t["function"]) for t in block["transactions"]] == [
            (claim_hash, "claim")
        ]
        assert httpx.head(f"{url}/api/tx/{claim_hash}").content == b""
        assert httpx.post(f"{url}/api/tx/{claim_hash}").status_code == 501
        assert httpx.get(f"{url}/api/nothing").status_code == 404


def test_the_live_line_says_what_the_task_waits_for_as_the_cli_does(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    env = embedded
    task_id = env.create_task()
    env.join(task_id, env.nodes[0], env.nodes[1])
    feed = embedded_feed(env, tmp_path / "store")

    def live() -> dict[str, Any]:
        tasks = json.loads(feed.body())["tasks"]
        (entry,) = (t for t in tasks if t["task"]["task_id"] == task_id)
        return dict(entry["live"])

    assert live() == {
        "round": 1,
        "state": "unopened",
        "text": "waiting for round 1 to be opened",
        "deadline": None,
    }
    round_ = env.open(task_id)
    env.commit(task_id, round_, env.nodes[0])
    info, now = env.ledger.round(task_id, round_), env.chain.timestamp()
    said = awaiting(
        info, env.ledger.round_state(task_id, round_), now, quorum=2, challenge_window=600
    )
    assert said.startswith("round 1: 1 of 2 nodes committed; the commit window closes at ")
    assert live() == {
        "round": 1,
        "state": "open",
        "text": said,
        "deadline": info.deadline,
        "until": display.relative(info.deadline - now),  # the text ends with it
    }
    assert said.endswith(f"({live()['until']})")
    env.finalize(task_id, round_, {env.nodes[0].address: TOKEN})
    assert live()["text"].startswith("round 1: finalized; its challenge window ends at ")
    env.settle(task_id, round_)
    assert live()["text"] == "waiting for round 2 to be opened"
    info = env.ledger.round(task_id, round_)
    env.advance_to(info.finalized_at + 600 + env.ledger.task(task_id).grace_period)  # idle
    env.ledger.cancel_task(task_id, env.sponsor)
    assert live() == {
        "round": None,
        "state": "cancelled",
        "text": "task cancelled",
        "deadline": None,
    }
