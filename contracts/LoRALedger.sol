// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {ILoRALedger} from "./interfaces/ILoRALedger.sol";

/**
 * @title LoRALedger (v3: accountable aggregation)
 * @notice Coordinates federated LoRA fine-tuning tasks: sponsors fund a reward pool in an
 * ERC-20, nodes stake to join, each task's own aggregator opens rounds, nodes commit to hidden
 * updates and then reveal them, the task's validators score the updates and sign a result
 * (EIP-712) that the aggregator proposed; a quorum of signatures finalizes the round, a
 * challenge window lets anyone void a result that pays an account that took no part, and
 * nodes claim their rewards with Merkle proofs once the round is settled.
 *
 * There is no global role: every power is scoped to one task and bonded. Accounting per task,
 * in the task's token: `funded` counts every deposit into the reward pool (sponsor funding,
 * slashed stakes, slashed bonds); `reserved` is the sum of finalized rounds' reward totals
 * (less voided ones); `paid` what was claimed; `withdrawn` what the sponsor took back.
 * Invariants: `paid <= reserved` and `reserved + withdrawn <= funded`, so payouts never exceed
 * deposits. Stakes and bonds are held apart from the pool and returned, less any slashing.
 *
 * Reward and slash leaves use OpenZeppelin's standard Merkle tree format (double keccak of the
 * ABI-encoded values).
 *
 * Tokens that charge a fee on transfer are not supported.
 */
