// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title ILoRALedger
 * @notice The on-chain protocol of LoRA Ledger (v3, accountable aggregation): training tasks,
 * staked nodes, rounds of commit-reveal update submissions, results proposed by a task's
 * aggregator and signed by a quorum of its validators, a challenge window, Merkle claims, and
 * slashing only through a quorum-signed Merkle root.
 *
 * A round has two submission phases. While it is `Open`, a node commits to its update with a
 * hash ({commitmentOf}) that hides the update's digest and example count behind a secret salt;
 * nothing a copier could take is published. Once the commit phase ends, the node reveals the
 * update's CID, digest, example count and salt; the contract checks them against the hash.
 *
 * No single account decides a round. A task names its aggregator and its validators (and the
 * quorum of validator signatures a result needs) at creation; both lock a bond the contract can
 * slash. Once reveals are over, validators post score sheets, the aggregator (or a validator)
 * proposes the round's result and validators sign it (EIP-712, {attestationDigest}); a quorum
 * of valid signatures finalizes the round. Its rewards become claimable once a challenge window
 * has passed, during which a reward paid to an account that did not take part voids the round
 * and slashes the bonds of the proposer and of every signer. Rounds nobody finalizes can be
 * abandoned and tasks that cannot go on can be cancelled, so every deposit stays withdrawable.
 *
 * Storage keeps only what later checks need (commitments, digests, counts, roots); content
 * identifiers (IPFS CIDs) and signatures travel in events, so the full history can be rebuilt
 * and audited from logs.
 */
interface ILoRALedger {
    /// @notice Parameters a sponsor chooses when creating a task (fixed for its life).
    struct TaskParams {
        bytes32 baseModelHash; // keccak256 of the base model identifier (e.g. a hub id)
        string initialGlobalCid; // CID of the initial global adapter
        bytes32 initialGlobalDigest; // sha256 of the initial global adapter's bytes
        address token; // ERC-20 used for rewards, stakes and bonds
        uint256 rewardPerRound; // most the round's reward table may pay
        uint256 minStake; // stake a node locks to join
        uint64 submissionWindow; // seconds a round accepts commitments
        uint64 revealWindow; // seconds after the commit deadline during which commitments are revealed
        uint64 maxExamples; // most examples a node may claim for one round's update
        uint32 maxRounds; // rounds after which the task is complete
        address aggregator; // the one account that opens rounds and proposes results
        address[] validators; // accounts that score, check and sign results (1..32, distinct)
        uint32 quorum; // signatures a result needs: validators/2 < quorum <= validators
        uint256 aggregatorBond; // tokens the aggregator locks before the first round
        uint256 validatorBond; // tokens each validator locks before it posts scores or signs
        uint16 validatorShareBps; // share of a round's paid reward that goes to validators (<= 5000)
        uint64 challengeWindow; // seconds after finalization during which a result can be challenged
        uint64 slashWindow; // seconds after the challenge window during which slashes can be executed
        uint64 gracePeriod; // seconds of inactivity after which a round can be abandoned or the task cancelled
        uint256 privacy; // the differential privacy the task requires, packed (the privacy policy, below)
    }

    // The differential privacy a task requires of its updates (docs/privacy.md), packed
    // into `TaskParams.privacy` and kept in the {TaskCreated} event: nodes train by it, the
    // aggregator rejects updates that break it and audits re-check it off-chain. From the lowest
    // bit: `mode` (8 bits: 0 none, 1 example-level DP-SGD on each node, 2 node-level DP-FedAvg
    // with noise shares), `accountant` (8: 0 RDP, 1 PRV), `minNodes` (32: mode 2's updates whose
    // noise shares add up to the full noise), then 52 bits each of `clipNorm`, `noiseMultiplier`
    // and `targetEpsilon` (in millionths) and 52 bits of `delta` (in 1e-15). Mode 0 has every
    // field 0; `loraledger task show` prints the fields.

    /// @notice A task as stored.
    struct Task {
        address sponsor;
        address token;
        address aggregator;
        bytes32 baseModelHash;
        bytes32 globalDigest; // digest of the current global adapter
        uint256 rewardPerRound;
        uint256 minStake;
        uint256 funded; // every token deposited into the reward pool (incl. slashed stakes and bonds)
        uint256 reserved; // reward totals of finalized rounds (the most claims may ever pay)
        uint256 paid; // rewards claimed so far
        uint256 withdrawn; // remainder returned to the sponsor after completion or cancellation
        uint256 aggregatorBond;
        uint256 validatorBond;
        uint64 submissionWindow;
        uint64 revealWindow;
        uint64 maxExamples;
        uint64 challengeWindow;
        uint64 slashWindow;
        uint64 gracePeriod;
        uint64 createdAt;
        uint64 slashableUntil; // last timestamp at which a settled round before the last one opened can still slash
        uint32 maxRounds;
        uint32 roundsOpened;
        uint32 activeNodes; // members that joined and did not start leaving
        uint32 quorum;
        uint16 validatorShareBps;
        bool cancelled;
    }

    /// @notice A round as stored.
    struct Round {
        bytes32 startDigest; // global adapter the round trains from
        bytes32 resultDigest; // global adapter the round produced (zero until finalized)
        bytes32 rewardRoot; // Merkle root of (taskId, round, account, amount) leaves
        uint256 rewardTotal; // sum of the reward table
        uint256 claimed; // claimed from this round so far
        bytes32 resultHash; // {resultHashOf} the finalized result (zero until finalized)
        bytes32 slashRoot; // Merkle root of the round's slashes ({slashLeaf}); zero: none
        uint64 openedAt;
        uint64 deadline; // last timestamp at which commitments are accepted
        uint64 revealDeadline; // last timestamp at which commitments are revealed
        uint64 finalizedAt; // zero until finalized (and again once voided)
        uint64 voidedAt; // last time a finalization was voided by a challenge (zero: never)
        uint32 eligible; // members that may commit: active at opening, less those that left uncommitted
        uint32 commits; // commitments received
        uint32 reveals; // commitments revealed: the updates the round's result counts
        uint32 accepted;
        uint32 rejected;
        uint32 epoch; // finalizations voided so far; results sign the epoch
        uint32 scoresBitmap; // bit i: validators[i] posted its score sheet for the round
        uint32 signers; // bit i: validators[i] signed the finalized result
        bool abandoned;
    }

