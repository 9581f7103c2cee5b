"""History rebuilds commitments, reveals and slashes from the ledger's logs, in chain order."""

from __future__ import annotations

from chain.bindings import commitment_hash
from chain.events import History
from tests.support.chain import TOKEN, LedgerEnv


def test_commits_come_in_chain_order_and_reveals_carry_the_cid_digest_and_examples(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, b, c = env.nodes[:3]
    env.join(task_id, a, b, c)
    round_, _ = env.ledger.open_next_round(task_id, env.aggregator)
    committed = [
        env.commit(task_id, round_, node, f"u-{i}", examples=10 + i)
        for i, node in enumerate((b, c, a))
    ]
    env.reveal(task_id, round_, a)  # reveals in another order than the commitments
    env.reveal(task_id, round_, b)
    history = History(env.ledger, env.deployment.block)

    commits = history.commits(task_id, round_)
    assert [e.node for e in commits] == [b.address, c.address, a.address]
    assert [e.commitment for e in commits] == [
        commitment_hash(task_id, round_, x.node.address, x.digest, x.examples, x.salt)
        for x in committed
    ]
    positions = [(e.block, e.tx_index, e.log_index) for e in commits]
    assert positions == sorted(positions) and len(set(positions)) == 3
    receipt = env.chain.w3.eth.get_transaction_receipt(
        env.chain.w3.eth.get_block(commits[0].block)["transactions"][commits[0].tx_index]
    )
    assert receipt["transactionIndex"] == commits[0].tx_index

    reveals = history.reveals(task_id, round_)
    assert [(e.node, e.cid, e.digest, e.num_examples) for e in reveals] == [
        (a.address, committed[2].cid, committed[2].digest, 12),
        (b.address, committed[0].cid, committed[0].digest, 10),
    ]
    assert history.submissions(task_id, round_) == reveals  # c committed and never revealed
    assert history.commits(task_id, round_ + 1) == [] == history.reveals(task_id, round_ + 1)


def test_slashes_carry_the_round_reason_and_evidence_cid(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_, _ = env.ledger.open_next_round(task_id, env.aggregator)
    env.submit(task_id, round_, node)
    env.finalize(task_id, round_, {}, rejected=1)
    env.ledger.slash(task_id, round_, node.address, 2 * TOKEN, 5, "bafy-evidence", env.aggregator)

    (slash,) = History(env.ledger, env.deployment.block).slashes(task_id)
    assert (slash.round, slash.node, slash.amount, slash.reason, slash.evidence_cid) == (
        round_,
        node.address,
        2 * TOKEN,
        5,
        "bafy-evidence",
    )
