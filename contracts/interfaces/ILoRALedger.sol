// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title ILoRALedger
 * @notice The on-chain protocol of LoRA Ledger: training tasks, staked nodes, rounds of
 * commit-reveal update submissions, finalization with a Merkle root of rewards, and claims.
 *
 * A round has two phases. While it is `Open`, a node commits to its update with a hash
 * ({commitmentOf}) that hides the update's digest and example count behind a secret salt;
 * nothing a copier could take is published. Once the commit phase ends, the node reveals the
 * update's CID, digest, example count and salt; the contract checks them against the hash.
 * A copier who sees a reveal is too late to commit, and cannot reveal what it did not commit.
 *
 * Storage keeps only what later checks need (commitments, digests, counts, roots); content
 * identifiers (IPFS CIDs) travel in events, so the full history can be rebuilt from logs.
 */
interface ILoRALedger {
    /// @notice Parameters a sponsor chooses when creating a task.
    struct TaskParams {
        bytes32 baseModelHash; // keccak256 of the base model identifier (e.g. a hub id)
        string initialGlobalCid; // CID of the initial global adapter
        bytes32 initialGlobalDigest; // sha256 of the initial global adapter's bytes
        address token; // ERC-20 used for rewards and stakes
        uint256 rewardPerRound; // most the round's reward table may pay
        uint256 minStake; // stake a node locks to join
        uint64 submissionWindow; // seconds a round accepts commitments
        uint64 revealWindow; // seconds after the commit deadline during which commitments are revealed
        uint64 maxExamples; // most examples a node may claim for one round's update
        uint32 maxRounds; // rounds after which the task is complete
    }

    /// @notice A task as stored.
    struct Task {
        address sponsor;
        address token;
        bytes32 baseModelHash;
        bytes32 globalDigest; // digest of the current global adapter
        uint256 rewardPerRound;
        uint256 minStake;
        uint256 funded; // every token deposited into the reward pool (incl. slashed stakes)
        uint256 reserved; // reward totals of finalized rounds (the most claims may ever pay)
        uint256 paid; // rewards claimed so far
        uint256 withdrawn; // remainder returned to the sponsor after completion
        uint64 submissionWindow;
        uint64 revealWindow;
        uint64 maxExamples;
        uint32 maxRounds;
        uint32 roundsOpened;
        uint32 activeNodes;
    }

    /// @notice A round as stored.
    struct Round {
        bytes32 startDigest; // global adapter the round trains from
        bytes32 resultDigest; // global adapter the round produced (zero until finalized)
        bytes32 rewardRoot; // Merkle root of (taskId, round, node, amount) leaves
        uint256 rewardTotal; // sum of the reward table
        uint256 claimed; // claimed from this round so far
        uint64 openedAt;
        uint64 deadline; // last timestamp at which commitments are accepted
        uint64 revealDeadline; // last timestamp at which commitments are revealed
        uint32 commits; // commitments received
        uint32 reveals; // commitments revealed: the updates the round's finalization counts
        uint32 accepted;
        uint32 rejected;
        bool allCommitted; // every joined node had committed at some point (sticky: ends the commit phase)
        bool finalized;
    }

    /// @notice A node's membership in a task.
    struct Member {
        bool joined;
        uint256 stake;
    }

    /// @notice A node's commitment for one round, and what its reveal showed.
    struct Submission {
        bytes32 commitment; // {commitmentOf} the update; zero when the node did not commit
        bytes32 digest; // sha256 of the exact update bytes; zero until revealed
        uint64 numExamples; // zero until revealed
        uint64 committedAt;
        uint64 revealedAt; // zero until revealed
    }

    /// @notice What an aggregator commits when it finalizes a round.
    struct Finalization {
        string globalCid; // CID of the new global adapter
        bytes32 globalDigest; // sha256 of the new global adapter's bytes
        string reportCid; // CID of the round report (verdicts, weights, reward table, proofs)
        uint32 accepted;
        uint32 rejected;
        bytes32 rewardRoot;
        uint256 rewardTotal;
    }

    /// @notice One entry of a batch claim.
    struct Claim {
        uint256 taskId;
        uint32 round;
        uint256 amount;
        bytes32[] proof;
    }