    /// @notice A node's membership in a task.
    struct Member {
        bool joined; // a member (until its stake is withdrawn)
        bool leaving; // started leaving: no longer active, stake still slashable
        uint256 stake;
        uint32 joinedRound; // rounds opened when it joined: it commits only in later rounds
        uint32 lastCommitRound; // the last round it committed in (zero: none)
        uint64 slashableUntil; // last timestamp at which an earlier round it committed in can slash it
    }

    /// @notice A node's commitment for one round, and what its reveal showed.
    struct Submission {
        bytes32 commitment; // {commitmentOf} the update; zero when the node did not commit
        bytes32 digest; // sha256 of the exact update bytes; zero until revealed
        uint64 numExamples; // zero until revealed
        uint64 committedAt;
        uint64 revealedAt; // zero until revealed
    }

    /// @notice A round's result, as proposed, signed and finalized.
    struct Finalization {
        string globalCid; // CID of the new global adapter
        bytes32 globalDigest; // sha256 of the new global adapter's bytes
        string reportCid; // CID of the round report (verdicts, weights, reward table, proofs)
        uint32 accepted;
        uint32 rejected;
        bytes32 rewardRoot;
        uint256 rewardTotal;
        bytes32 slashRoot; // Merkle root of the round's slashes ({slashLeaf}); zero: none
        uint32 scoresBitmap; // bit i: validators[i]'s score sheet was used (must equal the round's)
    }

    /// @notice A validator's EIP-712 signature of a result ({attestationDigest}).
    struct Attestation {
        address validator;
        bytes signature; // 65 bytes (r, s, v)
    }

    /// @notice The bond of a task's aggregator or validator.
    struct Bond {
        bool posted; // locked once with {postBond}
        bool slashed; // taken into the pool: the account may no longer act for the task
        uint256 amount; // held now (zero once slashed or withdrawn)
    }

    /// @notice A proposed result of a round, keyed by its {resultHashOf}.
    struct Proposal {
        address proposer; // zero: no such proposal
        uint32 epoch; // the round's epoch when proposed
        uint32 scoresBitmap; // the score sheets the result used
        uint32 attesters; // bit i: validators[i] signed it
        uint8 attestations; // valid signatures so far
        bool slashed; // {slashConflicting} already slashed it
        // keccak256(abi.encode(rewardRoot, rewardTotal, accepted, rejected)): what every honest
        // derivation of the round agrees on (report bytes and float rounding may differ)
        bytes32 outcomeHash;
    }

    /// @notice One entry of a batch claim.
    struct Claim {
        uint256 taskId;
        uint32 round;
        uint256 amount;
        bytes32[] proof;
    }

    /**
     * @notice The state of a round, as {roundState} reports it:
     * Unopened -> Open -> Revealing -> Closed -> Finalized -> Settled, and Abandoned from
     * Open/Revealing/Closed. Revealing is skipped when nothing was committed. A challenged
     * `Finalized` round goes back to `Closed` (voided, its epoch incremented).
     *
     * - `Unopened`: round 0, or a round {openRound} has not opened yet.
     * - `Open`: the commit phase: its window has not passed and fewer eligible members than
     *   eligible have committed (members joining during the round are not eligible).
     * - `Revealing`: the commit phase is over and some commitment is still unrevealed, until
     *   the reveal deadline (`deadline + revealWindow`).
     * - `Closed`: every commitment is revealed or the reveal deadline has passed: validators
     *   post score sheets, results are proposed and attested.
     * - `Finalized`: a result reached its quorum; the challenge window runs until
     *   `finalizedAt + challengeWindow`.
     * - `Settled`: the challenge window passed: rewards can be claimed, the round's slashes
     *   executed until `finalizedAt + challengeWindow + slashWindow`, the next round opened.
     * - `Abandoned`: nobody finalized it within `gracePeriod` of its reveal deadline (or of its
     *   last voiding); nothing of it is reserved, its commitments unlock.
     *
     * Errors carry a set of expected states as a bitmap: bit `uint8(state)` is set for each
     * allowed state (as OpenZeppelin's Governor does for proposal states).
     */
    enum RoundState {
        Unopened,
        Open,
        Revealing,
        Closed,
        Finalized,
        Settled,
        Abandoned
    }

    /// @notice Why a bond was slashed ({BondSlashed}).
    /// - `RewardChallenged`: it proposed or signed a result whose reward table paid an account
    ///   that took no part in the round ({challengeReward}).
    /// - `ConflictingResult`: it proposed or signed a result of the same epoch and score sheets
    ///   whose rewards or counts differ from the finalized one's ({slashConflicting}).
    enum BondSlashReason {
        RewardChallenged,
        ConflictingResult
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

    /// @notice A task's challenge window, slash window or grace period is zero.
    /// @param challengeWindow the challenge window given, in seconds
    /// @param slashWindow the slash window given, in seconds
    /// @param gracePeriod the grace period given, in seconds
    error LedgerInvalidDuration(uint64 challengeWindow, uint64 slashWindow, uint64 gracePeriod);

