// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title ILoRALedger
 * @notice The on-chain protocol of LoRA Ledger: training tasks, staked nodes, rounds of update
 * commitments, finalization with a Merkle root of rewards, and claims.
 *
 * Storage keeps only what later checks need (digests, counts, roots); content identifiers
 * (IPFS CIDs) travel in events, so the full history can be rebuilt from logs.
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
        uint64 submissionWindow; // seconds a round accepts submissions
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
        uint64 deadline; // last timestamp at which submissions are accepted
        uint32 submissions;
        uint32 accepted;
        uint32 rejected;
        bool finalized;
    }

    /// @notice A node's membership in a task.
    struct Member {
        bool joined;
        uint256 stake;
    }

    /// @notice A node's commitment for one round.
    struct Submission {
        bytes32 digest; // sha256 of the exact update bytes; zero when there is none
        uint64 numExamples;
        uint64 submittedAt;
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

    // ---------------------------------------------------------------- errors

    error LedgerUnknownTask(uint256 taskId);
    error LedgerInvalidToken(address token);
    error LedgerInvalidWindow(uint64 submissionWindow);
    error LedgerInvalidMaxRounds(uint32 maxRounds);
    error LedgerEmptyCid();
    error LedgerZeroDigest();
    error LedgerZeroAmount();
    error LedgerNotSponsor(uint256 taskId, address caller);
    error LedgerAlreadyJoined(uint256 taskId, address node);
    error LedgerNotJoined(uint256 taskId, address node);
    error LedgerStakeTooLow(uint256 taskId, address node, uint256 stake, uint256 minStake);
    error LedgerTaskComplete(uint256 taskId, uint32 maxRounds);
    error LedgerTaskNotComplete(uint256 taskId, uint32 roundsFinalized, uint32 maxRounds);
    error LedgerRoundStillOpen(uint256 taskId, uint32 round);
    error LedgerNoOpenRound(uint256 taskId);
    error LedgerWrongRound(uint256 taskId, uint32 round, uint32 openRound);
    error LedgerSubmissionWindowClosed(uint256 taskId, uint32 round, uint64 deadline, uint256 timestamp);
    error LedgerAlreadySubmitted(uint256 taskId, uint32 round, address node);
    error LedgerDigestReused(uint256 taskId, bytes32 digest);
    error LedgerZeroExamples(uint256 taskId, uint32 round, address node);
    error LedgerWindowNotOver(uint256 taskId, uint32 round, uint64 deadline, uint32 submissions, uint32 activeNodes);
    error LedgerCountMismatch(uint256 taskId, uint32 round, uint32 accepted, uint32 rejected, uint32 submissions);
    error LedgerRewardAboveRoundCap(uint256 taskId, uint32 round, uint256 rewardTotal, uint256 rewardPerRound);
    error LedgerInsufficientPool(uint256 taskId, uint256 available, uint256 required);
    error LedgerRoundNotFinalized(uint256 taskId, uint32 round);
    error LedgerRoundAlreadyFinalized(uint256 taskId, uint32 round);
    error LedgerAlreadyClaimed(uint256 taskId, uint32 round, address node);
    error LedgerInvalidProof(uint256 taskId, uint32 round, address node, uint256 amount);
    error LedgerClaimAboveRoundTotal(uint256 taskId, uint32 round, uint256 claimed, uint256 rewardTotal);
    error LedgerLeaveDuringRound(uint256 taskId, uint32 round, address node);
    error LedgerSlashAboveStake(uint256 taskId, address node, uint256 amount, uint256 stake);
    error LedgerEmptyBatch();

    // ---------------------------------------------------------------- events

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
        uint32 maxRounds
    );
    event TaskFunded(uint256 indexed taskId, address indexed funder, uint256 amount, uint256 funded);
    event NodeJoined(uint256 indexed taskId, address indexed node, uint256 stake);
    event NodeLeft(uint256 indexed taskId, address indexed node, uint256 stakeReturned);
    event NodeSlashed(uint256 indexed taskId, address indexed node, uint256 amount, uint16 indexed reason);
    event RoundOpened(uint256 indexed taskId, uint32 indexed round, bytes32 startDigest, uint64 deadline);
    event UpdateSubmitted(
        uint256 indexed taskId, uint32 indexed round, address indexed node, string cid, bytes32 digest, uint64 numExamples
    );
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
    event RewardClaimed(uint256 indexed taskId, uint32 indexed round, address indexed node, uint256 amount);
    event RemainderWithdrawn(uint256 indexed taskId, address indexed sponsor, uint256 amount);

    // ---------------------------------------------------------------- functions

    function createTask(TaskParams calldata params) external returns (uint256 taskId);
    function fundTask(uint256 taskId, uint256 amount) external;
    function join(uint256 taskId) external;
    function leave(uint256 taskId) external;
    function openRound(uint256 taskId) external returns (uint32 round);
    function submitUpdate(uint256 taskId, uint32 round, string calldata cid, bytes32 digest, uint64 numExamples)
        external;
    function finalizeRound(uint256 taskId, uint32 round, Finalization calldata result) external;
    function claim(uint256 taskId, uint32 round, uint256 amount, bytes32[] calldata proof) external;
    function claimBatch(Claim[] calldata claims) external;
    function slash(uint256 taskId, address node, uint256 amount, uint16 reason) external;
    function withdrawRemainder(uint256 taskId) external;

    function getTask(uint256 taskId) external view returns (Task memory);
    function getRound(uint256 taskId, uint32 round) external view returns (Round memory);
    function getMember(uint256 taskId, address node) external view returns (Member memory);
    function getSubmission(uint256 taskId, uint32 round, address node) external view returns (Submission memory);
    function hasClaimed(uint256 taskId, uint32 round, address node) external view returns (bool);
    function taskCount() external view returns (uint256);
    function isComplete(uint256 taskId) external view returns (bool);
    function rewardLeaf(uint256 taskId, uint32 round, address node, uint256 amount) external pure returns (bytes32);
}