    /**
     * @notice The state of a round, as {roundState} reports it. Rounds move only forward:
     * Unopened -> Open -> Revealing -> Closed -> Finalized (Revealing is skipped when nothing
     * was committed). A node joining after every joined node committed does not reopen the
     * commit phase: that moment is recorded for good (`Round.allCommitted`).
     *
     * - `Unopened`: round 0, or a round {openRound} has not opened yet.
     * - `Open`: the commit phase: its window has not passed and not every joined node has
     *   committed yet.
     * - `Revealing`: the commit phase is over and some commitment is still unrevealed, until
     *   the reveal deadline (`deadline + revealWindow`).
     * - `Closed`: every commitment is revealed or the reveal deadline has passed; awaiting
     *   {finalizeRound}. Commitments never revealed are not counted and earn nothing.
     * - `Finalized`: its result and reward root are recorded; its rewards can be claimed.
     *
     * Errors carry a set of expected states as a bitmap: bit `uint8(state)` is set for each
     * allowed state (as OpenZeppelin's Governor does for proposal states).
     */
    enum RoundState {
        Unopened,
        Open,
        Revealing,
        Closed,
        Finalized
    }

    // ---------------------------------------------------------------- errors

    /// @notice No task has id `taskId` (ids run from 1 to {taskCount}).
    /// @param taskId the id asked for
    error LedgerUnknownTask(uint256 taskId);

    /// @notice A task's reward token has no code, so it cannot be an ERC-20.
    /// @param token the address given as the token
    error LedgerInvalidToken(address token);

    /// @notice A task's submission window is zero.
    /// @param submissionWindow the window given, in seconds
    error LedgerInvalidWindow(uint64 submissionWindow);

    /// @notice A task's reveal window is zero.
    /// @param revealWindow the window given, in seconds
    error LedgerInvalidRevealWindow(uint64 revealWindow);

    /// @notice A task's cap on the examples a node may claim per round is zero.
    /// @param maxExamples the cap given
    error LedgerInvalidMaxExamples(uint64 maxExamples);

    /// @notice A task's number of rounds is zero.
    /// @param maxRounds the number of rounds given
    error LedgerInvalidMaxRounds(uint32 maxRounds);

    /// @notice A content identifier (initial adapter, update, global adapter or report) is empty.
    error LedgerEmptyCid();

    /// @notice A digest (initial adapter, update or global adapter) is zero.
    error LedgerZeroDigest();

    /// @notice A commitment is zero (zero marks "no commitment" in storage).
    error LedgerZeroCommitment();

    /// @notice An amount to fund, slash, claim or withdraw is zero.
    error LedgerZeroAmount();

    /// @notice Only the task's sponsor may do this.
    /// @param taskId the task
    /// @param caller the account that is not its sponsor
    error LedgerNotSponsor(uint256 taskId, address caller);

    /// @notice The node is already a member of the task.
    /// @param taskId the task
    /// @param node the member
    error LedgerAlreadyJoined(uint256 taskId, address node);

    /// @notice The node is not a member of the task.
    /// @param taskId the task
    /// @param node the account that has not joined
    error LedgerNotJoined(uint256 taskId, address node);

    /// @notice The node's stake was slashed below the task's minimum, so it can no longer submit.
    /// @param taskId the task
    /// @param node the member
    /// @param stake what is left of its stake
    /// @param minStake the task's minimum stake
    error LedgerStakeTooLow(uint256 taskId, address node, uint256 stake, uint256 minStake);

    /// @notice Every round of the task has been opened (to open one) or finalized (to fund or join).
    /// @param taskId the task
    /// @param maxRounds the task's number of rounds
    error LedgerTaskComplete(uint256 taskId, uint32 maxRounds);

    /// @notice The task still has rounds to finalize.
    /// @param taskId the task
    /// @param roundsFinalized rounds finalized so far
    /// @param maxRounds the task's number of rounds
    error LedgerTaskNotComplete(uint256 taskId, uint32 roundsFinalized, uint32 maxRounds);

    /// @notice The round is not in a state that allows this call (see {RoundState}).
    /// @param taskId the task
    /// @param round the round the call is about (for {openRound}: the last round opened)
    /// @param current the round's state now
    /// @param expectedStates the states that allow the call: bit `uint8(state)` set for each
    error LedgerUnexpectedRoundState(uint256 taskId, uint32 round, RoundState current, bytes32 expectedStates);