    /// @notice A task's cap on the examples a node may claim per round is zero.
    /// @param maxExamples the cap given
    error LedgerInvalidMaxExamples(uint64 maxExamples);

    /// @notice A task's number of rounds is zero.
    /// @param maxRounds the number of rounds given
    error LedgerInvalidMaxRounds(uint32 maxRounds);

    /// @notice A task's aggregator or validator is the zero address, or a validator is listed
    /// twice. (The aggregator may also be a validator: its one bond is then both bonds.)
    /// @param account the offending account
    error LedgerInvalidRole(address account);

    /// @notice A task names no validator or more than 32.
    /// @param count the number of validators given
    error LedgerInvalidValidatorCount(uint256 count);

    /// @notice A task's quorum is not a majority of its validators (`validators/2 < quorum <= validators`).
    /// @param quorum the quorum given
    /// @param validators the number of validators given
    error LedgerInvalidQuorum(uint32 quorum, uint256 validators);

    /// @notice A task's validator share is above 5000 basis points.
    /// @param validatorShareBps the share given
    error LedgerInvalidShare(uint16 validatorShareBps);

    /// @notice A task's privacy policy names no known mode or accountant, or a mode without its
    /// bounds: a DP mode needs a clipping bound, a noise multiplier, a target epsilon and
    /// 0 < delta < 1, node-level DP (and only it) a minimum number of nodes; mode 0 is all zero.
    /// @param mode the mode given
    /// @param accountant the accountant given
    error LedgerInvalidPrivacy(uint8 mode, uint8 accountant);

    /// @notice A content identifier (initial adapter, update, score sheet, global adapter or
    /// report) is empty.
    error LedgerEmptyCid();

    /// @notice A digest (initial adapter, update, score sheet or global adapter) is zero.
    error LedgerZeroDigest();

    /// @notice A commitment is zero (zero marks "no commitment" in storage).
    error LedgerZeroCommitment();

    /// @notice An amount to fund, claim or withdraw is zero.
    error LedgerZeroAmount();

    /// @notice Only the task's sponsor may do this.
    /// @param taskId the task
    /// @param caller the account that is not its sponsor
    error LedgerNotSponsor(uint256 taskId, address caller);

    /// @notice Only the task's aggregator may do this.
    /// @param taskId the task
    /// @param caller the account that is not its aggregator
    error LedgerNotAggregator(uint256 taskId, address caller);

    /// @notice The account is not one of the task's validators.
    /// @param taskId the task
    /// @param account the account
    error LedgerNotValidator(uint256 taskId, address account);

    /// @notice Only the task's aggregator or one of its validators may propose a result.
    /// @param taskId the task
    /// @param caller the account that is neither
    error LedgerNotProposer(uint256 taskId, address caller);

    /// @notice Only the task's aggregator and validators hold bonds.
    /// @param taskId the task
    /// @param account the account that is neither
    error LedgerNotBondholder(uint256 taskId, address account);

    /// @notice The account already posted its bond for the task (bonds are posted once).
    /// @param taskId the task
    /// @param account the account
    error LedgerBondAlreadyPosted(uint256 taskId, address account);

    /// @notice The account has not posted its bond for the task.
    /// @param taskId the task
    /// @param account the account
    error LedgerBondNotPosted(uint256 taskId, address account);

    /// @notice The account's bond was slashed: it may no longer act for the task.
    /// @param taskId the task
    /// @param account the account
    error LedgerBondSlashed(uint256 taskId, address account);

    /// @notice A bond stays locked until the task is over and no round can slash it any more.
    /// @param taskId the task
    /// @param account the bondholder
    /// @param unlocksAt the first timestamp at which it can be withdrawn
    error LedgerBondLocked(uint256 taskId, address account, uint64 unlocksAt);

    /// @notice The node is already a member of the task.
    /// @param taskId the task
    /// @param node the member
    error LedgerAlreadyJoined(uint256 taskId, address node);

    /// @notice The node is not a member of the task.
    /// @param taskId the task
    /// @param node the account that has not joined
    error LedgerNotJoined(uint256 taskId, address node);

    /// @notice The node started leaving the task: it no longer commits, and leaves once.
    /// @param taskId the task
    /// @param node the node
    error LedgerMemberLeaving(uint256 taskId, address node);

    /// @notice The node has not started leaving ({leave}) the task.
    /// @param taskId the task
    /// @param node the node
    error LedgerNotLeaving(uint256 taskId, address node);

    /// @notice The leaving node's stake is still slashable for a round it committed in.
    /// @param taskId the task
    /// @param node the node
    /// @param unlocksAt the first timestamp at which it can be withdrawn; zero while that round
    /// is neither finalized nor abandoned
    error LedgerStakeLocked(uint256 taskId, address node, uint64 unlocksAt);

    /// @notice The node's stake was slashed below the task's minimum, so it can no longer submit.
    /// @param taskId the task
    /// @param node the member
    /// @param stake what is left of its stake
    /// @param minStake the task's minimum stake
    error LedgerStakeTooLow(uint256 taskId, address node, uint256 stake, uint256 minStake);

    /// @notice The node joined while the round was open (or later): it commits from the next
    /// round on.
    /// @param taskId the task
    /// @param round the round
    /// @param node the node
    /// @param joinedRound the rounds opened when it joined
    error LedgerJoinedAfterOpen(uint256 taskId, uint32 round, address node, uint32 joinedRound);

    /// @notice Every round of the task has been opened (to open one or join) or the task is
    /// complete (to fund it or post a bond).
    /// @param taskId the task
    /// @param maxRounds the task's number of rounds
    error LedgerTaskComplete(uint256 taskId, uint32 maxRounds);

