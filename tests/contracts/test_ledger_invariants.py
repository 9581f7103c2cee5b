"""Property test of the ledger as a state machine (embedded chain).

Hypothesis drives random sequences of every party's actions over up to two tasks: the sponsor
creates, funds and cancels tasks and withdraws remainders; the aggregator and validators post
and withdraw bonds; nodes join, commit, reveal, claim, leave and withdraw their stakes; the
aggregator opens rounds and proposes or finalizes honest results and lies; validators post
score sheets, propose and attest; anyone challenges lies, reports conflicting proposals,
executes slashes and abandons rounds; and the clock jumps to the next deadline. A party that
vanishes simply never acts again (some bonds are never posted). After every step:

(a) the ledger's token balance equals every stake, every bond held, and every task's
    ``funded - paid - withdrawn``; ``paid <= reserved`` and ``reserved + withdrawn <= funded``;
    the rounds before a task's last have ended, and ``open_round`` agrees with ``roundState``;
(b) every deposit stays recoverable: in a snapshot, jump the clock far ahead, abandon every
    unfinished round and cancel every task that is not complete; then every member's
    ``withdrawStake``, every bond's ``withdrawBond``, every sponsor's ``withdrawRemainder`` and
    every unclaimed reward's ``claim`` succeed and leave the ledger holding nothing. The
    snapshot is then reverted and the sequence goes on. (A step that changed nothing on chain,
    a refused action, is not checked again.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chain.bindings import ZERO_DIGEST, ClaimRequest, Finalization
from chain.errors import ContractRevert
from chain.merkle import RewardTree, SlashEntry, SlashTree
from chain.round_state import RoundState
from tests.support.chain import TOKEN, LedgerEnv

NODES = 3
MAX_TASKS = 2
FAR_FUTURE = 10**8  # seconds: past every window and grace period of the tasks below
TASK_IDS = st.integers(0, MAX_TASKS - 1)  # which task (modulo the tasks created)


@dataclass(frozen=True)
class Proposed:
    """A result the machine proposed or finalized, with what it needs to claim and slash."""

    task_id: int
    round: int
    result: Finalization
    tree: RewardTree | None
    owners: dict[str, LocalAccount]  # reward leaf -> the account that claims it
    slashes: SlashTree | None


@pytest.mark.slow
def test_ledger_state_machine(embedded_env: LedgerEnv) -> None:
    env = embedded_env
    tester = env.chain.w3.provider.ethereum_tester
    nodes = env.nodes[:NODES]
    parties = [env.aggregator, *env.validators]

    class LedgerMachine(RuleBasedStateMachine):
        @initialize(
            fund=st.sampled_from([400, 150, 60]),
            missing=st.sampled_from([None, None, None, 0, 3]),
            members=st.sets(st.integers(0, NODES - 1), min_size=1),
            max_rounds=st.integers(1, 3),
        )
        def setup(self, fund: int, missing: int | None, members: set[int], max_rounds: int) -> None:
            """A first task, funded, with some members and its parties' bonds; ``missing``: a
            party that never shows up (0: the aggregator, 3: a validator)."""
            self.snapshot = env.snapshot()
            self.tasks: list[int] = []
            self.revealed: dict[tuple[int, int], list[LocalAccount]] = {}
            self.proposed: dict[bytes, Proposed] = {}
            self.labels = 0
            self.checked_block = b""
            task_id = self._create(fund, max_rounds, aggregator_bond=5 * TOKEN)
            env.post_bonds(task_id, *(p for i, p in enumerate(parties) if i != missing))
            env.join(task_id, *(nodes[i] for i in sorted(members)))

        def teardown(self) -> None:
            env.revert(self.snapshot)

        # ------------------------------------------------------------ helpers

        @staticmethod
        def _try(name: str, action: Callable[[], Any]) -> bool:
            """Run a party's action; a refusal is a normal outcome (counted as a Hypothesis
            event: ``--hypothesis-show-statistics``)."""
            try:
                action()
            except ContractRevert as exc:
                event(f"{name}: {exc.name}")
                return False
            event(f"{name}: done")
            return True

        def _create(self, fund: int, max_rounds: int, aggregator_bond: int) -> int:
            task_id = env.create_task(
                fund=fund * TOKEN,
                bonds=False,
                max_rounds=max_rounds,
                aggregator_bond=aggregator_bond,
                validator_bond=2 * TOKEN,
                submission_window=100,
                reveal_window=100,
                challenge_window=100,
                slash_window=100,
                grace_period=200,
            )
            self.tasks.append(task_id)
            return task_id

        def _last(self, t: int) -> tuple[int, int, RoundState]:
            """The task picked by ``t``, its last round and that round's state."""
            task_id = self.tasks[t % len(self.tasks)]
            last = env.ledger.task(task_id).rounds_opened
            return task_id, last, env.ledger.round_state(task_id, last)

        def _build(self, task_id: int, round_: int, honest: bool, slash: bool) -> Proposed:
            """An honest result pays every revealer 10 (and may slash the first); a lie pays
            the aggregator, who submitted nothing."""
            revealers = self.revealed.get((task_id, round_), [])
            owners = (
                {n.address: n for n in revealers}
                if honest
                else ({env.aggregator.address: env.aggregator} if revealers else {})
            )
            slashes = (
                SlashTree(task_id, round_, [SlashEntry(revealers[0].address, 3 * TOKEN, 1, "ev")])
                if slash and revealers
                else None
            )
            self.labels += 1
            result, tree = env.result(
                task_id,
                round_,
                dict.fromkeys(owners, 10 * TOKEN),
                accepted=len(revealers),
                slash_root=slashes.root if slashes else ZERO_DIGEST,
                label=f"-{self.labels}",
            )
            return Proposed(task_id, round_, result, tree, owners, slashes)

        def _record(self, proposed: Proposed) -> bytes:
            result_hash = env.ledger.result_hash(proposed.task_id, proposed.round, proposed.result)
            self.proposed[result_hash] = proposed
            return result_hash

        def _standing(self, task_id: int, round_: int) -> Proposed | None:
            return self.proposed.get(env.ledger.round(task_id, round_).result_hash)

        def _signers(self, task_id: int, colluding: bool) -> list[LocalAccount]:
            """Validators that sign: the first two (who collude on a lie), or every bonded one."""
            if colluding:
                return env.validators[:2]
            bonded = [v for v in env.validators if env.ledger.bond_of(task_id, v.address).active]
            return bonded[: env.ledger.task(task_id).quorum]

        # ------------------------------------------------------------ the protocol moves on

        def _advance(self, t: int, data: st.DataObject) -> None:
            """The next step of the task's protocol, by whoever takes it, with random choices:
            open a round; some members commit; some reveal; validators post sheets and a
            result (honest, slashing, or a lie paying the aggregator) is finalized or proposed
            and attested by some validators; a finalized lie is challenged; settled rewards
            are claimed and slashes executed."""
            task_id, last, state = self._last(t)
            some_nodes = st.sets(st.integers(0, NODES - 1))
            if last == 0 or state.final:
                self._try("open", lambda: env.open(task_id))
                if state is RoundState.SETTLED:
                    for i in sorted(data.draw(some_nodes, label="claimers")):
                        self._claim_all(task_id, last, nodes[i])
                    self._execute_slashes(task_id, last)
            elif state is RoundState.OPEN:
                for i in sorted(data.draw(some_nodes, label="committers")):
                    self._try("commit", lambda n=nodes[i]: env.commit(task_id, last, n))
                if data.draw(st.booleans(), label="end the commit phase"):
                    env.end_commit_phase(task_id, last)
            elif state is RoundState.REVEALING:
                for i in sorted(data.draw(some_nodes, label="revealers")):
                    if (task_id, last, nodes[i].address) in env.pending and self._try(
                        "reveal", lambda n=nodes[i]: env.reveal(task_id, last, n)
                    ):
                        self.revealed.setdefault((task_id, last), []).append(nodes[i])
                if data.draw(st.booleans(), label="end the reveal phase"):
                    env.close(task_id, last)
            elif state is RoundState.CLOSED:
                for v in sorted(data.draw(st.sets(st.integers(0, 2)), label="sheets")):
                    digest = bytes([v + 1]) * 32
                    self._try(
                        "post scores",
                        lambda s=env.validators[v], d=digest: env.ledger.post_scores(
                            task_id, last, d, "bafy-s", s
                        ),
                    )
                self._result(
                    task_id,
                    last,
                    kind=data.draw(st.sampled_from(["honest", "slashing", "lie"]), label="kind"),
                    proposer=data.draw(st.integers(0, 3), label="proposer"),
                    signers=data.draw(st.sets(st.integers(0, 2)), label="signers"),
                    at_once=data.draw(st.booleans(), label="at once"),
                )
            elif state is RoundState.FINALIZED:
                self._challenge(task_id, last)

        @rule(t=TASK_IDS, data=st.data())
        def advance(self, t: int, data: st.DataObject) -> None:
            self._advance(t, data)

        @rule(t=TASK_IDS, data=st.data())
        def advance_more(self, t: int, data: st.DataObject) -> None:
            """(The protocol's progress, drawn as often again as any disruption.)"""
            self._advance(t, data)

        def _result(
            self,
            task_id: int,
            last: int,
            kind: str,
            proposer: int,
            signers: set[int],
            at_once: bool,
        ) -> None:
            proposed = self._build(task_id, last, honest=kind != "lie", slash=kind == "slashing")
            chosen = [env.validators[v] for v in sorted(signers)]
            if at_once:
                attestations = env.sign(task_id, last, proposed.result, *chosen)
                if self._try(
                    f"finalize {kind}",
                    lambda: env.ledger.finalize_round(
                        task_id, last, proposed.result, attestations, parties[proposer]
                    ),
                ):
                    self._record(proposed)
                return
            if not self._try(
                f"propose {kind}",
                lambda: env.ledger.propose_result(
                    task_id, last, proposed.result, parties[proposer]
                ),
            ):
                return
            result_hash = self._record(proposed)
            for validator in chosen:
                (signed,) = env.sign(task_id, last, proposed.result, validator)
                self._try(
                    f"attest {kind}",
                    lambda s=signed: env.ledger.attest(task_id, last, result_hash, s, nodes[0]),
                )

        def _claim_all(self, task_id: int, last: int, node: LocalAccount) -> None:
            for round_ in range(1, last + 1):
                proposed = self._standing(task_id, round_)
                if proposed and proposed.tree and node.address in proposed.owners:
                    if env.ledger.has_claimed(task_id, round_, node.address):
                        continue
                    proof = tuple(proposed.tree.proof(node.address))
                    request = ClaimRequest(task_id, round_, 10 * TOKEN, proof)
                    self._try("claim", lambda r=request: env.ledger.claim(r, node))

        def _challenge(self, task_id: int, last: int) -> None:
            proposed = self._standing(task_id, last)
            for entry in proposed.tree.entries if proposed and proposed.tree else ():
                if not env.ledger.submission(task_id, last, entry.node).revealed:
                    proof = proposed.tree.proof(entry.node)
                    self._try(
                        "challenge",
                        lambda e=entry, p=proof: env.ledger.challenge_reward(
                            task_id, last, e.node, e.amount, p, nodes[1]
                        ),
                    )

        def _execute_slashes(self, task_id: int, last: int) -> None:
            for round_ in range(1, last + 1):
                proposed = self._standing(task_id, round_)
                if proposed and proposed.slashes:
                    (entry,) = proposed.slashes.entries
                    proof = proposed.slashes.proof(entry)
                    self._try(
                        "execute slash",
                        lambda r=round_, e=entry, p=proof: env.ledger.execute_slash(
                            task_id, r, e, p, nodes[2]
                        ),
                    )

        # ------------------------------------------------------------ disruptions

        @precondition(lambda self: len(self.tasks) < MAX_TASKS)
        @rule(
            fund=st.sampled_from([400, 150, 0]),
            bonds=st.booleans(),
            max_rounds=st.integers(1, 3),
            aggregator_bond=st.sampled_from([5 * TOKEN, 0]),
        )
        def create(self, fund: int, bonds: bool, max_rounds: int, aggregator_bond: int) -> None:
            task_id = self._create(fund, max_rounds, aggregator_bond)
            if bonds:
                env.post_bonds(task_id)
            env.join(task_id, *nodes)

        @rule(
            t=TASK_IDS,
            act=st.sampled_from(
                [
                    "fund",
                    "cancel",
                    "withdraw remainder",
                    "post bond",
                    "withdraw bond",
                    "join",
                    "leave",
                    "withdraw stake",
                    "abandon",
                    "report conflicts",
                ]
            ),
            who=st.integers(0, 3),
        )
        def disrupt(self, t: int, act: str, who: int) -> None:
            """Someone acts out of turn: the sponsor funds, cancels or withdraws; a bondholder
            posts or withdraws its bond; a node joins, leaves or withdraws its stake; anyone
            abandons the round or reports conflicting proposals."""
            task_id, last, _ = self._last(t)
            node, party = nodes[who % NODES], parties[who]
            actions: dict[str, Callable[[], Any]] = {
                "fund": lambda: env.ledger.fund_task(task_id, 50 * TOKEN, env.sponsor),
                "cancel": lambda: env.ledger.cancel_task(task_id, env.sponsor),
                "withdraw remainder": lambda: env.ledger.withdraw_remainder(task_id, env.sponsor),
                "post bond": lambda: env.ledger.post_bond(task_id, party),
                "withdraw bond": lambda: env.ledger.withdraw_bond(task_id, party),
                "join": lambda: env.ledger.join(task_id, node),
                "leave": lambda: env.ledger.leave(task_id, node),
                "withdraw stake": lambda: env.ledger.withdraw_stake(task_id, node),
                "abandon": lambda: env.ledger.abandon_round(task_id, last, node),
            }
            if act in actions:
                self._try(act, actions[act])
                return
            for result_hash, proposed in list(self.proposed.items()):
                if proposed.task_id == task_id:
                    self._try(
                        act,
                        lambda p=proposed, h=result_hash: env.ledger.slash_conflicting(
                            task_id, p.round, h, node
                        ),
                    )

        # ------------------------------------------------------------ the clock

        @rule(to_next_deadline=st.booleans())
        def wait(self, to_next_deadline: bool) -> None:
            """A tick, or a jump past the next deadline of any task (commit, reveal, challenge,
            slash or grace): where the protocol's states change."""
            now = env.chain.timestamp()
            if not to_next_deadline:
                env.chain.advance_time(30)
                return
            deadlines = []
            for task_id in self.tasks:
                task = env.ledger.task(task_id)
                r = env.ledger.round(task_id, task.rounds_opened)
                challenge_end = r.finalized_at + task.challenge_window
                deadlines += [
                    r.deadline,
                    r.reveal_deadline,
                    max(r.reveal_deadline, r.voided_at) + task.grace_period,
                    challenge_end,
                    challenge_end + task.slash_window,
                    task.created_at + task.grace_period,
                ]
            upcoming = [d for d in deadlines if d >= now]
            env.advance_to(min(upcoming) if upcoming else now)

        # ------------------------------------------------------------ invariants

        @invariant()
        def the_ledger_holds_exactly_stakes_bonds_and_pools(self) -> None:
            held = 0
            for task_id in self.tasks:
                task = env.ledger.task(task_id)
                assert task.paid <= task.reserved
                assert task.reserved + task.withdrawn <= task.funded
                held += task.funded - task.paid - task.withdrawn
                held += sum(env.ledger.member(task_id, n.address).stake for n in nodes)
                held += sum(env.ledger.bond_of(task_id, p.address).amount for p in parties)
                last = task.rounds_opened
                for round_ in range(1, last):
                    assert env.ledger.round_state(task_id, round_).final
                state = env.ledger.round_state(task_id, last)
                assert env.ledger.open_round(task_id) == (last if state.pending else 0)
            assert env.token.balance_of(env.ledger.address) == held

        @invariant()
        def every_deposit_stays_recoverable(self) -> None:
            latest = bytes(env.chain.w3.eth.get_block("latest")["hash"])
            if latest == self.checked_block:
                return  # nothing happened since the last check
            snapshot = tester.take_snapshot()
            try:
                self._recover_everything()
                assert env.token.balance_of(env.ledger.address) == 0
            finally:
                tester.revert_to_snapshot(snapshot)
            self.checked_block = latest

        def _recover_everything(self) -> None:
            env.chain.advance_time(FAR_FUTURE)
            for task_id in self.tasks:
                task = env.ledger.task(task_id)
                last = task.rounds_opened
                if env.ledger.round_state(task_id, last).pending:
                    env.ledger.abandon_round(task_id, last, nodes[0])
                if not task.cancelled and not env.ledger.is_complete(task_id):
                    env.ledger.cancel_task(task_id, env.sponsor)
                for node in nodes:
                    member = env.ledger.member(task_id, node.address)
                    if member.joined:
                        if not member.leaving:
                            env.ledger.leave(task_id, node)
                        env.ledger.withdraw_stake(task_id, node)
                for party in parties:
                    if env.ledger.bond_of(task_id, party.address).amount:
                        env.ledger.withdraw_bond(task_id, party)
                for round_ in range(1, last + 1):
                    if env.ledger.round_state(task_id, round_) is not RoundState.SETTLED:
                        continue
                    proposed = self.proposed[env.ledger.round(task_id, round_).result_hash]
                    for entry in proposed.tree.entries if proposed.tree else ():
                        if not env.ledger.has_claimed(task_id, round_, entry.node):
                            proof = tuple(proposed.tree.proof(entry.node))
                            request = ClaimRequest(task_id, round_, entry.amount, proof)
                            env.ledger.claim(request, proposed.owners[entry.node])
                if env.ledger.task(task_id).available:
                    env.ledger.withdraw_remainder(task_id, env.sponsor)

    LedgerMachine.TestCase.settings = settings(
        max_examples=5,
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    LedgerMachine.TestCase().runTest()