    /// @notice The node already committed to an update in this round; one per node per round.
    /// @param taskId the task
    /// @param round the round
    /// @param node the node
    error LedgerAlreadyCommitted(uint256 taskId, uint32 round, address node);

    /// @notice The node did not commit in this round (to reveal, or to be slashed for it).
    /// @param taskId the task
    /// @param round the round
    /// @param node the node
    error LedgerNotCommitted(uint256 taskId, uint32 round, address node);

    /// @notice The node already revealed its commitment of this round.
    /// @param taskId the task
    /// @param round the round
    /// @param node the node
    error LedgerAlreadyRevealed(uint256 taskId, uint32 round, address node);

    /// @notice A reveal does not hash to the node's commitment: a different digest, example
    /// count or salt than committed (or someone else's update).
    /// @param taskId the task
    /// @param round the round
    /// @param node the revealing node
    /// @param committed the commitment stored for the node
    /// @param revealed {commitmentOf} the revealed values
    error LedgerCommitmentMismatch(uint256 taskId, uint32 round, address node, bytes32 committed, bytes32 revealed);

    /// @notice An update claims more examples than the task allows per round.
    /// @param taskId the task
    /// @param round the round
    /// @param node the revealing node
    /// @param numExamples the examples claimed
    /// @param maxExamples the task's cap
    error LedgerExamplesAboveCap(uint256 taskId, uint32 round, address node, uint64 numExamples, uint64 maxExamples);

    /// @notice An update with this digest was already revealed in the task (a replayed update).
    /// @param taskId the task
    /// @param digest the sha256 digest submitted again
    error LedgerDigestReused(uint256 taskId, bytes32 digest);

    /// @notice An update claims to be trained on zero examples.
    /// @param taskId the task
    /// @param round the round
    /// @param node the submitting node
    error LedgerZeroExamples(uint256 taskId, uint32 round, address node);

    /// @notice A finalization's verdict counts do not add up to the round's revealed updates.
    /// @param taskId the task
    /// @param round the round
    /// @param accepted updates the finalization accepts
    /// @param rejected updates the finalization rejects
    /// @param reveals updates the round had revealed
    error LedgerCountMismatch(uint256 taskId, uint32 round, uint32 accepted, uint32 rejected, uint32 reveals);

    /// @notice A round's reward table totals more than the task pays per round.
    /// @param taskId the task
    /// @param round the round
    /// @param rewardTotal the table's total
    /// @param rewardPerRound the task's cap per round
    error LedgerRewardAboveRoundCap(uint256 taskId, uint32 round, uint256 rewardTotal, uint256 rewardPerRound);

    /// @notice The task's unreserved pool cannot cover the amount.
    /// @param taskId the task
    /// @param available the pool neither reserved by finalized rounds nor withdrawn
    /// @param required the amount needed (a round's reward cap, or a reward table's total)
    error LedgerInsufficientPool(uint256 taskId, uint256 available, uint256 required);

    /// @notice The node already claimed its reward for this round.
    /// @param taskId the task
    /// @param round the round
    /// @param node the claiming node
    error LedgerAlreadyClaimed(uint256 taskId, uint32 round, address node);

    /// @notice The proof does not prove the leaf (taskId, round, node, amount) against the round's root.
    /// @param taskId the task
    /// @param round the round
    /// @param node the claiming node
    /// @param amount the amount claimed
    error LedgerInvalidProof(uint256 taskId, uint32 round, address node, uint256 amount);

    /// @notice The round's claims would exceed its posted reward total.
    /// @param taskId the task
    /// @param round the round
    /// @param claimed what the round's claims would add up to with this one
    /// @param rewardTotal the round's posted reward total
    error LedgerClaimAboveRoundTotal(uint256 taskId, uint32 round, uint256 claimed, uint256 rewardTotal);

    /// @notice The node committed in a round not yet finalized, so it cannot leave (and dodge
    /// slashing) until that round is finalized.
    /// @param taskId the task
    /// @param round the round not yet finalized
    /// @param node the node trying to leave
    error LedgerLeaveDuringRound(uint256 taskId, uint32 round, address node);

    /// @notice A slash exceeds what is left of the node's stake.
    /// @param taskId the task
    /// @param node the node
    /// @param amount the amount to slash
    /// @param stake what is left of its stake
    error LedgerSlashAboveStake(uint256 taskId, address node, uint256 amount, uint256 stake);