    /// @notice The task is neither complete nor cancelled.
    /// @param taskId the task
    /// @param roundsEnded rounds settled or abandoned so far
    /// @param maxRounds the task's number of rounds
    error LedgerTaskNotComplete(uint256 taskId, uint32 roundsEnded, uint32 maxRounds);

    /// @notice The task was cancelled by its sponsor.
    /// @param taskId the task
    error LedgerTaskCancelled(uint256 taskId);

    /// @notice The task can still go on, so its sponsor cannot cancel it yet.
    /// @param taskId the task
    /// @param cancellableAt the first timestamp at which it can be cancelled for inactivity
    error LedgerTaskActive(uint256 taskId, uint64 cancellableAt);

    /// @notice The round is not in a state that allows this call (see {RoundState}).
    /// @param taskId the task
    /// @param round the round the call is about (for {openRound}, {cancelTask} and
    /// withdrawals: the last round opened)
    /// @param current the round's state now
    /// @param expectedStates the states that allow the call: bit `uint8(state)` set for each
    error LedgerUnexpectedRoundState(uint256 taskId, uint32 round, RoundState current, bytes32 expectedStates);

    /// @notice The round cannot be abandoned yet: its grace period is still running.
    /// @param taskId the task
    /// @param round the round
    /// @param abandonableAt the first timestamp at which it can be abandoned
    error LedgerRoundNotAbandonable(uint256 taskId, uint32 round, uint64 abandonableAt);

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

    /// @notice The validator already posted its score sheet for this round.
    /// @param taskId the task
    /// @param round the round
    /// @param validator the validator
    error LedgerScoresAlreadyPosted(uint256 taskId, uint32 round, address validator);

    /// @notice A result's verdict counts do not add up to the round's revealed updates.
    /// @param taskId the task
    /// @param round the round
    /// @param accepted updates the result accepts
    /// @param rejected updates the result rejects
    /// @param reveals updates the round had revealed
    error LedgerCountMismatch(uint256 taskId, uint32 round, uint32 accepted, uint32 rejected, uint32 reveals);

    /// @notice A round's reward table totals more than the task pays per round.
    /// @param taskId the task
    /// @param round the round
    /// @param rewardTotal the table's total
    /// @param rewardPerRound the task's cap per round
    error LedgerRewardAboveRoundCap(uint256 taskId, uint32 round, uint256 rewardTotal, uint256 rewardPerRound);

    /// @notice A result that accepts no update pays a reward.
    /// @param taskId the task
    /// @param round the round
    /// @param rewardTotal the reward total it pays
    error LedgerRewardWithoutAccepted(uint256 taskId, uint32 round, uint256 rewardTotal);

    /// @notice A result does not use exactly the score sheets posted for the round.
    /// @param taskId the task
    /// @param round the round
    /// @param scoresBitmap the sheets the result (or proposal) uses
    /// @param roundScoresBitmap the sheets posted for the round
    error LedgerScoresMismatch(uint256 taskId, uint32 round, uint32 scoresBitmap, uint32 roundScoresBitmap);

    /// @notice The task's unreserved pool cannot cover the amount.
    /// @param taskId the task
    /// @param available the pool neither reserved by finalized rounds nor withdrawn
    /// @param required the amount needed (a round's reward cap, or a reward table's total)
    error LedgerInsufficientPool(uint256 taskId, uint256 available, uint256 required);

    /// @notice This result was already proposed in the round's current epoch.
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash {resultHashOf} the result
    error LedgerAlreadyProposed(uint256 taskId, uint32 round, bytes32 resultHash);

    /// @notice No result with this hash was proposed for the round.
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash the hash asked for
    error LedgerUnknownProposal(uint256 taskId, uint32 round, bytes32 resultHash);

    /// @notice The proposal belongs to an earlier epoch of the round (a voided finalization).
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash the proposal
    /// @param proposalEpoch the epoch it was proposed in
    /// @param epoch the round's epoch now
    error LedgerStaleProposal(uint256 taskId, uint32 round, bytes32 resultHash, uint32 proposalEpoch, uint32 epoch);

    /// @notice The validator already signed this proposal.
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash the proposal
    /// @param validator the validator
    error LedgerAlreadyAttested(uint256 taskId, uint32 round, bytes32 resultHash, address validator);

    /// @notice A signature does not recover to the validator it is given for (malformed, over
    /// another result, round, task, epoch, contract or chain, or by another key).
    /// @param taskId the task
    /// @param round the round
    /// @param validator the validator named
    /// @param recovered the signer recovered from the signature (zero if malformed)
    error LedgerInvalidSignature(uint256 taskId, uint32 round, address validator, address recovered);

    /// @notice {finalizeRound} did not gather the task's quorum of valid signatures.
    /// @param taskId the task
    /// @param round the round
    /// @param attestations the valid signatures the proposal has
    /// @param quorum the signatures the task requires
    error LedgerQuorumNotReached(uint256 taskId, uint32 round, uint32 attestations, uint32 quorum);

    /// @notice A challenged reward is justified: the account revealed an update in the round or
    /// is a validator whose score sheet the result used.
    /// @param taskId the task
    /// @param round the round
    /// @param account the account paid
    error LedgerRewardJustified(uint256 taskId, uint32 round, address account);

    /// @notice The proposal does not conflict with the finalized result (it is that result, or
    /// belongs to another epoch or set of score sheets).
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash the proposal
    error LedgerNotConflicting(uint256 taskId, uint32 round, bytes32 resultHash);

    /// @notice The conflicting proposal was already slashed.
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash the proposal
    error LedgerProposalAlreadySlashed(uint256 taskId, uint32 round, bytes32 resultHash);

