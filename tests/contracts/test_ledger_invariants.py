"""Property test of the ledger as a state machine (embedded chain).

Random sequences of funding, joining, leaving, rounds, commitments, reveals, finalizations,
claims, slashing and withdrawals; after every step the accounting invariants hold and every
action that succeeded was allowed by the protocol. ``roundState`` agrees with what the contract
allows: a commitment lands only in an ``OPEN`` round, a reveal only in a ``REVEALING`` one, a
finalization only in a ``CLOSED`` one, a slash and a round's opening only after (the last) round
is ``FINALIZED``, and every refusal on those grounds is ``LedgerUnexpectedRoundState`` naming
the state the view reported. Once every joined node has committed, no join reopens the commit
phase; finalizations count exactly the reveals.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chain import errors
from chain.bindings import ClaimRequest
from chain.errors import ContractRevert
from chain.merkle import RewardTree
from chain.round_state import RoundState
from tests.support.chain import TOKEN, LedgerEnv

NODES = 4


@pytest.mark.slow
def test_ledger_state_machine(embedded_env: LedgerEnv) -> None:
    env = embedded_env

    class LedgerMachine(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            self.snapshot = env.snapshot()
            self.task = env.create_task(
                fund=150 * TOKEN, max_rounds=4, submission_window=100, reveal_window=100
            )
            self.nodes = env.nodes[:NODES]
            self.joined: set[str] = set()
            self.committed: dict[int, set[str]] = {}
            self.revealed: dict[int, set[str]] = {}
            self.trees: dict[int, RewardTree] = {}
            self.claimed: set[tuple[int, str]] = set()
            self.stakes: dict[str, int] = {}

        def teardown(self) -> None:
            env.revert(self.snapshot)

        def _try(self, action) -> bool:
            try:
                action()
            except ContractRevert:
                return False
            return True

        def _try_in_state(self, round_: int, allowed: RoundState, action) -> bool:
            """Run ``action`` on ``round_``: it succeeds only if roundState said ``allowed``
            before, and a refusal for the round's state names the state the view reported."""
            before = env.ledger.round_state(self.task, round_)
            try:
                action()
            except errors.LedgerUnexpectedRoundState as exc:
                assert before is not allowed, f"{exc} although roundState said {before.name}"
                assert (exc.round, exc.current, exc.expected) == (round_, before, {allowed})
                return False
            except ContractRevert:
                return False
            assert before is allowed, f"succeeded in state {before.name}"
            return True

        @rule(amount=st.integers(min_value=1, max_value=200))
        def fund(self, amount: int) -> None:
            env.token.approve(env.ledger.address, amount * TOKEN, env.sponsor)
            self._try(lambda: env.ledger.fund_task(self.task, amount * TOKEN, env.sponsor))

        @rule(i=st.integers(0, NODES - 1))
        def join(self, i: int) -> None:
            node = self.nodes[i]
            env.token.approve(env.ledger.address, 10 * TOKEN, node)
            if self._try(lambda: env.ledger.join(self.task, node)):
                assert node.address not in self.joined
                self.joined.add(node.address)
                self.stakes[node.address] = 10 * TOKEN

        @rule(i=st.integers(0, NODES - 1))
        def leave(self, i: int) -> None:
            node = self.nodes[i]
            if self._try(lambda: env.ledger.leave(self.task, node)):
                assert node.address in self.joined
                open_round = env.ledger.open_round(self.task)
                assert node.address not in self.committed.get(open_round, set())
                self.joined.discard(node.address)
                self.stakes.pop(node.address)

        @rule()
        def open_round(self) -> None:
            last = env.ledger.task(self.task).rounds_opened
            if last == 0:
                self._try(lambda: env.ledger.open_next_round(self.task, env.aggregator))
            elif self._try_in_state(
                last,
                RoundState.FINALIZED,
                lambda: env.ledger.open_next_round(self.task, env.aggregator),
            ):
                assert env.ledger.round_state(self.task, last + 1) is not RoundState.UNOPENED

        @rule(i=st.integers(0, NODES - 1), label=st.integers(0, 3))
        def commit(self, i: int, label: int) -> None:
            node = self.nodes[i]
            round_ = env.ledger.open_round(self.task)
            target = max(round_, 1)

            def action() -> None:
                env.commit(self.task, target, node, f"{node.address}-{round_}-{label}")

            if (
                node.address not in self.joined
                or env.ledger.member(self.task, node.address).stake < 10 * TOKEN
            ):
                assert not self._try(action)  # membership is checked before the round's state
            elif self._try_in_state(target, RoundState.OPEN, action):
                assert round_ != 0 and node.address in self.joined
                assert node.address not in self.committed.setdefault(round_, set()), (
                    "two commitments in one round"
                )
                self.committed[round_].add(node.address)
                if self.committed[round_] >= self.joined:
                    assert env.ledger.round(self.task, round_).all_committed

        @rule(i=st.integers(0, NODES - 1))
        def reveal(self, i: int) -> None:
            node = self.nodes[i]
            round_ = env.ledger.open_round(self.task)
            target = max(round_, 1)
            if (self.task, target, node.address) not in env.pending:
                # nothing (left) to reveal: refused, whatever the round's state
                assert not self._try(
                    lambda: env.ledger.reveal_update(
                        self.task, target, "bafy", b"\x01" * 32, 1, b"\x02" * 32, node
                    )
                )
                return
            if self._try_in_state(
                target, RoundState.REVEALING, lambda: env.reveal(self.task, target, node)
            ):
                assert node.address in self.committed[target]
                assert node.address not in self.revealed.setdefault(target, set())
                self.revealed[target].add(node.address)

        @rule()
        def wait(self) -> None:
            env.chain.advance_time(150)

        @rule(share=st.integers(1, 60))
        def finalize(self, share: int) -> None:
            round_ = env.ledger.open_round(self.task)
            if round_ == 0:
                return
            winners = sorted(self.revealed.get(round_, set()))
            rewards = dict.fromkeys(winners, share * TOKEN)
            total = sum(rewards.values())
            if total > 100 * TOKEN:
                return
            before = env.ledger.round_state(self.task, round_)
            try:
                tree = env.finalize(self.task, round_, rewards, reveal=False)
            except errors.LedgerUnexpectedRoundState as exc:
                assert before is not RoundState.CLOSED and (exc.current, exc.expected) == (
                    before,
                    {RoundState.CLOSED},
                )
                return
            except ContractRevert:
                return
            assert before is RoundState.CLOSED, f"finalized in state {before.name}"
            assert env.ledger.round(self.task, round_).finalized
            assert env.ledger.round_state(self.task, round_) is RoundState.FINALIZED
            if tree is not None:
                self.trees[round_] = tree

        @rule(i=st.integers(0, NODES - 1), round_=st.integers(1, 4))
        def claim(self, i: int, round_: int) -> None:
            node = self.nodes[i]
            tree = self.trees.get(round_)
            if tree is None or node.address not in {e.node for e in tree.entries}:
                return
            amount = next(e.amount for e in tree.entries if e.node == node.address)
            request = ClaimRequest(self.task, round_, amount, tuple(tree.proof(node.address)))
            if self._try(lambda: env.ledger.claim(request, node)):
                assert (round_, node.address) not in self.claimed, "claimed twice"
                self.claimed.add((round_, node.address))

        @rule(i=st.integers(0, NODES - 1), round_=st.integers(1, 4), amount=st.integers(1, 12))
        def slash(self, i: int, round_: int, amount: int) -> None:
            node = self.nodes[i]

            def action() -> None:
                env.ledger.slash(
                    self.task, round_, node.address, amount * TOKEN, 1, "bafy-ev", env.aggregator
                )

            if self._try_in_state(round_, RoundState.FINALIZED, action):
                assert node.address in self.committed.get(round_, set())
                self.stakes[node.address] -= amount * TOKEN
                assert self.stakes[node.address] >= 0

        @rule()
        def withdraw(self) -> None:
            self._try(lambda: env.ledger.withdraw_remainder(self.task, env.sponsor))

        @invariant()
        def round_states_agree_with_the_rounds(self) -> None:
            task = env.ledger.task(self.task)
            last = task.rounds_opened
            assert env.ledger.round_state(self.task, 0) is RoundState.UNOPENED
            assert env.ledger.round_state(self.task, last + 1) is RoundState.UNOPENED
            for round_ in range(1, last):
                assert env.ledger.round_state(self.task, round_) is RoundState.FINALIZED
            if last:
                state = env.ledger.round_state(self.task, last)
                assert (state is RoundState.FINALIZED) == env.ledger.round(
                    self.task, last
                ).finalized
                assert env.ledger.open_round(self.task) == (last if state.pending else 0)
                assert env.ledger.is_complete(self.task) == (
                    last == task.max_rounds and not state.pending
                )

        @invariant()
        def accounting_holds(self) -> None:
            task = env.ledger.task(self.task)
            assert task.paid <= task.reserved
            assert task.reserved + task.withdrawn <= task.funded
            held = task.funded - task.paid - task.withdrawn + sum(self.stakes.values())
            assert env.token.balance_of(env.ledger.address) == held
            assert task.active_nodes == len(self.joined)
            for round_, tree in self.trees.items():
                assert env.ledger.round(self.task, round_).claimed <= tree.total
            for round_ in range(1, task.rounds_opened + 1):
                r = env.ledger.round(self.task, round_)
                assert r.commits == len(self.committed.get(round_, set()))
                assert r.reveals == len(self.revealed.get(round_, set())) <= r.commits
                if r.finalized:
                    assert r.accepted + r.rejected == r.reveals

    LedgerMachine.TestCase.settings = settings(
        max_examples=10,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    LedgerMachine.TestCase().runTest()
