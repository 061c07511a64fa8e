"""Debate tables: live debates (live.py) and research at scale (research.py)."""

from debate.models.live import (
    JUDGE_TURN_PENALTY,
    Debate,
    DebateStatus,
    JudgeAction,
    JudgeTurn,
    Judgment,
    Protocol,
    ProtocolPrompt,
    RoundsMode,
    Side,
    Source,
    Speech,
    SpeechStatus,
    TurnOrder,
)
from debate.models.research import (
    BankQuestion,
    BatchStatus,
    DebateBatch,
    QuestionBank,
    Verdict,
    VerdictKind,
)

__all__ = [
    "JUDGE_TURN_PENALTY", "BankQuestion", "BatchStatus", "Debate", "DebateBatch",
    "DebateStatus", "JudgeAction", "JudgeTurn", "Judgment", "Protocol", "ProtocolPrompt",
    "QuestionBank", "RoundsMode", "Side", "Source", "Speech", "SpeechStatus", "TurnOrder",
    "Verdict", "VerdictKind",
]  # fmt: skip
