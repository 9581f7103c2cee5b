// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {ILoRALedger} from "./interfaces/ILoRALedger.sol";

/**
 * @title LoRALedger
 * @notice Coordinates federated LoRA fine-tuning tasks: sponsors fund a reward pool in an
 * ERC-20, nodes stake to join, an aggregator opens rounds, nodes commit to hidden updates and
 * then reveal them (CID in the event, sha256 digest in storage), the aggregator finalizes each
 * round once with the new global adapter and a Merkle root of the round's reward table, and
 * nodes claim.
 *
 * Accounting per task, in the task's token: `funded` counts every deposit into the reward pool
 * (sponsor funding and slashed stakes); `reserved` is the sum of finalized rounds' reward
 * totals; `paid` what was claimed; `withdrawn` what the sponsor took back after completion.
 * Invariants: `paid <= reserved` and `reserved + withdrawn <= funded`, so payouts never exceed
 * deposits. Stakes are held apart from the pool and returned on leaving, less any slashing.
 *
 * Reward leaves use OpenZeppelin's standard Merkle tree format:
 * `keccak256(bytes.concat(keccak256(abi.encode(taskId, round, node, amount))))`.
 *
 * Tokens that charge a fee on transfer are not supported.
 */
contract LoRALedger is ILoRALedger, AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Role allowed to open and finalize rounds and to slash stakes.
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");

    // Bitmaps of allowed round states for {_validateRoundState}: bit `uint8(state)` per state.
    bytes32 private constant _OPEN = bytes32(1 << uint8(RoundState.Open));
    bytes32 private constant _REVEALING = bytes32(1 << uint8(RoundState.Revealing));
    bytes32 private constant _CLOSED = bytes32(1 << uint8(RoundState.Closed));
    bytes32 private constant _FINALIZED = bytes32(1 << uint8(RoundState.Finalized));

    uint256 private _taskCount;
    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 taskId => mapping(uint32 round => Round)) private _rounds;
    mapping(uint256 taskId => mapping(address node => Member)) private _members;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address node => Submission))) private _submissions;
    mapping(uint256 taskId => mapping(bytes32 digest => bool)) private _digestUsed;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address node => bool))) private _claimed;

    /**
     * @param admin account given `DEFAULT_ADMIN_ROLE` (grants and revokes aggregators)
     * @param aggregator account given `AGGREGATOR_ROLE`; zero for none
     */
    constructor(address admin, address aggregator) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (aggregator != address(0)) {
            _grantRole(AGGREGATOR_ROLE, aggregator);
        }
    }

    // ------------------------------------------------------------------ tasks

    /// @inheritdoc ILoRALedger
    function createTask(TaskParams calldata params) external returns (uint256 taskId) {
        if (params.token.code.length == 0) revert LedgerInvalidToken(params.token);
        if (params.submissionWindow == 0) revert LedgerInvalidWindow(params.submissionWindow);
        if (params.revealWindow == 0) revert LedgerInvalidRevealWindow(params.revealWindow);
        if (params.maxExamples == 0) revert LedgerInvalidMaxExamples(params.maxExamples);
        if (params.maxRounds == 0) revert LedgerInvalidMaxRounds(params.maxRounds);
        if (bytes(params.initialGlobalCid).length == 0) revert LedgerEmptyCid();
        if (params.initialGlobalDigest == bytes32(0)) revert LedgerZeroDigest();

        taskId = ++_taskCount;
        Task storage task = _tasks[taskId];
        task.sponsor = msg.sender;
        task.token = params.token;
        task.baseModelHash = params.baseModelHash;
        task.globalDigest = params.initialGlobalDigest;
        task.rewardPerRound = params.rewardPerRound;
        task.minStake = params.minStake;
        task.submissionWindow = params.submissionWindow;
        task.revealWindow = params.revealWindow;
        task.maxExamples = params.maxExamples;
        task.maxRounds = params.maxRounds;
        emit TaskCreated(
            taskId,
            msg.sender,
            params.token,
            params.baseModelHash,
            params.initialGlobalCid,
            params.initialGlobalDigest,
            params.rewardPerRound,
            params.minStake,
            params.submissionWindow,
            params.revealWindow,
            params.maxExamples,
            params.maxRounds
        );
    }

    /// @inheritdoc ILoRALedger
    function fundTask(uint256 taskId, uint256 amount) external nonReentrant {
        Task storage task = _existingTask(taskId);
        if (amount == 0) revert LedgerZeroAmount();
        if (_isComplete(taskId, task)) revert LedgerTaskComplete(taskId, task.maxRounds);

        task.funded += amount;
        emit TaskFunded(taskId, msg.sender, amount, task.funded);

        IERC20(task.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc ILoRALedger
    function withdrawRemainder(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        if (msg.sender != task.sponsor) revert LedgerNotSponsor(taskId, msg.sender);
        if (!_isComplete(taskId, task)) {
            revert LedgerTaskNotComplete(taskId, _roundsFinalized(taskId, task), task.maxRounds);
        }
        uint256 amount = _available(task);
        if (amount == 0) revert LedgerZeroAmount();

        task.withdrawn += amount;
        emit RemainderWithdrawn(taskId, msg.sender, amount);

        IERC20(task.token).safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ nodes

    /// @inheritdoc ILoRALedger
    function join(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        if (_isComplete(taskId, task)) revert LedgerTaskComplete(taskId, task.maxRounds);
        Member storage member = _members[taskId][msg.sender];
        if (member.joined) revert LedgerAlreadyJoined(taskId, msg.sender);

        uint256 stake = task.minStake;
        member.joined = true;
        member.stake = stake;
        ++task.activeNodes;
        emit NodeJoined(taskId, msg.sender, stake);

        if (stake > 0) {
            IERC20(task.token).safeTransferFrom(msg.sender, address(this), stake);
        }
    }

    /// @inheritdoc ILoRALedger
    function leave(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        Member storage member = _members[taskId][msg.sender];
        if (!member.joined) revert LedgerNotJoined(taskId, msg.sender);
        uint32 pending = _unfinalizedRound(taskId, task);
        if (pending != 0 && _submissions[taskId][pending][msg.sender].commitment != bytes32(0)) {
            revert LedgerLeaveDuringRound(taskId, pending, msg.sender);
        }

        uint256 stake = member.stake;
        member.joined = false;
        member.stake = 0;
        --task.activeNodes;
        if (pending != 0) {
            // Every node left may have committed: the commit phase then ends, as on a last commit.
            Round storage r = _rounds[taskId][pending];
            if (_roundState(task, pending, r) == RoundState.Open) _noteAllCommitted(task, r);
        }
        emit NodeLeft(taskId, msg.sender, stake);

        if (stake > 0) {
            IERC20(task.token).safeTransfer(msg.sender, stake);
        }
    }

    /// @inheritdoc ILoRALedger
    function slash(
        uint256 taskId,
        uint32 round,
        address node,
        uint256 amount,
        uint16 reason,
        string calldata evidenceCid
    ) external onlyRole(AGGREGATOR_ROLE) {
        Task storage task = _existingTask(taskId);
        _validateRoundState(taskId, task, round, _FINALIZED);
        if (_submissions[taskId][round][node].commitment == bytes32(0)) revert LedgerNotCommitted(taskId, round, node);
        Member storage member = _members[taskId][node];
        if (!member.joined) revert LedgerNotJoined(taskId, node);
        if (amount == 0) revert LedgerZeroAmount();
        if (amount > member.stake) revert LedgerSlashAboveStake(taskId, node, amount, member.stake);
        if (bytes(evidenceCid).length == 0) revert LedgerEmptyCid();

        // unchecked: amount <= member.stake was checked above.
        unchecked {
            member.stake -= amount;
        }
        task.funded += amount;
        emit NodeSlashed(taskId, round, node, amount, reason, evidenceCid);
    }

    // ------------------------------------------------------------------ rounds

    /// @inheritdoc ILoRALedger
    function openRound(uint256 taskId) external onlyRole(AGGREGATOR_ROLE) returns (uint32 round) {
        Task storage task = _existingTask(taskId);
        if (task.roundsOpened != 0) _validateRoundState(taskId, task, task.roundsOpened, _FINALIZED);
        if (task.roundsOpened == task.maxRounds) revert LedgerTaskComplete(taskId, task.maxRounds);
        uint256 available = _available(task);
        if (available < task.rewardPerRound) revert LedgerInsufficientPool(taskId, available, task.rewardPerRound);

        round = ++task.roundsOpened;
        Round storage r = _rounds[taskId][round];
        r.startDigest = task.globalDigest;
        r.openedAt = uint64(block.timestamp);
        r.deadline = uint64(block.timestamp) + task.submissionWindow;
        r.revealDeadline = r.deadline + task.revealWindow;
        emit RoundOpened(taskId, round, r.startDigest, r.deadline, r.revealDeadline);
    }

    /// @inheritdoc ILoRALedger
    function commitUpdate(uint256 taskId, uint32 round, bytes32 commitment) external {
        Task storage task = _existingTask(taskId);
        Member storage member = _members[taskId][msg.sender];
        if (!member.joined) revert LedgerNotJoined(taskId, msg.sender);
        if (member.stake < task.minStake) {
            revert LedgerStakeTooLow(taskId, msg.sender, member.stake, task.minStake);
        }
        Round storage r = _validateRoundState(taskId, task, round, _OPEN);
        Submission storage submission = _submissions[taskId][round][msg.sender];
        if (submission.commitment != bytes32(0)) revert LedgerAlreadyCommitted(taskId, round, msg.sender);
        if (commitment == bytes32(0)) revert LedgerZeroCommitment();

        submission.commitment = commitment;
        submission.committedAt = uint64(block.timestamp);
        ++r.commits;
        _noteAllCommitted(task, r);
        emit UpdateCommitted(taskId, round, msg.sender, commitment);
    }

    /// @inheritdoc ILoRALedger
    function revealUpdate(
        uint256 taskId,
        uint32 round,
        string calldata cid,
        bytes32 digest,
        uint64 numExamples,
        bytes32 salt
    ) external {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _REVEALING);
        Submission storage submission = _submissions[taskId][round][msg.sender];
        bytes32 committed = submission.commitment;
        if (committed == bytes32(0)) revert LedgerNotCommitted(taskId, round, msg.sender);
        if (submission.revealedAt != 0) revert LedgerAlreadyRevealed(taskId, round, msg.sender);
        bytes32 revealed = commitmentOf(taskId, round, msg.sender, digest, numExamples, salt);
        if (revealed != committed) revert LedgerCommitmentMismatch(taskId, round, msg.sender, committed, revealed);
        if (bytes(cid).length == 0) revert LedgerEmptyCid();
        if (digest == bytes32(0)) revert LedgerZeroDigest();
        if (numExamples == 0) revert LedgerZeroExamples(taskId, round, msg.sender);
        if (numExamples > task.maxExamples) {
            revert LedgerExamplesAboveCap(taskId, round, msg.sender, numExamples, task.maxExamples);
        }
        if (_digestUsed[taskId][digest]) revert LedgerDigestReused(taskId, digest);

        submission.digest = digest;
        submission.numExamples = numExamples;
        submission.revealedAt = uint64(block.timestamp);
        _digestUsed[taskId][digest] = true;
        ++r.reveals;
        emit UpdateRevealed(taskId, round, msg.sender, cid, digest, numExamples);
    }

    /// @inheritdoc ILoRALedger
    function finalizeRound(uint256 taskId, uint32 round, Finalization calldata result)
        external
        onlyRole(AGGREGATOR_ROLE)
    {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _CLOSED);
        if (uint256(result.accepted) + result.rejected != r.reveals) {
            revert LedgerCountMismatch(taskId, round, result.accepted, result.rejected, r.reveals);
        }
        if (bytes(result.globalCid).length == 0 || bytes(result.reportCid).length == 0) revert LedgerEmptyCid();
        if (result.globalDigest == bytes32(0)) revert LedgerZeroDigest();
        if (result.rewardTotal > task.rewardPerRound) {
            revert LedgerRewardAboveRoundCap(taskId, round, result.rewardTotal, task.rewardPerRound);
        }
        uint256 available = _available(task);
        if (result.rewardTotal > available) revert LedgerInsufficientPool(taskId, available, result.rewardTotal);

        r.finalized = true;
        r.resultDigest = result.globalDigest;
        r.rewardRoot = result.rewardRoot;
        r.rewardTotal = result.rewardTotal;
        r.accepted = result.accepted;
        r.rejected = result.rejected;
        task.globalDigest = result.globalDigest;
        task.reserved += result.rewardTotal;
        emit RoundFinalized(
            taskId,
            round,
            result.globalCid,
            result.globalDigest,
            result.reportCid,
            result.accepted,
            result.rejected,
            result.rewardRoot,
            result.rewardTotal
        );
    }

    // ------------------------------------------------------------------ claims

    /// @inheritdoc ILoRALedger
    function claim(uint256 taskId, uint32 round, uint256 amount, bytes32[] calldata proof) external nonReentrant {
        address token = _recordClaim(taskId, round, amount, proof);
        IERC20(token).safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc ILoRALedger
    function claimBatch(Claim[] calldata claims) external nonReentrant {
        uint256 n = claims.length;
        if (n == 0) revert LedgerEmptyBatch();
        address[] memory tokens = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            Claim calldata c = claims[i];
            tokens[i] = _recordClaim(c.taskId, c.round, c.amount, c.proof);
        }
        for (uint256 i = 0; i < n; ++i) {
            IERC20(tokens[i]).safeTransfer(msg.sender, claims[i].amount);
        }
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ILoRALedger
    function getTask(uint256 taskId) external view returns (Task memory) {
        return _existingTask(taskId);
    }

    /// @inheritdoc ILoRALedger
    function getRound(uint256 taskId, uint32 round) external view returns (Round memory) {
        _existingTask(taskId);
        return _rounds[taskId][round];
    }

    /// @inheritdoc ILoRALedger
    function roundState(uint256 taskId, uint32 round) external view returns (RoundState) {
        return _roundState(_existingTask(taskId), round, _rounds[taskId][round]);
    }

    /// @inheritdoc ILoRALedger
    function getMember(uint256 taskId, address node) external view returns (Member memory) {
        _existingTask(taskId);
        return _members[taskId][node];
    }

    /// @inheritdoc ILoRALedger
    function getSubmission(uint256 taskId, uint32 round, address node) external view returns (Submission memory) {
        _existingTask(taskId);
        return _submissions[taskId][round][node];
    }

    /// @inheritdoc ILoRALedger
    function hasClaimed(uint256 taskId, uint32 round, address node) external view returns (bool) {
        return _claimed[taskId][round][node];
    }

    /// @inheritdoc ILoRALedger
    function taskCount() external view returns (uint256) {
        return _taskCount;
    }

    /// @inheritdoc ILoRALedger
    function isComplete(uint256 taskId) external view returns (bool) {
        return _isComplete(taskId, _existingTask(taskId));
    }

    /// @inheritdoc ILoRALedger
    function rewardLeaf(uint256 taskId, uint32 round, address node, uint256 amount) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(taskId, round, node, amount))));
    }

    /// @inheritdoc ILoRALedger
    function commitmentOf(uint256 taskId, uint32 round, address node, bytes32 digest, uint64 numExamples, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(taskId, round, node, digest, numExamples, salt));
    }

    // ------------------------------------------------------------------ internals

    function _recordClaim(uint256 taskId, uint32 round, uint256 amount, bytes32[] calldata proof)
        private
        returns (address token)
    {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _FINALIZED);
        if (amount == 0) revert LedgerZeroAmount();
        if (_claimed[taskId][round][msg.sender]) revert LedgerAlreadyClaimed(taskId, round, msg.sender);
        if (!MerkleProof.verifyCalldata(proof, r.rewardRoot, rewardLeaf(taskId, round, msg.sender, amount))) {
            revert LedgerInvalidProof(taskId, round, msg.sender, amount);
        }
        uint256 claimed = r.claimed + amount;
        if (claimed > r.rewardTotal) revert LedgerClaimAboveRoundTotal(taskId, round, claimed, r.rewardTotal);

        _claimed[taskId][round][msg.sender] = true;
        r.claimed = claimed;
        task.paid += amount;
        emit RewardClaimed(taskId, round, msg.sender, amount);
        return task.token;
    }

    function _existingTask(uint256 taskId) private view returns (Task storage) {
        if (taskId == 0 || taskId > _taskCount) revert LedgerUnknownTask(taskId);
        return _tasks[taskId];
    }

    /// @dev The one definition of a round's state (see {RoundState}).
    /// Checks `finalized` first: only an opened round can be finalized, and claims then read no
    /// task field.
    function _roundState(Task storage task, uint32 round, Round storage r) private view returns (RoundState) {
        if (r.finalized) return RoundState.Finalized;
        if (round == 0 || round > task.roundsOpened) return RoundState.Unopened;
        if (!r.allCommitted && block.timestamp <= r.deadline) return RoundState.Open;
        if (r.reveals < r.commits && block.timestamp <= r.revealDeadline) return RoundState.Revealing;
        return RoundState.Closed;
    }

    /// @dev Ends the commit phase for good once every joined node has committed: joins after
    /// that moment do not reopen it (the flag is never cleared).
    function _noteAllCommitted(Task storage task, Round storage r) private {
        if (r.commits != 0 && r.commits >= task.activeNodes) r.allCommitted = true;
    }

    /// @dev The one guard on round states: reverts with {LedgerUnexpectedRoundState} unless the
    /// round's state is in `allowedStates` (a bitmap, bit `uint8(state)` per allowed state).
    function _validateRoundState(uint256 taskId, Task storage task, uint32 round, bytes32 allowedStates)
        private
        view
        returns (Round storage)
    {
        Round storage r = _rounds[taskId][round];
        RoundState current = _roundState(task, round, r);
        if (_encodeStateBitmap(current) & allowedStates == bytes32(0)) {
            revert LedgerUnexpectedRoundState(taskId, round, current, allowedStates);
        }
        return r;
    }

    function _encodeStateBitmap(RoundState state) private pure returns (bytes32) {
        return bytes32(1 << uint8(state));
    }

    /// @dev The last round opened while it is not finalized (`Open`, `Revealing` or `Closed`);
    /// 0 when none.
    /// Only the last round opened can be unfinalized: {openRound} requires its predecessor
    /// `Finalized`.
    function _unfinalizedRound(uint256 taskId, Task storage task) private view returns (uint32) {
        uint32 last = task.roundsOpened;
        if (last == 0) return 0; // no round opened yet (spares reading round 0)
        RoundState state = _roundState(task, last, _rounds[taskId][last]);
        return state == RoundState.Unopened || state == RoundState.Finalized ? 0 : last;
    }

    function _roundsFinalized(uint256 taskId, Task storage task) private view returns (uint32) {
        return _unfinalizedRound(taskId, task) == 0 ? task.roundsOpened : task.roundsOpened - 1;
    }

    function _isComplete(uint256 taskId, Task storage task) private view returns (bool) {
        return _roundsFinalized(taskId, task) == task.maxRounds;
    }

    /// @dev Pool not reserved by finalized rounds nor withdrawn; never underflows because
    /// `reserved` only grows through {finalizeRound}, bounded by this value, and `withdrawn`
    /// only through {withdrawRemainder}, which takes exactly this value.
    function _available(Task storage task) private view returns (uint256) {
        return task.funded - task.reserved - task.withdrawn;
    }
}