    /// @notice The round's slash window is over.
    /// @param taskId the task
    /// @param round the round
    /// @param closedAt the last timestamp at which the round could slash
    error LedgerSlashWindowOver(uint256 taskId, uint32 round, uint64 closedAt);

    /// @notice The proof does not prove the slash leaf against the round's slash root.
    /// @param taskId the task
    /// @param round the round
    /// @param node the node to slash
    /// @param amount the amount to slash
    /// @param reason the reason code
    error LedgerInvalidSlashProof(uint256 taskId, uint32 round, address node, uint256 amount, uint16 reason);

    /// @notice The node's slash for this round was already executed.
    /// @param taskId the task
    /// @param round the round
    /// @param node the node
    error LedgerAlreadySlashed(uint256 taskId, uint32 round, address node);

    /// @notice The account already claimed its reward for this round.
    /// @param taskId the task
    /// @param round the round
    /// @param node the claiming account
    error LedgerAlreadyClaimed(uint256 taskId, uint32 round, address node);

    /// @notice The proof does not prove the leaf (taskId, round, account, amount) against the
    /// round's reward root.
    /// @param taskId the task
    /// @param round the round
    /// @param node the account paid
    /// @param amount the amount
    error LedgerInvalidProof(uint256 taskId, uint32 round, address node, uint256 amount);

    /// @notice The round's claims would exceed its posted reward total.
    /// @param taskId the task
    /// @param round the round
    /// @param claimed what the round's claims would add up to with this one
    /// @param rewardTotal the round's posted reward total
    error LedgerClaimAboveRoundTotal(uint256 taskId, uint32 round, uint256 claimed, uint256 rewardTotal);

    /// @notice A batch claim has no entries.
    error LedgerEmptyBatch();

    // ---------------------------------------------------------------- events

    /// @notice A sponsor created a task.
    /// @param taskId the new task's id
    /// @param sponsor the account that created it (and may cancel it and withdraw its remainder)
    /// @param token the ERC-20 of its rewards, stakes and bonds
    /// @param params every parameter of the task (roles, bonds, windows included)
    event TaskCreated(uint256 indexed taskId, address indexed sponsor, address indexed token, TaskParams params);

    /// @notice Tokens were deposited into a task's reward pool.
    /// @param taskId the task
    /// @param funder the depositing account
    /// @param amount the amount deposited
    /// @param funded every token deposited into the pool so far, this deposit included
    event TaskFunded(uint256 indexed taskId, address indexed funder, uint256 amount, uint256 funded);

    /// @notice The sponsor cancelled a task that could not go on: no round opens any more.
    /// @param taskId the task
    /// @param sponsor the sponsor
    /// @param roundsOpened rounds opened before the cancellation
    /// @param available the pool left to withdraw ({withdrawRemainder})
    event TaskCancelled(uint256 indexed taskId, address indexed sponsor, uint32 roundsOpened, uint256 available);

    /// @notice The task's aggregator or a validator locked its bond.
    /// @param taskId the task
    /// @param account the bondholder
    /// @param amount the bond locked
    event BondPosted(uint256 indexed taskId, address indexed account, uint256 amount);

    /// @notice A bond was slashed into the task's reward pool.
    /// @param taskId the task
    /// @param round the round whose result it proposed or signed
    /// @param account the bondholder
    /// @param amount the amount slashed (the whole bond)
    /// @param reason why (see {BondSlashReason})
    event BondSlashed(
        uint256 indexed taskId, uint32 indexed round, address indexed account, uint256 amount, BondSlashReason reason
    );

    /// @notice A bondholder took its bond back once the task was over.
    /// @param taskId the task
    /// @param account the bondholder
    /// @param amount the amount returned
    event BondWithdrawn(uint256 indexed taskId, address indexed account, uint256 amount);

    /// @notice A node joined a task and locked its stake.
    /// @param taskId the task
    /// @param node the node
    /// @param stake the stake locked
    /// @param joinedRound rounds opened when it joined: it commits from round `joinedRound + 1` on
    event NodeJoined(uint256 indexed taskId, address indexed node, uint256 stake, uint32 joinedRound);

    /// @notice A node started leaving a task: it is no longer active; its stake stays slashable
    /// until {withdrawStake}.
    /// @param taskId the task
    /// @param node the node
    /// @param stake its stake now
    /// @param lastCommitRound the last round it committed in (zero: none)
    event NodeLeaving(uint256 indexed taskId, address indexed node, uint256 stake, uint32 lastCommitRound);

    /// @notice A leaving node took back what was left of its stake.
    /// @param taskId the task
    /// @param node the node
    /// @param stakeReturned the stake returned to it
    event NodeLeft(uint256 indexed taskId, address indexed node, uint256 stakeReturned);