contract LoRALedger is ILoRALedger, EIP712, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @dev The EIP-712 struct a validator signs ({attestationDigest}).
    bytes32 private constant _ROUND_RESULT_TYPEHASH = keccak256(
        "RoundResult(uint256 taskId,uint32 round,bytes32 resultHash,bytes32 globalDigest,bytes32 reportCidHash,bytes32 rewardRoot,bytes32 scoresDigest)"
    );
    uint256 private constant _MAX_VALIDATORS = 32;
    uint16 private constant _MAX_VALIDATOR_SHARE_BPS = 5000;

    // Bitmaps of allowed round states for {_validateRoundState}: bit `uint8(state)` per state.
    bytes32 private constant _OPEN = bytes32(1 << uint8(RoundState.Open));
    bytes32 private constant _REVEALING = bytes32(1 << uint8(RoundState.Revealing));
    bytes32 private constant _CLOSED = bytes32(1 << uint8(RoundState.Closed));
    bytes32 private constant _FINALIZED = bytes32(1 << uint8(RoundState.Finalized));
    bytes32 private constant _SETTLED = bytes32(1 << uint8(RoundState.Settled));
    bytes32 private constant _ABANDONED = bytes32(1 << uint8(RoundState.Abandoned));
    bytes32 private constant _ENDED = _SETTLED | _ABANDONED;
    bytes32 private constant _PENDING = _OPEN | _REVEALING | _CLOSED;

    /// @dev What a validator's signature commits to besides the task, round and its own sheet.
    struct Signed {
        bytes32 resultHash;
        bytes32 globalDigest;
        bytes32 reportCidHash;
        bytes32 rewardRoot;
    }

    uint256 private _taskCount;
    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 taskId => address[]) private _validators;
    mapping(uint256 taskId => mapping(address validator => uint256 indexPlusOne)) private _validatorIndex;
    mapping(uint256 taskId => mapping(address account => Bond)) private _bonds;
    mapping(uint256 taskId => mapping(uint32 round => Round)) private _rounds;
    mapping(uint256 taskId => mapping(address node => Member)) private _members;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address node => Submission))) private _submissions;
    mapping(uint256 taskId => mapping(bytes32 digest => bool)) private _digestUsed;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address node => bool))) private _claimed;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address validator => bytes32))) private _scores;
    mapping(uint256 taskId => mapping(uint32 round => mapping(bytes32 resultHash => Proposal))) private _proposals;
    /// @dev `abi.encode(result)` of each result proposed with {proposeResult}, for {attest}.
    mapping(uint256 taskId => mapping(uint32 round => mapping(bytes32 resultHash => bytes))) private _proposedResults;
    mapping(uint256 taskId => mapping(uint32 round => mapping(address node => bool))) private _slashExecuted;

    constructor() EIP712("LoRALedger", "3") {}

    // ------------------------------------------------------------------ tasks

    /// @inheritdoc ILoRALedger
    function createTask(TaskParams calldata params) external returns (uint256 taskId) {
        TaskParams memory p = params; // decoded once: smaller code than calldata accesses
        if (p.token.code.length == 0) revert LedgerInvalidToken(p.token);
        if (p.submissionWindow == 0) revert LedgerInvalidWindow(p.submissionWindow);
        if (p.revealWindow == 0) revert LedgerInvalidRevealWindow(p.revealWindow);
        if (p.challengeWindow == 0 || p.slashWindow == 0 || p.gracePeriod == 0) {
            revert LedgerInvalidDuration(p.challengeWindow, p.slashWindow, p.gracePeriod);
        }
        if (p.maxExamples == 0) revert LedgerInvalidMaxExamples(p.maxExamples);
        if (p.maxRounds == 0) revert LedgerInvalidMaxRounds(p.maxRounds);
        if (bytes(p.initialGlobalCid).length == 0) revert LedgerEmptyCid();
        if (p.initialGlobalDigest == bytes32(0)) revert LedgerZeroDigest();
        if (p.aggregator == address(0)) revert LedgerInvalidRole(p.aggregator);
        uint256 count = p.validators.length;
        if (count == 0 || count > _MAX_VALIDATORS) revert LedgerInvalidValidatorCount(count);
        if (p.quorum <= count / 2 || p.quorum > count) revert LedgerInvalidQuorum(p.quorum, count);
        if (p.validatorShareBps > _MAX_VALIDATOR_SHARE_BPS) revert LedgerInvalidShare(p.validatorShareBps);
        _checkPrivacy(p.privacy);

        taskId = ++_taskCount;
        address[] storage validators = _validators[taskId];
        mapping(address => uint256) storage index = _validatorIndex[taskId];
        for (uint256 i = 0; i < count; ++i) {
            address validator = p.validators[i];
            if (validator == address(0) || index[validator] != 0) {
                revert LedgerInvalidRole(validator);
            }
            validators.push(validator);
            index[validator] = i + 1;
        }
        Task storage task = _tasks[taskId];
        task.sponsor = msg.sender;
        task.token = p.token;
        task.aggregator = p.aggregator;
        task.baseModelHash = p.baseModelHash;
        task.globalDigest = p.initialGlobalDigest;
        task.rewardPerRound = p.rewardPerRound;
        task.minStake = p.minStake;
        task.aggregatorBond = p.aggregatorBond;
        task.validatorBond = p.validatorBond;
        task.submissionWindow = p.submissionWindow;
        task.revealWindow = p.revealWindow;
        task.maxExamples = p.maxExamples;
        task.challengeWindow = p.challengeWindow;
        task.slashWindow = p.slashWindow;
        task.gracePeriod = p.gracePeriod;
        task.createdAt = uint64(block.timestamp);
        task.maxRounds = p.maxRounds;
        task.quorum = p.quorum;
        task.validatorShareBps = p.validatorShareBps;
        emit TaskCreated(taskId, msg.sender, p.token, p);
    }

    /// @inheritdoc ILoRALedger
    function fundTask(uint256 taskId, uint256 amount) external nonReentrant {
        Task storage task = _existingTask(taskId);
        if (amount == 0) revert LedgerZeroAmount();
        if (task.cancelled) revert LedgerTaskCancelled(taskId);
        if (_isComplete(taskId, task)) revert LedgerTaskComplete(taskId, task.maxRounds);

        task.funded += amount;
        emit TaskFunded(taskId, msg.sender, amount, task.funded);

        IERC20(task.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc ILoRALedger
    function cancelTask(uint256 taskId) external {
        Task storage task = _existingTask(taskId);
        if (msg.sender != task.sponsor) revert LedgerNotSponsor(taskId, msg.sender);
        if (task.cancelled) revert LedgerTaskCancelled(taskId);
        if (_isComplete(taskId, task)) revert LedgerTaskComplete(taskId, task.maxRounds);
        uint32 last = task.roundsOpened;
        uint256 idleSince = task.createdAt;
        bool lastAbandoned = false;
        if (last != 0) {
            Round storage r = _validateRoundState(taskId, task, last, _ENDED);
            lastAbandoned = r.abandoned;
            idleSince = uint256(r.finalizedAt) + task.challengeWindow; // when it settled
        }
        uint256 available = _available(task);
        Bond storage aggregatorBond = _bonds[taskId][task.aggregator];
        bool stuck = lastAbandoned || available < task.rewardPerRound || task.activeNodes == 0
            || !aggregatorBond.posted || aggregatorBond.slashed;
        if (!stuck) {
            uint256 cancellableAt = idleSince + task.gracePeriod + 1;
            if (block.timestamp < cancellableAt) revert LedgerTaskActive(taskId, _toUint64(cancellableAt));
        }

        task.cancelled = true;
        emit TaskCancelled(taskId, msg.sender, last, available);
    }

    /// @inheritdoc ILoRALedger
    function withdrawRemainder(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        if (msg.sender != task.sponsor) revert LedgerNotSponsor(taskId, msg.sender);
        _requireOver(taskId, task);
        uint256 amount = _available(task);
        if (amount == 0) revert LedgerZeroAmount();

        task.withdrawn += amount;
        emit RemainderWithdrawn(taskId, msg.sender, amount);

        IERC20(task.token).safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ bonds

    /// @inheritdoc ILoRALedger
    function postBond(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        uint256 amount = _requiredBond(taskId, task, msg.sender);
        if (task.cancelled) revert LedgerTaskCancelled(taskId);
        if (_isComplete(taskId, task)) revert LedgerTaskComplete(taskId, task.maxRounds);
        Bond storage bond = _bonds[taskId][msg.sender];
        if (bond.posted) revert LedgerBondAlreadyPosted(taskId, msg.sender);

        bond.posted = true;
        bond.amount = amount;
        emit BondPosted(taskId, msg.sender, amount);

        if (amount > 0) {
            IERC20(task.token).safeTransferFrom(msg.sender, address(this), amount);
        }
    }

    /// @inheritdoc ILoRALedger
    function withdrawBond(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        _requiredBond(taskId, task, msg.sender);
        _requireBond(taskId, msg.sender);
        _requireOver(taskId, task);
        uint256 unlocksAt = _unlocksAt(taskId, task, task.roundsOpened, task.slashableUntil);
        if (unlocksAt == 0 || block.timestamp < unlocksAt) {
            revert LedgerBondLocked(taskId, msg.sender, _toUint64(unlocksAt));
        }
        Bond storage bond = _bonds[taskId][msg.sender];
        uint256 amount = bond.amount;
        if (amount == 0) revert LedgerZeroAmount();

        bond.amount = 0;
        emit BondWithdrawn(taskId, msg.sender, amount);

        IERC20(task.token).safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ nodes

    /// @inheritdoc ILoRALedger
    function join(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        if (task.cancelled) revert LedgerTaskCancelled(taskId);
        if (task.roundsOpened == task.maxRounds) revert LedgerTaskComplete(taskId, task.maxRounds);
        Member storage member = _members[taskId][msg.sender];
        if (member.joined) revert LedgerAlreadyJoined(taskId, msg.sender);

        uint256 stake = task.minStake;
        member.joined = true;
        member.stake = stake;
        member.joinedRound = task.roundsOpened;
        ++task.activeNodes;
        emit NodeJoined(taskId, msg.sender, stake, task.roundsOpened);

        if (stake > 0) {
            IERC20(task.token).safeTransferFrom(msg.sender, address(this), stake);
        }
    }

    /// @inheritdoc ILoRALedger
    function leave(uint256 taskId) external {
        Task storage task = _existingTask(taskId);
        Member storage member = _members[taskId][msg.sender];
        if (!member.joined) revert LedgerNotJoined(taskId, msg.sender);
        if (member.leaving) revert LedgerMemberLeaving(taskId, msg.sender);

        member.leaving = true;
        --task.activeNodes;
        uint32 last = task.roundsOpened;
        if (last != 0 && member.joinedRound < last) {
            // An eligible member of the open round that has not committed will not: the commit
            // phase no longer waits for it.
            Round storage r = _rounds[taskId][last];
            if (
                _roundState(task, last, r) == RoundState.Open
                    && _submissions[taskId][last][msg.sender].commitment == bytes32(0)
            ) {
                --r.eligible;
            }
        }
        emit NodeLeaving(taskId, msg.sender, member.stake, member.lastCommitRound);
    }

    /// @inheritdoc ILoRALedger
    function withdrawStake(uint256 taskId) external nonReentrant {
        Task storage task = _existingTask(taskId);
        Member storage member = _members[taskId][msg.sender];
        if (!member.joined) revert LedgerNotJoined(taskId, msg.sender);
        if (!member.leaving) revert LedgerNotLeaving(taskId, msg.sender);
        uint256 unlocksAt = _unlocksAt(taskId, task, member.lastCommitRound, member.slashableUntil);
        if (unlocksAt == 0 || block.timestamp < unlocksAt) {
            revert LedgerStakeLocked(taskId, msg.sender, _toUint64(unlocksAt));
        }

        uint256 stake = member.stake;
        delete _members[taskId][msg.sender];
        emit NodeLeft(taskId, msg.sender, stake);

        if (stake > 0) {
            IERC20(task.token).safeTransfer(msg.sender, stake);
        }
    }

    // ------------------------------------------------------------------ rounds

    /// @inheritdoc ILoRALedger
    function openRound(uint256 taskId) external returns (uint32 round) {
        Task storage task = _existingTask(taskId);
        if (msg.sender != task.aggregator) revert LedgerNotAggregator(taskId, msg.sender);
        if (task.cancelled) revert LedgerTaskCancelled(taskId);
        _requireBond(taskId, msg.sender);
        uint32 last = task.roundsOpened;
        if (last != 0) {
            Round storage previous = _validateRoundState(taskId, task, last, _ENDED);
            // Bonds stay slashable for every settled round: remember the last one's slash window.
            if (!previous.abandoned) task.slashableUntil = _toUint64(_slashWindowEnd(task, previous));
        }
        if (last == task.maxRounds) revert LedgerTaskComplete(taskId, task.maxRounds);
        uint256 available = _available(task);
        if (available < task.rewardPerRound) revert LedgerInsufficientPool(taskId, available, task.rewardPerRound);

        round = last + 1;
        task.roundsOpened = round;
        Round storage r = _rounds[taskId][round];
        r.startDigest = task.globalDigest;
        r.openedAt = uint64(block.timestamp);
        r.deadline = uint64(block.timestamp) + task.submissionWindow;
        r.revealDeadline = r.deadline + task.revealWindow;
        r.eligible = task.activeNodes;
        emit RoundOpened(taskId, round, r.startDigest, r.deadline, r.revealDeadline, r.eligible);
    }

    /// @inheritdoc ILoRALedger
    function commitUpdate(uint256 taskId, uint32 round, bytes32 commitment) external {
        Task storage task = _existingTask(taskId);
        Member storage member = _members[taskId][msg.sender];
        if (!member.joined) revert LedgerNotJoined(taskId, msg.sender);
        if (member.leaving) revert LedgerMemberLeaving(taskId, msg.sender);
        if (member.stake < task.minStake) {
            revert LedgerStakeTooLow(taskId, msg.sender, member.stake, task.minStake);
        }
        Round storage r = _validateRoundState(taskId, task, round, _OPEN);
        if (member.joinedRound >= round) revert LedgerJoinedAfterOpen(taskId, round, msg.sender, member.joinedRound);
        Submission storage submission = _submissions[taskId][round][msg.sender];
        if (submission.commitment != bytes32(0)) revert LedgerAlreadyCommitted(taskId, round, msg.sender);
        if (commitment == bytes32(0)) revert LedgerZeroCommitment();

        submission.commitment = commitment;
        submission.committedAt = uint64(block.timestamp);
        ++r.commits;
        uint32 previous = member.lastCommitRound;
        if (previous != 0) {
            // Every round before `round` has ended; a settled one keeps the stake slashable
            // until its slash window closes, whatever happens to `round`.
            Round storage p = _rounds[taskId][previous];
            if (!p.abandoned) {
                uint64 end = _toUint64(_slashWindowEnd(task, p));
                if (end > member.slashableUntil) member.slashableUntil = end;
            }
        }
        member.lastCommitRound = round;
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
    function postScores(uint256 taskId, uint32 round, bytes32 scoresDigest, string calldata scoresCid) external {
        Task storage task = _existingTask(taskId);
        uint32 bit = _validatorBit(taskId, msg.sender);
        _requireBond(taskId, msg.sender);
        Round storage r = _validateRoundState(taskId, task, round, _CLOSED);
        if (r.scoresBitmap & bit != 0) revert LedgerScoresAlreadyPosted(taskId, round, msg.sender);
        if (scoresDigest == bytes32(0)) revert LedgerZeroDigest();
        if (bytes(scoresCid).length == 0) revert LedgerEmptyCid();

        _scores[taskId][round][msg.sender] = scoresDigest;
        r.scoresBitmap |= bit;
        emit ScoresPosted(taskId, round, msg.sender, scoresDigest, scoresCid);
    }

    /// @inheritdoc ILoRALedger
    function proposeResult(uint256 taskId, uint32 round, Finalization calldata result)
        external
        returns (bytes32 resultHash)
    {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _CLOSED);
        resultHash = _resultHash(taskId, round, r.epoch, result);
        Proposal storage proposal = _proposals[taskId][round][resultHash];
        if (proposal.proposer != address(0)) revert LedgerAlreadyProposed(taskId, round, resultHash);
        _propose(taskId, round, task, r, result, resultHash, proposal);
        // kept for {attest}, which finalizes from storage
        _proposedResults[taskId][round][resultHash] = abi.encode(result);
    }

    /// @inheritdoc ILoRALedger
    function attest(uint256 taskId, uint32 round, bytes32 resultHash, address validator, bytes calldata signature)
        external
    {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _CLOSED);
        Proposal storage proposal = _proposals[taskId][round][resultHash];
        if (proposal.proposer == address(0)) revert LedgerUnknownProposal(taskId, round, resultHash);
        if (proposal.epoch != r.epoch) {
            revert LedgerStaleProposal(taskId, round, resultHash, proposal.epoch, r.epoch);
        }
        if (proposal.scoresBitmap != r.scoresBitmap) {
            revert LedgerScoresMismatch(taskId, round, proposal.scoresBitmap, r.scoresBitmap);
        }
        Finalization memory result = abi.decode(_proposedResults[taskId][round][resultHash], (Finalization));
        Signed memory signed =
            Signed(resultHash, result.globalDigest, keccak256(bytes(result.reportCid)), result.rewardRoot);
        uint8 attestations = _attest(taskId, round, proposal, signed, validator, signature);
        if (attestations >= task.quorum) _finalize(taskId, round, task, r, resultHash, proposal, result);
    }

    /// @inheritdoc ILoRALedger
    function finalizeRound(
        uint256 taskId,
        uint32 round,
        Finalization calldata result,
        Attestation[] calldata attestations
    ) external {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _CLOSED);
        bytes32 resultHash = _resultHash(taskId, round, r.epoch, result);
        Proposal storage proposal = _proposals[taskId][round][resultHash];
        if (proposal.proposer == address(0)) {
            _propose(taskId, round, task, r, result, resultHash, proposal);
        } else if (proposal.scoresBitmap != r.scoresBitmap) {
            // the same hash is the same epoch; a sheet posted since makes the proposal stale
            revert LedgerScoresMismatch(taskId, round, proposal.scoresBitmap, r.scoresBitmap);
        }
        Signed memory signed =
            Signed(resultHash, result.globalDigest, keccak256(bytes(result.reportCid)), result.rewardRoot);
        uint8 count = proposal.attestations;
        for (uint256 i = 0; i < attestations.length; ++i) {
            count = _attest(taskId, round, proposal, signed, attestations[i].validator, attestations[i].signature);
        }
        if (count < task.quorum) revert LedgerQuorumNotReached(taskId, round, count, task.quorum);
        _finalize(taskId, round, task, r, resultHash, proposal, result);
    }

    /// @inheritdoc ILoRALedger
    function challengeReward(uint256 taskId, uint32 round, address account, uint256 amount, bytes32[] calldata proof)
        external
    {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _FINALIZED);
        if (!MerkleProof.verifyCalldata(proof, r.rewardRoot, rewardLeaf(taskId, round, account, amount))) {
            revert LedgerInvalidProof(taskId, round, account, amount);
        }
        if (_submissions[taskId][round][account].revealedAt != 0 || _sheetUsed(taskId, r.scoresBitmap, account)) {
            revert LedgerRewardJustified(taskId, round, account);
        }

        bytes32 resultHash = r.resultHash;
        uint32 signers = r.signers;
        Proposal storage proposal = _proposals[taskId][round][resultHash];
        proposal.slashed = true;
        // unchecked: `reserved` includes this round's total, added when it was finalized.
        unchecked {
            task.reserved -= r.rewardTotal;
        }
        task.globalDigest = r.startDigest;
        uint32 epoch = ++r.epoch;
        r.voidedAt = uint64(block.timestamp);
        r.finalizedAt = 0;
        r.resultHash = bytes32(0);
        r.resultDigest = bytes32(0);
        r.rewardRoot = bytes32(0);
        r.rewardTotal = 0;
        r.slashRoot = bytes32(0);
        r.accepted = 0;
        r.rejected = 0;
        r.signers = 0;
        emit RoundVoided(taskId, round, resultHash, msg.sender, account, amount, epoch);

        _slashBonds(taskId, round, task, proposal.proposer, signers, BondSlashReason.RewardChallenged);
    }

    /// @inheritdoc ILoRALedger
    function slashConflicting(uint256 taskId, uint32 round, bytes32 resultHash) external {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _FINALIZED | _SETTLED);
        _requireSlashWindow(taskId, round, task, r);
        Proposal storage proposal = _proposals[taskId][round][resultHash];
        if (proposal.proposer == address(0)) revert LedgerUnknownProposal(taskId, round, resultHash);
        // Two honest derivations of the same inputs may differ in report bytes and in the global
        // adapter's float rounding, never in rewards or counts: only those make a conflict.
        if (
            resultHash == r.resultHash || proposal.epoch != r.epoch || proposal.scoresBitmap != r.scoresBitmap
                || proposal.outcomeHash == _outcomeHash(r.rewardRoot, r.rewardTotal, r.accepted, r.rejected)
        ) {
            revert LedgerNotConflicting(taskId, round, resultHash);
        }
        if (proposal.slashed) revert LedgerProposalAlreadySlashed(taskId, round, resultHash);

        proposal.slashed = true;
        emit ProposalSlashed(taskId, round, resultHash, r.resultHash, msg.sender);

        _slashBonds(taskId, round, task, proposal.proposer, proposal.attesters, BondSlashReason.ConflictingResult);
    }

    /// @inheritdoc ILoRALedger
    function executeSlash(
        uint256 taskId,
        uint32 round,
        address node,
        uint256 amount,
        uint16 reason,
        string calldata evidenceCid,
        bytes32[] calldata proof
    ) external {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _SETTLED);
        _requireSlashWindow(taskId, round, task, r);
        if (!MerkleProof.verifyCalldata(proof, r.slashRoot, slashLeaf(taskId, round, node, amount, reason, evidenceCid)))
        {
            revert LedgerInvalidSlashProof(taskId, round, node, amount, reason);
        }
        uint256 taken = _slashStake(taskId, round, task, node, amount);
        emit NodeSlashed(taskId, round, node, taken, reason, evidenceCid);
    }

    /// @inheritdoc ILoRALedger
    function abandonRound(uint256 taskId, uint32 round) external {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _PENDING);
        uint256 since = r.revealDeadline > r.voidedAt ? r.revealDeadline : r.voidedAt;
        uint256 abandonableAt = since + task.gracePeriod + 1;
        if (block.timestamp < abandonableAt) {
            revert LedgerRoundNotAbandonable(taskId, round, _toUint64(abandonableAt));
        }

        r.abandoned = true;
        emit RoundAbandoned(taskId, round, r.epoch, msg.sender);
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
    function validatorsOf(uint256 taskId) external view returns (address[] memory) {
        _existingTask(taskId);
        return _validators[taskId];
    }

    /// @inheritdoc ILoRALedger
    function bondOf(uint256 taskId, address account) external view returns (Bond memory) {
        _existingTask(taskId);
        return _bonds[taskId][account];
    }

    /// @inheritdoc ILoRALedger
    function scoresOf(uint256 taskId, uint32 round, address validator) external view returns (bytes32) {
        return _scores[taskId][round][validator];
    }

    /// @inheritdoc ILoRALedger
    function proposalOf(uint256 taskId, uint32 round, bytes32 resultHash) external view returns (Proposal memory) {
        return _proposals[taskId][round][resultHash];
    }

    /// @inheritdoc ILoRALedger
    function resultHashOf(uint256 taskId, uint32 round, Finalization calldata result) external view returns (bytes32) {
        _existingTask(taskId);
        return _resultHash(taskId, round, _rounds[taskId][round].epoch, result);
    }

    /// @inheritdoc ILoRALedger
    function attestationDigest(
        uint256 taskId,
        uint32 round,
        bytes32 resultHash,
        bytes32 globalDigest,
        bytes32 reportCidHash,
        bytes32 rewardRoot,
        bytes32 scoresDigest
    ) external view returns (bytes32) {
        return _attestationDigest(
            taskId, round, Signed(resultHash, globalDigest, reportCidHash, rewardRoot), scoresDigest
        );
    }

    /// @inheritdoc ILoRALedger
    function rewardLeaf(uint256 taskId, uint32 round, address node, uint256 amount) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(taskId, round, node, amount))));
    }

    /// @inheritdoc ILoRALedger
    function slashLeaf(
        uint256 taskId,
        uint32 round,
        address node,
        uint256 amount,
        uint16 reason,
        string calldata evidenceCid
    ) public pure returns (bytes32) {
        return keccak256(
            bytes.concat(keccak256(abi.encode(taskId, round, node, amount, reason, keccak256(bytes(evidenceCid)))))
        );
    }

    /// @inheritdoc ILoRALedger
    function commitmentOf(uint256 taskId, uint32 round, address node, bytes32 digest, uint64 numExamples, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(taskId, round, node, digest, numExamples, salt));
    }

    // ------------------------------------------------------------------ internals: results

    /// @dev Checks a new result and its proposer (the caller) and records the proposal.
    function _propose(
        uint256 taskId,
        uint32 round,
        Task storage task,
        Round storage r,
        Finalization calldata result,
        bytes32 resultHash,
        Proposal storage proposal
    ) private {
        if (msg.sender != task.aggregator && _validatorIndex[taskId][msg.sender] == 0) {
            revert LedgerNotProposer(taskId, msg.sender);
        }
        _requireBond(taskId, msg.sender);
        if (uint256(result.accepted) + result.rejected != r.reveals) {
            revert LedgerCountMismatch(taskId, round, result.accepted, result.rejected, r.reveals);
        }
        if (bytes(result.globalCid).length == 0 || bytes(result.reportCid).length == 0) revert LedgerEmptyCid();
        if (result.globalDigest == bytes32(0)) revert LedgerZeroDigest();
        if (result.rewardTotal > task.rewardPerRound) {
            revert LedgerRewardAboveRoundCap(taskId, round, result.rewardTotal, task.rewardPerRound);
        }
        if (result.accepted == 0 && result.rewardTotal != 0) {
            revert LedgerRewardWithoutAccepted(taskId, round, result.rewardTotal);
        }
        uint256 available = _available(task);
        if (result.rewardTotal > available) revert LedgerInsufficientPool(taskId, available, result.rewardTotal);
        if (result.scoresBitmap != r.scoresBitmap) {
            revert LedgerScoresMismatch(taskId, round, result.scoresBitmap, r.scoresBitmap);
        }

        proposal.proposer = msg.sender;
        proposal.epoch = r.epoch;
        proposal.scoresBitmap = result.scoresBitmap;
        proposal.outcomeHash = _outcomeHash(result.rewardRoot, result.rewardTotal, result.accepted, result.rejected);
        emit ResultProposed(taskId, round, resultHash, msg.sender, r.epoch, result);
    }

    /// @dev What every honest derivation of a round agrees on: its rewards and counts.
    function _outcomeHash(bytes32 rewardRoot, uint256 rewardTotal, uint32 accepted, uint32 rejected)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(rewardRoot, rewardTotal, accepted, rejected));
    }

    /// @dev Checks one validator's signature of a proposal and counts it; returns the count.
    function _attest(
        uint256 taskId,
        uint32 round,
        Proposal storage proposal,
        Signed memory signed,
        address validator,
        bytes calldata signature
    ) private returns (uint8 attestations) {
        uint32 bit = _validatorBit(taskId, validator);
        _requireBond(taskId, validator);
        if (proposal.attesters & bit != 0) revert LedgerAlreadyAttested(taskId, round, signed.resultHash, validator);
        _requireSignature(taskId, round, signed, validator, signature);

        proposal.attesters |= bit;
        // unchecked: at most 32 validators, each counted once (its bit).
        unchecked {
            attestations = ++proposal.attestations;
        }
        emit Attested(taskId, round, signed.resultHash, validator, signature, attestations);
    }

    function _requireSignature(
        uint256 taskId,
        uint32 round,
        Signed memory signed,
        address validator,
        bytes calldata signature
    ) private view {
        bytes32 digest = _attestationDigest(taskId, round, signed, _scores[taskId][round][validator]);
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signature);
        if (error != ECDSA.RecoverError.NoError || recovered != validator) {
            revert LedgerInvalidSignature(taskId, round, validator, recovered);
        }
    }

    /// @dev Records the proposal that reached its quorum as the round's result.
    function _finalize(
        uint256 taskId,
        uint32 round,
        Task storage task,
        Round storage r,
        bytes32 resultHash,
        Proposal storage proposal,
        Finalization memory result
    ) private {
        r.finalizedAt = uint64(block.timestamp);
        r.resultHash = resultHash;
        r.resultDigest = result.globalDigest;
        r.rewardRoot = result.rewardRoot;
        r.rewardTotal = result.rewardTotal;
        r.slashRoot = result.slashRoot;
        r.accepted = result.accepted;
        r.rejected = result.rejected;
        r.signers = proposal.attesters;
        task.globalDigest = result.globalDigest;
        task.reserved += result.rewardTotal;
        emit RoundFinalized(taskId, round, resultHash, proposal.proposer, result, proposal.attesters, r.epoch);
    }

    /// @dev Slashes the bonds of a result's proposer and of the validators in `signers`.
    function _slashBonds(
        uint256 taskId,
        uint32 round,
        Task storage task,
        address proposer,
        uint32 signers,
        BondSlashReason reason
    ) private {
        _slashBond(taskId, round, task, proposer, reason);
        address[] storage validators = _validators[taskId];
        for (uint256 i = 0; signers != 0; ++i) {
            if (signers & 1 != 0) _slashBond(taskId, round, task, validators[i], reason);
            signers >>= 1;
        }
    }

    function _slashBond(uint256 taskId, uint32 round, Task storage task, address account, BondSlashReason reason)
        private
    {
        Bond storage bond = _bonds[taskId][account];
        if (!bond.posted || bond.slashed) return; // nothing left to take
        uint256 amount = bond.amount;
        bond.amount = 0;
        bond.slashed = true;
        task.funded += amount;
        emit BondSlashed(taskId, round, account, amount, reason);
    }

    /// @dev Takes `min(amount, stake)` of a node that committed in `round` into the pool, once
    /// per node and round; returns what it took.
    function _slashStake(uint256 taskId, uint32 round, Task storage task, address node, uint256 amount)
        private
        returns (uint256 taken)
    {
        if (_submissions[taskId][round][node].commitment == bytes32(0)) revert LedgerNotCommitted(taskId, round, node);
        if (_slashExecuted[taskId][round][node]) revert LedgerAlreadySlashed(taskId, round, node);
        Member storage member = _members[taskId][node];
        taken = amount < member.stake ? amount : member.stake;
        _slashExecuted[taskId][round][node] = true;
        // unchecked: taken <= member.stake.
        unchecked {
            member.stake -= taken;
        }
        task.funded += taken;
    }

    function _resultHash(uint256 taskId, uint32 round, uint32 epoch, Finalization calldata result)
        private
        pure
        returns (bytes32)
    {
        // Every value is a static 32-byte word, so concatenating two encodings equals one
        // `abi.encode` of all twelve (which would not fit the stack).
        return keccak256(
            bytes.concat(
                abi.encode(
                    taskId,
                    round,
                    epoch,
                    result.globalDigest,
                    keccak256(bytes(result.globalCid)),
                    keccak256(bytes(result.reportCid))
                ),
                abi.encode(
                    result.accepted,
                    result.rejected,
                    result.rewardRoot,
                    result.rewardTotal,
                    result.slashRoot,
                    result.scoresBitmap
                )
            )
        );
    }

    function _attestationDigest(uint256 taskId, uint32 round, Signed memory signed, bytes32 scoresDigest)
        private
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    _ROUND_RESULT_TYPEHASH,
                    taskId,
                    round,
                    signed.resultHash,
                    signed.globalDigest,
                    signed.reportCidHash,
                    signed.rewardRoot,
                    scoresDigest
                )
            )
        );
    }

    // ------------------------------------------------------------------ internals: roles

    /// @dev The bit of `account` in the task's validator bitmaps; reverts for a non-validator.
    function _validatorBit(uint256 taskId, address account) private view returns (uint32) {
        uint256 index = _validatorIndex[taskId][account];
        if (index == 0) revert LedgerNotValidator(taskId, account);
        return uint32(1 << (index - 1));
    }

    /// @dev Whether `account` is a validator whose sheet `scoresBitmap` uses.
    function _sheetUsed(uint256 taskId, uint32 scoresBitmap, address account) private view returns (bool) {
        uint256 index = _validatorIndex[taskId][account];
        return index != 0 && scoresBitmap & (1 << (index - 1)) != 0;
    }

    /// @dev The bond `account` owes the task; reverts unless it is the aggregator or a validator.
    /// The aggregator may also be one of the validators (the sponsor's choice): its one bond
    /// is then both bonds.
    function _requiredBond(uint256 taskId, Task storage task, address account) private view returns (uint256) {
        bool aggregator = account == task.aggregator;
        bool validator = _validatorIndex[taskId][account] != 0;
        if (!aggregator && !validator) revert LedgerNotBondholder(taskId, account);
        return (aggregator ? task.aggregatorBond : 0) + (validator ? task.validatorBond : 0);
    }

    /// @dev Reverts unless `account` posted its bond and it was not slashed.
    function _requireBond(uint256 taskId, address account) private view {
        Bond storage bond = _bonds[taskId][account];
        if (!bond.posted) revert LedgerBondNotPosted(taskId, account);
        if (bond.slashed) revert LedgerBondSlashed(taskId, account);
    }

    // ------------------------------------------------------------------ internals: claims

    function _recordClaim(uint256 taskId, uint32 round, uint256 amount, bytes32[] calldata proof)
        private
        returns (address token)
    {
        Task storage task = _existingTask(taskId);
        Round storage r = _validateRoundState(taskId, task, round, _SETTLED);
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

    // ------------------------------------------------------------------ internals: state

    function _existingTask(uint256 taskId) private view returns (Task storage) {
        if (taskId == 0 || taskId > _taskCount) revert LedgerUnknownTask(taskId);
        return _tasks[taskId];
    }

    /// @dev The one definition of a round's state (see {RoundState}).
    function _roundState(Task storage task, uint32 round, Round storage r) private view returns (RoundState) {
        if (round == 0 || round > task.roundsOpened) return RoundState.Unopened;
        if (r.abandoned) return RoundState.Abandoned;
        uint64 finalizedAt = r.finalizedAt;
        if (finalizedAt != 0) {
            return block.timestamp > uint256(finalizedAt) + task.challengeWindow
                ? RoundState.Settled
                : RoundState.Finalized;
        }
        if (r.commits < r.eligible && block.timestamp <= r.deadline) return RoundState.Open;
        if (r.reveals < r.commits && block.timestamp <= r.revealDeadline) return RoundState.Revealing;
        return RoundState.Closed;
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
        if (bytes32(1 << uint8(current)) & allowedStates == bytes32(0)) {
            revert LedgerUnexpectedRoundState(taskId, round, current, allowedStates);
        }
        return r;
    }

    /// @dev The last timestamp at which a finalized round's slashes can be executed.
    function _slashWindowEnd(Task storage task, Round storage r) private view returns (uint256) {
        return uint256(r.finalizedAt) + task.challengeWindow + task.slashWindow;
    }

    function _requireSlashWindow(uint256 taskId, uint32 round, Task storage task, Round storage r) private view {
        uint256 end = _slashWindowEnd(task, r);
        if (block.timestamp > end) revert LedgerSlashWindowOver(taskId, round, _toUint64(end));
    }

    /// @dev The first timestamp at which deposits tied to rounds up to `round` unlock: `round`
    /// (the last one they took part in; zero: none) is `Abandoned` or `Settled` with its slash
    /// window over, and `slashableUntil` (earlier settled rounds) has passed. Zero while
    /// `round` has no result yet. A `Finalized` round is still in its challenge window, so the
    /// time returned lies past now.
    function _unlocksAt(uint256 taskId, Task storage task, uint32 round, uint64 slashableUntil)
        private
        view
        returns (uint256)
    {
        uint256 until = slashableUntil;
        if (round != 0) {
            Round storage r = _rounds[taskId][round];
            RoundState state = _roundState(task, round, r);
            if (state == RoundState.Finalized || state == RoundState.Settled) {
                // (while `Finalized`, the time it unlocks unless a challenge voids the round)
                uint256 end = _slashWindowEnd(task, r);
                if (end > until) until = end;
            } else if (state != RoundState.Abandoned) {
                return 0;
            }
        }
        return until + 1;
    }

    /// @dev Rounds that ended (`Settled` or `Abandoned`): every round before the last opened,
    /// and the last one once it ended.
    function _roundsEnded(uint256 taskId, Task storage task) private view returns (uint32) {
        uint32 last = task.roundsOpened;
        if (last == 0) return 0;
        RoundState state = _roundState(task, last, _rounds[taskId][last]);
        return state == RoundState.Settled || state == RoundState.Abandoned ? last : last - 1;
    }

    /// @dev The privacy policy's shape (ILoRALedger, `TaskParams.privacy`); whether its noise meets its target epsilon
    /// depends on the nodes' data and is checked off-chain (docs/privacy.md).
    function _checkPrivacy(uint256 policy) private pure {
        uint8 mode = uint8(policy);
        uint256 mask = (1 << 52) - 1;
        bool valid = mode == 0
            ? policy == 0
            : mode <= 2 && uint8(policy >> 8) <= 1 && (mode == 1) == (uint32(policy >> 16) == 0)
                && (policy >> 48) & mask != 0 && (policy >> 100) & mask != 0 && (policy >> 152) & mask != 0
                && policy >> 204 != 0 && policy >> 204 < 1e15;
        if (!valid) revert LedgerInvalidPrivacy(mode, uint8(policy >> 8));
    }

    function _isComplete(uint256 taskId, Task storage task) private view returns (bool) {
        return _roundsEnded(taskId, task) == task.maxRounds;
    }

    /// @dev Reverts unless the task is complete or cancelled: either way no round is in flight
    /// (a task is cancelled only between rounds, and no round opens afterwards).
    function _requireOver(uint256 taskId, Task storage task) private view {
        if (!task.cancelled && !_isComplete(taskId, task)) {
            revert LedgerTaskNotComplete(taskId, _roundsEnded(taskId, task), task.maxRounds);
        }
    }

    /// @dev Pool not reserved by finalized rounds nor withdrawn; never underflows because
    /// `reserved` only grows through finalization, bounded by this value, and `withdrawn` only
    /// through {withdrawRemainder}, which takes exactly this value.
    function _available(Task storage task) private view returns (uint256) {
        return task.funded - task.reserved - task.withdrawn;
    }

    function _toUint64(uint256 value) private pure returns (uint64) {
        return value > type(uint64).max ? type(uint64).max : uint64(value);
    }
}
