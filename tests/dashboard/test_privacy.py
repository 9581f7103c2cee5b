"""The dashboard shows a task's privacy policy and each round's epsilon as ``audit rounds``
does: the feed carries the policy in words and every round's epsilon (under node-level DP the
global adapters' total through it, else the most an accepted update states), and the page, in
a real headless browser, writes them in the task's facts and its rounds table. Rounds are
finalized with reports made by hand (tests/scripts/privacy_rounds.py) on the embedded chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.test_server import browser, embedded_feed, serving, until
from tests.scripts.privacy_rounds import (
    EXAMPLE_POLICY,
    NODE_POLICY,
    Stated,
    node_round_privacy,
    private_round,
)
from tests.support.chain import LedgerEnv


def private_tasks(env: LedgerEnv, store_root: Path) -> dict[str, Any]:
    """A node-level task with two rounds, an example-level one with a round, a task without a
    policy with a round, and the feed's JSON of each (by kind)."""
    feed = embedded_feed(env, store_root)
    store = feed.auditor.store
    a, b, c = env.nodes[:3]
    node_task = env.create_task(privacy=NODE_POLICY)
    example_task = env.create_task(privacy=EXAMPLE_POLICY)
    plain_task = env.create_task()
    env.join(node_task, a, b, c)
    env.join(example_task, a, b, c)
    env.join(plain_task, a)
    private_round(
        env,
        store,
        node_task,
        [Stated(a, "accepted", 4.0), Stated(b, "accepted", 4.0)],
        node_round_privacy(NODE_POLICY, [2]),
    )
    private_round(
        env,
        store,
        node_task,
        [Stated(n, "accepted", 4.0) for n in (a, b, c)],
        node_round_privacy(NODE_POLICY, [2, 3]),
    )
    private_round(
        env,
        store,
        example_task,
        [Stated(a, "accepted", 0.8), Stated(b, "accepted", 1.25), Stated(c, "rejected", 5.0)],
    )
    private_round(env, store, plain_task, [Stated(a, "accepted", None)])
    tasks = {t["task"]["task_id"]: t for t in json.loads(feed.body())["tasks"]}
    return {
        "feed": feed,
        "ids": {"node": node_task, "example": example_task, "plain": plain_task},
        "node": tasks[node_task],
        "example": tasks[example_task],
        "plain": tasks[plain_task],
    }


def test_the_feed_carries_each_tasks_privacy_policy_and_each_rounds_epsilon(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    made = private_tasks(embedded, tmp_path / "store")
    node, example, plain = made["node"], made["example"], made["plain"]

    assert node["task"]["privacy"] == NODE_POLICY.as_json()
    assert node["privacy"] == {"line": NODE_POLICY.describe(), "epsilon_shown": "total"}
    totals = [node_round_privacy(NODE_POLICY, [2]).total]
    totals.append(node_round_privacy(NODE_POLICY, [2, 3]).total)
    assert [d["epsilon"] for d in node["rounds"]] == totals
    assert [d["round"]["epsilon_total"] for d in node["rounds"]] == totals
    assert [d["round"]["epsilon_max_update"] for d in node["rounds"]] == [4.0, 4.0]

    assert example["task"]["privacy"] == EXAMPLE_POLICY.as_json()
    assert example["privacy"] == {
        "line": EXAMPLE_POLICY.describe(),
        "epsilon_shown": "largest update",
    }
    (detail,) = example["rounds"]
    assert (detail["epsilon"], detail["round"]["epsilon_total"]) == (1.25, None)

    assert plain["task"]["privacy"]["mode"] == "none"
    assert plain["privacy"] == {"line": "none required", "epsilon_shown": None}
    (detail,) = plain["rounds"]
    assert detail["epsilon"] is None


@pytest.mark.slow
def test_the_page_shows_the_privacy_policy_and_each_rounds_epsilon(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser()  # fails first, and clearly, when chromium is missing
    made = private_tasks(embedded, tmp_path / "store")
    ids = made["ids"]
    try:
        with serving(made["feed"]) as url:
            driver.get(url + "/")

            def section(kind: str) -> str:
                return f"[data-testid='task-{ids[kind]}']"

            until(
                lambda: driver.find_element(By.CSS_SELECTOR, f"{section('plain')} [data-round]"),
                what="the tasks to render",
            )

            def text(selector: str) -> str:
                return str(driver.find_element(By.CSS_SELECTOR, selector).text)

            def cells(kind: str, name: str) -> list[str]:
                found = driver.find_elements(By.CSS_SELECTOR, f"{section(kind)} {name}")
                return [str(cell.text) for cell in found]

            for kind, policy in (("node", NODE_POLICY), ("example", EXAMPLE_POLICY)):
                shown = text(f"[data-testid='privacy-{ids[kind]}']")
                assert shown == f"privacy: {policy.describe()}"
            assert text(f"[data-testid='privacy-{ids['plain']}']") == "privacy: none required"

            totals = [d["epsilon"] for d in made["node"]["rounds"]]
            assert cells("node", "table.rounds th.epsilon") == ["epsilon (total)"]
            assert cells("node", "td.epsilon") == [f"{t:.3f}" for t in totals]
            assert cells("example", "th.epsilon") == ["epsilon (largest update)"]
            assert cells("example", "td.epsilon") == ["1.250"]
            assert cells("plain", "th.epsilon") == [] and cells("plain", "td.epsilon") == []
            severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == []  # no script error
    finally:
        driver.quit()