    /// @notice Part of a node's stake was moved into the task's reward pool, as the round's
    /// quorum-signed slash root lists it.
    /// @param taskId the task
    /// @param round the round the slash is for
    /// @param node the node
    /// @param amount the amount taken (the slash, at most what was left of the stake)
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
    /// @param eligible members that may commit in it (its commit phase ends once all have)
    event RoundOpened(
        uint256 indexed taskId,
        uint32 indexed round,
        bytes32 startDigest,
        uint64 deadline,
        uint64 revealDeadline,
        uint32 eligible
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

    /// @notice A validator posted its score sheet for a round.
    /// @param taskId the task
    /// @param round the round
    /// @param validator the validator
    /// @param scoresDigest sha256 of the sheet's bytes (what its signatures commit to)
    /// @param scoresCid CID of the sheet (kept only in this event)
    event ScoresPosted(
        uint256 indexed taskId, uint32 indexed round, address indexed validator, bytes32 scoresDigest, string scoresCid
    );

    /// @notice A result was proposed for a round.
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash {resultHashOf} the result, in `epoch`
    /// @param proposer the aggregator or validator that proposed it
    /// @param epoch the round's epoch
    /// @param result the whole result
    event ResultProposed(
        uint256 indexed taskId,
        uint32 indexed round,
        bytes32 indexed resultHash,
        address proposer,
        uint32 epoch,
        Finalization result
    );

    /// @notice A validator's signature of a proposed result was checked and counted.
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash the proposal signed
    /// @param validator the validator
    /// @param signature its EIP-712 signature ({attestationDigest}), so audits can check it again
    /// @param attestations valid signatures of the proposal so far, this one included
    event Attested(
        uint256 indexed taskId,
        uint32 indexed round,
        bytes32 indexed resultHash,
        address validator,
        bytes signature,
        uint32 attestations
    );

    /// @notice A round was finalized: its result reached the quorum; the challenge window runs.
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash {resultHashOf} the result
    /// @param proposer the account that proposed it
    /// @param result the whole result
    /// @param signers bit i: validators[i] signed it
    /// @param epoch the round's epoch
    event RoundFinalized(
        uint256 indexed taskId,
        uint32 indexed round,
        bytes32 indexed resultHash,
        address proposer,
        Finalization result,
        uint32 signers,
        uint32 epoch
    );

    /// @notice A finalized round was voided by a successful challenge: back to `Closed`, in a
    /// new epoch; the bonds of its proposer and signers were slashed ({BondSlashed}).
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash the voided result
    /// @param challenger the account that challenged it
    /// @param account the account the result paid without taking part
    /// @param amount the amount it paid that account
    /// @param epoch the round's new epoch
    event RoundVoided(
        uint256 indexed taskId,
        uint32 indexed round,
        bytes32 indexed resultHash,
        address challenger,
        address account,
        uint256 amount,
        uint32 epoch
    );

    /// @notice A proposal conflicting with the finalized result was slashed: its proposer's and
    /// its signers' bonds ({BondSlashed}).
    /// @param taskId the task
    /// @param round the round
    /// @param resultHash the conflicting proposal
    /// @param finalizedHash the finalized result it conflicts with
    /// @param slasher the account that called {slashConflicting}
    event ProposalSlashed(
        uint256 indexed taskId, uint32 indexed round, bytes32 indexed resultHash, bytes32 finalizedHash, address slasher
    );

    /// @notice A round nobody finalized in time was abandoned.
    /// @param taskId the task
    /// @param round the round
    /// @param epoch the round's epoch
    /// @param caller the account that abandoned it
    event RoundAbandoned(uint256 indexed taskId, uint32 indexed round, uint32 epoch, address caller);

    /// @notice An account claimed its reward for a round.
    /// @param taskId the task
    /// @param round the round
    /// @param node the account paid
    /// @param amount the amount paid
    event RewardClaimed(uint256 indexed taskId, uint32 indexed round, address indexed node, uint256 amount);

    /// @notice The sponsor took back the unreserved pool of a complete or cancelled task.
    /// @param taskId the task
    /// @param sponsor the sponsor paid
    /// @param amount the amount paid
    event RemainderWithdrawn(uint256 indexed taskId, address indexed sponsor, uint256 amount);

    // ---------------------------------------------------------------- tasks

    /**
     * @notice Creates a training task; the caller becomes its sponsor.
     *
     * Requirements:
     * - `params.token` is a contract; `submissionWindow`, `revealWindow`, `maxExamples`,
     *   `maxRounds`, `challengeWindow`, `slashWindow` and `gracePeriod` are positive;
     * - the initial global adapter has a CID and a non-zero digest;
     * - the aggregator is not zero; 1 to 32 validators, none zero, distinct, none the
     *   aggregator; `validators/2 < quorum <= validators`; `validatorShareBps <= 5000`.
     *
     * Emits: {TaskCreated}.
     */
    function createTask(TaskParams calldata params) external returns (uint256 taskId);

    /**
     * @notice Deposits `amount` of the task's token into its reward pool. Anyone may fund.
     *
     * Requirements:
     * - the task exists, is neither complete nor cancelled; `amount` is positive;
     * - the caller approved this contract for `amount`.
     *
     * Emits: {TaskFunded}.
     */
    function fundTask(uint256 taskId, uint256 amount) external;

    /**
     * @notice Cancels a task that cannot go on; no round opens any more, the sponsor may then
     * withdraw the remainder and bondholders and nodes their deposits.
     *
     * Requirements:
     * - the caller is the sponsor; the task is neither cancelled nor complete;
     * - no round is in flight: none opened, or the last one is `Settled` or `Abandoned`;
     * - the task cannot go on: its unreserved pool is short of a round's reward, no node is
     *   active, the last round was abandoned, the aggregator's bond is missing or slashed, or
     *   nothing happened for `gracePeriod` since creation or the last round's settling.
     *
     * Emits: {TaskCancelled}.
     */
    function cancelTask(uint256 taskId) external;

    /**
     * @notice Returns the unreserved pool to the sponsor. Rewards of finalized rounds stay
     * reserved for their claims. Can be called again for what later slashes add to the pool.
     *
     * Requirements:
     * - the caller is the task's sponsor; the task is complete or cancelled (so no round is
     *   in its challenge window); something is left.
     *
     * Emits: {RemainderWithdrawn}.
     */
    function withdrawRemainder(uint256 taskId) external;

    // ---------------------------------------------------------------- bonds

    /**
     * @notice Locks the caller's bond for the task: `aggregatorBond` for its aggregator,
     * `validatorBond` for a validator. Posted once.
     *
     * Requirements:
     * - the caller is the task's aggregator or one of its validators and has not posted;
     * - the task is neither complete nor cancelled;
     * - the caller approved this contract for the bond.
     *
     * Emits: {BondPosted}.
     */
    function postBond(uint256 taskId) external;

    /**
     * @notice Returns the caller's bond once the task is over and no round can slash it.
     *
     * Requirements:
     * - the caller is the task's aggregator or one of its validators and holds a bond
     *   (posted, not slashed, not withdrawn);
     * - the task is complete or cancelled;
     * - every settled round's slash window is over.
     *
     * Emits: {BondWithdrawn}.
     */
    function withdrawBond(uint256 taskId) external;

    // ---------------------------------------------------------------- nodes

    /**
     * @notice Joins a task by staking its minimum stake. The node commits from the next round
     * opened on.
     *
     * Requirements:
     * - the task exists, is not cancelled and has rounds left to open; the caller is not a
     *   member;
     * - the caller approved this contract for the task's `minStake`.
     *
     * Emits: {NodeJoined}.
     */
    function join(uint256 taskId) external;

    /**
     * @notice Starts leaving a task: the node stops being active (it no longer counts towards
     * the early end of a commit phase, and no longer commits); its stake stays slashable until
     * {withdrawStake}.
     *
     * Requirements:
     * - the caller is a member that has not started leaving.
     *
     * Emits: {NodeLeaving}.
     */
    function leave(uint256 taskId) external;

    /**
     * @notice Pays a leaving node what is left of its stake and ends its membership.
     *
     * Requirements:
     * - the caller started leaving ({leave});
     * - the last round it committed in is `Abandoned`, or `Settled` with its slash window over,
     *   and so are the slash windows of the rounds it committed in before.
     *
     * Emits: {NodeLeft}.
     */
    function withdrawStake(uint256 taskId) external;

    // ---------------------------------------------------------------- rounds

    /**
     * @notice Opens the next round, training from the task's current global adapter; the
     * members active now are its eligible committers.
     *
     * Requirements:
     * - the caller is the task's aggregator, its bond posted and not slashed;
     * - the task is not cancelled; the last round opened is `Settled` or `Abandoned`; the task
     *   has rounds left;
     * - the pool not yet reserved covers a full round's reward.
     *
     * Emits: {RoundOpened}.
     */
    function openRound(uint256 taskId) external returns (uint32 round);

    /**
     * @notice Commits to an update in an `Open` round: `commitment` is {commitmentOf} the
     * update's digest, example count and a secret salt; nothing else is published. The commit
     * phase ends early once every eligible member has committed.
     *
     * Requirements:
     * - the caller is a member, not leaving, with at least the minimum stake;
     * - `round` is `Open` and was opened after the caller joined; the caller has not committed
     *   in it; `commitment` is not zero.
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
     * @notice Posts the caller's score sheet for a `Closed` round: the digest its signatures
     * will commit to, the CID in the event. Results must use every sheet posted (`scoresBitmap`).
     *
     * Requirements:
     * - the caller is a validator of the task with its bond posted and not slashed;
     * - `round` is `Closed`; the caller has not posted for it (once per round, whatever the
     *   epoch); the digest is not zero and the CID not empty.
     *
     * Emits: {ScoresPosted}.
     */
    function postScores(uint256 taskId, uint32 round, bytes32 scoresDigest, string calldata scoresCid) external;

    /**
     * @notice Proposes a result for a `Closed` round, for validators to sign ({attest}).
     *
     * Requirements:
     * - the caller is the aggregator or a validator, its bond posted and not slashed;
     * - `round` is `Closed`; the result was not proposed in this epoch;
     * - `accepted + rejected` equals the round's reveals; `accepted == 0` implies
     *   `rewardTotal == 0`; `rewardTotal` is at most the reward per round and the unreserved
     *   pool; `scoresBitmap` equals the round's; CIDs are not empty and the digest not zero.
     *
     * Emits: {ResultProposed}.
     */
    function proposeResult(uint256 taskId, uint32 round, Finalization calldata result)
        external
        returns (bytes32 resultHash);

    /**
     * @notice Counts a validator's signature of a proposed result; anyone may relay it. The
     * signature that reaches the task's quorum finalizes the round.
     *
     * Requirements:
     * - `round` is `Closed`; the proposal exists, belongs to the round's epoch and its
     *   `scoresBitmap` still equals the round's;
     * - `validator` is a validator of the task, its bond posted and not slashed, and has not
     *   signed the proposal;
     * - `signature` is its EIP-712 signature of {attestationDigest} for this result.
     *
     * Emits: {Attested}; {RoundFinalized} when the quorum is reached.
     */
    function attest(uint256 taskId, uint32 round, bytes32 resultHash, address validator, bytes calldata signature)
        external;

    /**
     * @notice Proposes (unless already proposed) and attests a result in one transaction.
     * Gas grows with the number of signatures only, never with the number of nodes.
     *
     * Requirements:
     * - as {proposeResult} when the result is new (the caller then proposes it), as {attest}
     *   for every attestation;
     * - the proposal reaches the task's quorum, or it reverts with {LedgerQuorumNotReached}.
     *
     * Emits: {ResultProposed} (when new), {Attested} per signature, {RoundFinalized}.
     */
    function finalizeRound(
        uint256 taskId,
        uint32 round,
        Finalization calldata result,
        Attestation[] calldata attestations
    ) external;

    /**
     * @notice Challenges a `Finalized` round whose reward table pays an account that took no
     * part: the round is voided (back to `Closed` in a new epoch, its reserve released and the
     * task's global adapter restored) and the bonds of its proposer and of every signer are
     * slashed into the task's pool. Anyone may challenge.
     *
     * Requirements:
     * - `round` is `Finalized`; `proof` proves the leaf (taskId, round, account, amount)
     *   against its reward root;
     * - `account` revealed no update in the round and is no validator whose score sheet the
     *   result used.
     *
     * Emits: {BondSlashed} per bond slashed, {RoundVoided}.
     */
    function challengeReward(uint256 taskId, uint32 round, address account, uint256 amount, bytes32[] calldata proof)
        external;

    /**
     * @notice Slashes a proposal that conflicts with a round's finalized result: same epoch,
     * same score sheets, another result. Its proposer's and its signers' bonds go into the
     * task's pool. Anyone may call it, once per proposal.
     *
     * Requirements:
     * - `round` is `Finalized`, or `Settled` within its slash window;
     * - the proposal exists, has the finalized result's epoch and `scoresBitmap` and another
     *   hash, differs from it in its reward root, reward total or counts (its `outcomeHash`:
     *   honest derivations differ only in report bytes and float rounding), and was not slashed
     *   before.
     *
     * Emits: {BondSlashed} per bond slashed, {ProposalSlashed}.
     */
    function slashConflicting(uint256 taskId, uint32 round, bytes32 resultHash) external;

    /**
     * @notice Executes one slash of a round's quorum-signed slash root: moves
     * `min(amount, stake)` of the node's stake into the task's pool. Anyone may execute it.
     *
     * Requirements:
     * - `round` is `Settled` and its slash window (`finalizedAt + challengeWindow + slashWindow`)
     *   is not over;
     * - `proof` proves {slashLeaf}(taskId, round, node, amount, reason, evidenceCid) against the
     *   round's slash root;
     * - the node committed in the round and this slash was not executed before.
     *
     * Emits: {NodeSlashed}.
     */
    function executeSlash(
        uint256 taskId,
        uint32 round,
        address node,
        uint256 amount,
        uint16 reason,
        string calldata evidenceCid,
        bytes32[] calldata proof
    ) external;

    /**
     * @notice Abandons a round nobody finalized in time: nothing of it is reserved, its
     * commitments unlock, the next round can open. Anyone may call it.
     *
     * Requirements:
     * - `round` is `Open`, `Revealing` or `Closed`;
     * - now is past `max(revealDeadline, voidedAt) + gracePeriod`.
     *
     * Emits: {RoundAbandoned}.
     */
    function abandonRound(uint256 taskId, uint32 round) external;

    // ---------------------------------------------------------------- claims

    /**
     * @notice Claims the caller's reward for a `Settled` round with a Merkle proof.
     *
     * Requirements:
     * - the round is `Settled`; the caller has not claimed it; `amount` is positive;
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

    // ---------------------------------------------------------------- views

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

    /// @notice Whether every round of the task has been opened and the last one is `Settled`
    /// or `Abandoned`. Requirements: the task exists.
    function isComplete(uint256 taskId) external view returns (bool);

    /// @notice The task's validators, in the order their bits take in bitmaps.
    /// Requirements: the task exists.
    function validatorsOf(uint256 taskId) external view returns (address[] memory);

    /// @notice The bond of `account` (the aggregator or a validator) in task `taskId`.
    /// Requirements: the task exists.
    function bondOf(uint256 taskId, address account) external view returns (Bond memory);

    /// @notice The digest of the score sheet `validator` posted for a round (zero: none).
    function scoresOf(uint256 taskId, uint32 round, address validator) external view returns (bytes32);

    /// @notice The proposal of a round with hash `resultHash` (zero proposer: none).
    function proposalOf(uint256 taskId, uint32 round, bytes32 resultHash) external view returns (Proposal memory);

    /// @notice The hash of `result` for round `round` in the round's current epoch:
    /// `keccak256(abi.encode(taskId, round, epoch, globalDigest, keccak256(bytes(globalCid)),
    /// keccak256(bytes(reportCid)), accepted, rejected, rewardRoot, rewardTotal, slashRoot,
    /// scoresBitmap))`. Requirements: the task exists.
    function resultHashOf(uint256 taskId, uint32 round, Finalization calldata result) external view returns (bytes32);

    /// @notice The EIP-712 digest a validator signs (domain `LoRALedger`, version `3`, this
    /// chain and contract) for the struct `RoundResult(uint256 taskId,uint32 round,
    /// bytes32 resultHash,bytes32 globalDigest,bytes32 reportCidHash,bytes32 rewardRoot,
    /// bytes32 scoresDigest)`, where `scoresDigest` is its own sheet's digest (zero if none).
    function attestationDigest(
        uint256 taskId,
        uint32 round,
        bytes32 resultHash,
        bytes32 globalDigest,
        bytes32 reportCidHash,
        bytes32 rewardRoot,
        bytes32 scoresDigest
    ) external view returns (bytes32);

    /// @notice The reward leaf a claim proves (OpenZeppelin standard Merkle tree format).
    function rewardLeaf(uint256 taskId, uint32 round, address node, uint256 amount) external pure returns (bytes32);

    /// @notice The slash leaf {executeSlash} proves (OpenZeppelin standard Merkle tree format):
    /// `keccak256(bytes.concat(keccak256(abi.encode(taskId, round, node, amount, reason,
    /// keccak256(bytes(evidenceCid))))))`.
    function slashLeaf(
        uint256 taskId,
        uint32 round,
        address node,
        uint256 amount,
        uint16 reason,
        string calldata evidenceCid
    ) external pure returns (bytes32);

    /// @notice The commitment {commitUpdate} expects for an update:
    /// `keccak256(abi.encode(taskId, round, node, digest, numExamples, salt))`. Binding the
    /// node and round stops anyone from replaying another node's commitment.
    function commitmentOf(uint256 taskId, uint32 round, address node, bytes32 digest, uint64 numExamples, bytes32 salt)
        external
        pure
        returns (bytes32);
}