    /// @notice A batch claim has no entries.
    error LedgerEmptyBatch();

    // ---------------------------------------------------------------- events

    /// @notice A sponsor created a task.
    /// @param taskId the new task's id
    /// @param sponsor the account that created it (and may withdraw its remainder)
    /// @param token the ERC-20 of its rewards and stakes
    /// @param baseModelHash keccak256 of the base model identifier
    /// @param initialGlobalCid CID of the initial global adapter
    /// @param initialGlobalDigest sha256 of the initial global adapter's bytes
    /// @param rewardPerRound most a round's reward table may pay
    /// @param minStake stake a node locks to join
    /// @param submissionWindow seconds a round accepts commitments
    /// @param revealWindow seconds after the commit deadline during which commitments are revealed
    /// @param maxExamples most examples a node may claim per round
    /// @param maxRounds rounds after which the task is complete
    event TaskCreated(
        uint256 indexed taskId,
        address indexed sponsor,
        address indexed token,
        bytes32 baseModelHash,
        string initialGlobalCid,
        bytes32 initialGlobalDigest,
        uint256 rewardPerRound,
        uint256 minStake,
        uint64 submissionWindow,
        uint64 revealWindow,
        uint64 maxExamples,
        uint32 maxRounds
    );

    /// @notice Tokens were deposited into a task's reward pool.
    /// @param taskId the task
    /// @param funder the depositing account
    /// @param amount the amount deposited
    /// @param funded every token deposited into the pool so far, this deposit included
    event TaskFunded(uint256 indexed taskId, address indexed funder, uint256 amount, uint256 funded);

    /// @notice A node joined a task and locked its stake.
    /// @param taskId the task
    /// @param node the node
    /// @param stake the stake locked
    event NodeJoined(uint256 indexed taskId, address indexed node, uint256 stake);

    /// @notice A node left a task and took back what was left of its stake.
    /// @param taskId the task
    /// @param node the node
    /// @param stakeReturned the stake returned to it
    event NodeLeft(uint256 indexed taskId, address indexed node, uint256 stakeReturned);

    /// @notice Part of a node's stake was moved into the task's reward pool, for what it
    /// committed in a finalized round.
    /// @param taskId the task
    /// @param round the round the slash is for
    /// @param node the node
    /// @param amount the amount slashed
    /// @param reason a code from the round report's reason table
    /// @param evidenceCid CID of the evidence (e.g. the round report or an audit)
    event NodeSlashed(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed node,
        uint256 amount,
        uint16 reason,
        string evidenceCid
    );

    /// @notice A round opened.
    /// @param taskId the task
    /// @param round the round, numbered from 1
    /// @param startDigest digest of the global adapter the round trains from
    /// @param deadline last timestamp at which commitments are accepted
    /// @param revealDeadline last timestamp at which commitments are revealed
    event RoundOpened(
        uint256 indexed taskId, uint32 indexed round, bytes32 startDigest, uint64 deadline, uint64 revealDeadline
    );

    /// @notice A node committed to an update (its content stays hidden until the reveal).
    /// @param taskId the task
    /// @param round the round
    /// @param node the node
    /// @param commitment {commitmentOf} the update's digest, example count and salt
    event UpdateCommitted(uint256 indexed taskId, uint32 indexed round, address indexed node, bytes32 commitment);

    /// @notice A node revealed the update it committed to.
    /// @param taskId the task
    /// @param round the round
    /// @param node the node
    /// @param cid CID of the update (kept only in this event)
    /// @param digest sha256 of the update's exact bytes
    /// @param numExamples examples the update was trained on
    event UpdateRevealed(
        uint256 indexed taskId, uint32 indexed round, address indexed node, string cid, bytes32 digest, uint64 numExamples
    );

    /// @notice A round was finalized.
    /// @param taskId the task
    /// @param round the round
    /// @param globalCid CID of the new global adapter
    /// @param globalDigest sha256 of the new global adapter's bytes
    /// @param reportCid CID of the round report
    /// @param accepted updates accepted
    /// @param rejected updates rejected
    /// @param rewardRoot Merkle root of the reward table
    /// @param rewardTotal sum of the reward table
    event RoundFinalized(
        uint256 indexed taskId,
        uint32 indexed round,
        string globalCid,
        bytes32 globalDigest,
        string reportCid,
        uint32 accepted,
        uint32 rejected,
        bytes32 rewardRoot,
        uint256 rewardTotal
    );

