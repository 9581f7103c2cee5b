"""``loraledger dashboard`` in a real headless browser (Debian's chromium through Selenium):
rounds run on a real Ganache with the task's validators in process, the dashboard runs as its
own process with only the deployment record, and the page shows the task with its roles and
bonds, the rounds with their state, verdict counts and reasons, the validators whose sheets
each round used (agreement, pay, signatures), each node's reward and the loss plot, and picks
up a round finalized, settled, abandoned and a task cancelled while it is open. The feed itself
shows challenges that voided a round and the bonds they slashed (on the embedded chain)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from aggregator.audit import Auditor, RoundDetail
from aggregator.round import RoundOutcome, RoundRunner, RoundSettings
from chain import local
from chain.bindings import ClaimRequest
from chain.deployments import save_deployment
from chain.events import History
from dashboard.server import HistoryFeed, Source
from ipfs import EmbeddedConfig, EmbeddedStore
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
    world: RoundWorld, runner: RoundRunner, target: dict[str, torch.Tensor]
) -> RoundOutcome:
    """Four nodes step halfway towards ``target`` from the round's start adapter; a fifth sends a
    x100 update (a norm outlier). The task's validators finalize it (in its challenge window)."""
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
        assert texts(driver, f"{bonds} .bond-slashed") == ["0"] * 4
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
        first_loss, second_loss = (r.round.scored_eval_loss for r in _rounds(world))
        assert first_loss is not None and second_loss is not None  # the validators' median
        assert second_loss < first_loss  # the plotted loss falls, as the nodes move to the target
        round_two = f"{section} [data-round='2'] .state"
        # finalized: its challenge window runs, nothing can be claimed yet
        assert texts(driver, round_two)[0].startswith("finalized (challengeable until")

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
        shot = artifacts / "dashboard.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        print(f"dashboard screenshot: {shot}")
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


def tokens(units: int) -> str:
    """Whole tokens as the page writes them (at most 4 decimals, truncated)."""
    whole, frac = divmod(units, 10**18)
    digits = f"{frac:018d}"[:4].rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


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
    env.ledger.cancel_task(voided_task, env.sponsor)

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
    assert void | {"block": None} == {
        "result_hash": voided_hash.hex(),
        "challenger": watcher.address,
        "account": outsider,
        "amount": str(80 * TOKEN),
        "epoch": 1,
        "block": None,
    }
    assert [(s["account"], s["reason"]) for s in r["bond_slashes"]] == [
        (a, "reward_challenged") for a in slashed
    ]
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
    assert not conflict["task"]["cancelled"] and r["voids"] == []
