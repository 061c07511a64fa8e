"""Debate tables: live debates (live.py) and research at scale (research.py)."""

from debate.models.live import (
    JUDGE_TURN_PENALTY,
    MAX_BEST_OF_N,
    Debate,
    DebateStatus,
    FinalProbabilities,
    JudgeAction,
    JudgeTurn,
    Judgment,
    Protocol,
    ProtocolPrompt,
    RoundsMode,
    Side,
    Source,
    Speech,
    SpeechCandidate,
    SpeechStatus,
    TurnOrder,
    judge_score,
    judge_was_correct,
)
from debate.models.market import (
    MAX_MARKET_CANDIDATES,
    Market,
    MarketCandidate,
    MarketStep,
    MarketStop,
    ProbabilityMethod,
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
    "BankQuestion", "BatchStatus", "Debate", "DebateBatch", "DebateStatus", "FinalProbabilities",
    "JUDGE_TURN_PENALTY", "JudgeAction", "JudgeTurn", "Judgment", "MAX_BEST_OF_N",
    "MAX_MARKET_CANDIDATES", "Market", "MarketCandidate", "MarketStep", "MarketStop",
    "ProbabilityMethod", "Protocol", "ProtocolPrompt", "QuestionBank", "RoundsMode", "Side",
    "Source", "Speech", "SpeechCandidate", "SpeechStatus", "TurnOrder", "Verdict", "VerdictKind",
    "judge_score", "judge_was_correct",
]  # fmt: skip