    /// @notice A node claimed its reward for a round.
    /// @param taskId the task
    /// @param round the round
    /// @param node the node paid
    /// @param amount the amount paid
    event RewardClaimed(uint256 indexed taskId, uint32 indexed round, address indexed node, uint256 amount);

    /// @notice The sponsor took back the unreserved pool of a complete task.
    /// @param taskId the task
    /// @param sponsor the sponsor paid
    /// @param amount the amount paid
    event RemainderWithdrawn(uint256 indexed taskId, address indexed sponsor, uint256 amount);

    // ---------------------------------------------------------------- functions

    /**
     * @notice Creates a training task; the caller becomes its sponsor.
     *
     * Requirements:
     * - `params.token` is a contract; `submissionWindow`, `revealWindow`, `maxExamples` and
     *   `maxRounds` are positive;
     * - the initial global adapter has a CID and a non-zero digest.
     *
     * Emits: {TaskCreated}.
     */
    function createTask(TaskParams calldata params) external returns (uint256 taskId);

    /**
     * @notice Deposits `amount` of the task's token into its reward pool. Anyone may fund.
     *
     * Requirements:
     * - the task exists and is not complete; `amount` is positive;
     * - the caller approved this contract for `amount`.
     *
     * Emits: {TaskFunded}.
     */
    function fundTask(uint256 taskId, uint256 amount) external;

    /**
     * @notice Joins a task by staking its minimum stake.
     *
     * Requirements:
     * - the task exists and is not complete; the caller has not joined it;
     * - the caller approved this contract for the task's `minStake`.
     *
     * Emits: {NodeJoined}.
     */
    function join(uint256 taskId) external;

    /**
     * @notice Leaves a task and takes back what is left of the stake.
     *
     * Requirements:
     * - the caller has joined the task;
     * - the caller has no commitment in a round that is not `Finalized` yet (it can leave once
     *   that round is finalized), so a node cannot dodge slashing for an update under review.
     *
     * Emits: {NodeLeft}.
     */
    function leave(uint256 taskId) external;

    /**
     * @notice Opens the next round, training from the task's current global adapter.
     *
     * Requirements:
     * - the caller has `AGGREGATOR_ROLE`;
     * - the last round opened is `Finalized` and the task has rounds left;
     * - the pool not yet reserved covers a full round's reward.
     *
     * Emits: {RoundOpened}.
     */
    function openRound(uint256 taskId) external returns (uint32 round);

    /**
     * @notice Commits to an update in an `Open` round: `commitment` is {commitmentOf} the
     * update's digest, example count and a secret salt; nothing else is published. The commit
     * phase ends for good once every joined node has committed (a later join does not reopen it).
     *
     * Requirements:
     * - the caller has joined the task with at least the minimum stake;
     * - `round` is `Open`; the caller has not committed in it; `commitment` is not zero.
     *
     * Emits: {UpdateCommitted}.
     */
    function commitUpdate(uint256 taskId, uint32 round, bytes32 commitment) external;

    /**
     * @notice Reveals the update the caller committed to in a `Revealing` round: its CID (kept
     * in the event), the sha256 digest of its exact bytes, the examples it was trained on and
     * the salt of the commitment.
     *
     * Requirements:
     * - `round` is `Revealing`; the caller committed in it and has not revealed;
     * - {commitmentOf}(taskId, round, caller, digest, numExamples, salt) is the commitment;
     * - `cid` is not empty, `digest` is not zero and new to the task;
     * - `1 <= numExamples <= maxExamples` of the task.
     *
     * Emits: {UpdateRevealed}.
     */
    function revealUpdate(
        uint256 taskId,
        uint32 round,
        string calldata cid,
        bytes32 digest,
        uint64 numExamples,
        bytes32 salt
    ) external;

