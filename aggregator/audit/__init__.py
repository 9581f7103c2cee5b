"""Independent audit of a task's rounds from the chain and content-addressed storage alone.

- :mod:`aggregator.audit.views`: the history as typed views (what ``loraledger audit
  tasks|rounds|round`` and the dashboard show), read by :class:`HistoryReader`;
- :mod:`aggregator.audit.auditor`: :class:`Auditor` re-checks finalized rounds by running the
  aggregator's own code (:mod:`aggregator.inputs`, :func:`aggregator.verify.check_one`,
  :func:`aggregator.combine.combine`) on the round's public inputs;
- :mod:`aggregator.audit.checks`: the checks that need no network;
- :mod:`aggregator.audit.challenges`: the evidence the contract checks itself (challenges).
"""

from aggregator.audit.auditor import Auditor
from aggregator.audit.challenges import RewardChallenge, reward_challenges
from aggregator.audit.checks import CHECKS, AuditCheck
from aggregator.audit.views import (
    HistoryReader,
    RoundDetail,
    RoundNotAuditable,
    RoundView,
    SubmissionView,
    TaskHistory,
    TaskView,
    to_json,
)
from aggregator.reproduce import TOLERANCE, Tolerance

__all__ = [
    "CHECKS",
    "TOLERANCE",
    "AuditCheck",
    "Auditor",
    "HistoryReader",
    "RewardChallenge",
    "RoundDetail",
    "RoundNotAuditable",
    "RoundView",
    "SubmissionView",
    "TaskHistory",
    "TaskView",
    "Tolerance",
    "reward_challenges",
    "to_json",
]