    /**
     * @notice Finalizes a `Closed` round once: the new global adapter, the round report, the
     * verdict counts and the Merkle root of the reward table. Costs the same gas for any
     * number of nodes: rewards are paid by {claim}.
     *
     * Requirements:
     * - the caller has `AGGREGATOR_ROLE`; `round` is `Closed`;
     * - `accepted + rejected` equals the round's reveals (unrevealed commitments count for
     *   nothing);
     * - CIDs are not empty and the digest is not zero;
     * - `rewardTotal` is at most the task's reward per round and the unreserved pool.
     *
     * Emits: {RoundFinalized}.
     */
    function finalizeRound(uint256 taskId, uint32 round, Finalization calldata result) external;

    /**
     * @notice Claims the caller's reward for a `Finalized` round with a Merkle proof.
     *
     * Requirements:
     * - the round is `Finalized`; the caller has not claimed it; `amount` is positive;
     * - `proof` proves the leaf (taskId, round, caller, amount) against the round's root;
     * - the round's claims stay within its reward total.
     *
     * Emits: {RewardClaimed}.
     */
    function claim(uint256 taskId, uint32 round, uint256 amount, bytes32[] calldata proof) external;

    /**
     * @notice Claims several rounds (of one or more tasks) in one transaction. Every claim is
     * checked and recorded before any token moves; one invalid claim reverts the whole batch.
     *
     * Requirements: `claims` is not empty; each entry as for {claim}.
     *
     * Emits: {RewardClaimed} for each entry.
     */
    function claimBatch(Claim[] calldata claims) external;

    /**
     * @notice Slashes `amount` of a node's stake into the task's reward pool for what it
     * committed in round `round`, once that round is finalized. A node whose stake falls below
     * the minimum can no longer commit; it may leave.
     *
     * Requirements:
     * - the caller has `AGGREGATOR_ROLE`; `round` is `Finalized`;
     * - the node has joined and committed in `round`; `0 < amount <= stake`;
     * - `evidenceCid` is not empty.
     *
     * Emits: {NodeSlashed}, with `reason` a code from the round report's reason table.
     */
    function slash(
        uint256 taskId,
        uint32 round,
        address node,
        uint256 amount,
        uint16 reason,
        string calldata evidenceCid
    ) external;

    /**
     * @notice Returns the pool left to the sponsor once every round of the task is finalized.
     * Rewards of finalized rounds stay reserved for their claims.
     *
     * Requirements:
     * - the caller is the task's sponsor; the task is complete; something is left.
     *
     * Emits: {RemainderWithdrawn}.
     */
    function withdrawRemainder(uint256 taskId) external;

    /// @notice The task `taskId`. Requirements: the task exists.
    function getTask(uint256 taskId) external view returns (Task memory);

    /// @notice Round `round` of task `taskId` as stored (zero for a round not opened).
    /// Requirements: the task exists.
    function getRound(uint256 taskId, uint32 round) external view returns (Round memory);

    /// @notice The state of round `round` of task `taskId` now (see {RoundState}).
    /// Requirements: the task exists.
    function roundState(uint256 taskId, uint32 round) external view returns (RoundState);

    /// @notice The membership of `node` in task `taskId`. Requirements: the task exists.
    function getMember(uint256 taskId, address node) external view returns (Member memory);

    /// @notice The commitment of `node` in a round and its reveal (zero commitment when it did
    /// not commit, zero digest until it revealed).
    /// Requirements: the task exists.
    function getSubmission(uint256 taskId, uint32 round, address node) external view returns (Submission memory);

    /// @notice Whether `node` claimed its reward for a round.
    function hasClaimed(uint256 taskId, uint32 round, address node) external view returns (bool);

    /// @notice Number of tasks created; task ids run from 1 to this number.
    function taskCount() external view returns (uint256);

    /// @notice Whether every round of the task has been finalized. Requirements: the task exists.
    function isComplete(uint256 taskId) external view returns (bool);

    /// @notice The reward leaf a claim proves (OpenZeppelin standard Merkle tree format).
    function rewardLeaf(uint256 taskId, uint32 round, address node, uint256 amount) external pure returns (bytes32);

    /// @notice The commitment {commitUpdate} expects for an update:
    /// `keccak256(abi.encode(taskId, round, node, digest, numExamples, salt))`. Binding the
    /// node and round stops anyone from replaying another node's commitment.
    function commitmentOf(uint256 taskId, uint32 round, address node, bytes32 digest, uint64 numExamples, bytes32 salt)
        external
        pure
        returns (bytes32);
}
