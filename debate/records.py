"""The debate export schema (`arbiter-debate/1`), close to NYU's readable format, and the
other JSON shapes the research side stores. One record is one debate; importing a record
upserts the debate named `name`. Documented in docs/readme-issue-13.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from core.text import RequiredText, StoredJson, StoredObject, StoredText, text_blank
from core.types import DbId, iso_datetime_text
from debate.models.live import MAX_BEST_OF_N
from debate.quotes import QUOTE_PATTERN

FORMAT = "arbiter-debate/1"
MAX_TEXT = 2_000_000

# The field rules of a debate's question, answers and passage: one bound or check each, used
# by the API (DebateIn, records), the forms (DebateForm) and the imports (records, question
# banks), so none of them accepts what another refuses.
MAX_QUESTION_CHARS = 10_000
MAX_ANSWER_CHARS = 10_000
MAX_PASSAGE_CHARS = 1_000_000

# Text the database can store (no NUL, no lone surrogate: core/text.py), its bound documented.
Text = Annotated[StoredText, Field(max_length=MAX_TEXT)]
Name = Annotated[StoredText, Field(max_length=200)]
Percent = Annotated[int, Field(ge=1, le=99)]
Question = Annotated[RequiredText, Field(max_length=MAX_QUESTION_CHARS)]
Answer = Annotated[RequiredText, Field(max_length=MAX_ANSWER_CHARS)]
# A metadata-only record (no transcript) carries no answers: "" there (DebateRecord checks).
AnswerOrNone = Annotated[StoredText, Field(max_length=MAX_ANSWER_CHARS)]
Passage = Annotated[StoredText, Field(max_length=MAX_PASSAGE_CHARS)]
# An index a client sends: a number, never a boolean (`true` is not option 1).
Index = Annotated[int, Strict(), Field(ge=0)]


def answers_check(answers: Sequence[str]) -> None:
    """The answers (or a bank question's options) a judge chooses between: none empty or only
    whitespace, no two the same. ValueError naming them (1-based)."""
    seen: dict[str, int] = {}
    for number, answer in enumerate(answers, start=1):
        if text_blank(answer):
            raise ValueError(f"answer {number} is empty")
        if answer.strip() in seen:
            raise ValueError(
                f"answers {seen[answer.strip()]} and {number} are the same: the answers must differ"
            )
        seen[answer.strip()] = number


def validation_reason(error: ValidationError) -> str:
    """A file's first problem as one line: where (dotted path) and why, without pydantic's
    "Value error, " prefix."""
    first = error.errors()[0]
    place = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{place}: {message}" if place else message


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordQuote(Record):
    text: Text
    verified: bool
    over_limit: bool = False
    # NYU rooms: the token span [start, end) of the source material the quote came from.
    span: tuple[int, int] | None = None
    # The published span ran past the story's end and was cut at its last token.
    span_clipped: bool = False


class RecordSpeech(Record):
    round: int = Field(ge=1, le=1000)
    side: Literal["a", "b"]
    speaker: Name
    # Quotes are inline as <quote>…</quote>, in the order of `quotes`.
    text: Text
    quotes: list[RecordQuote] = Field(default_factory=list, max_length=1000)
    truncated: bool = False

    @model_validator(mode="after")
    def _quotes_are_the_tags(self) -> RecordSpeech:
        # The page shows the tags' text with the flags of `quotes`: they must be the same.
        tags = [match.group(1) for match in QUOTE_PATTERN.finditer(self.text)]
        if tags != [quote.text for quote in self.quotes]:
            raise ValueError(
                f"the quotes list ({len(self.quotes)}) is not the text's "
                f"{len(tags)} <quote> tags, in order"
            )
        return self


def _distribution(values: list[float]) -> list[float]:
    if len(values) != 2:
        raise ValueError(f"a probability distribution over 2 answers, not {len(values)}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"probabilities {values} do not sum to 1")
    if not all(0.01 - 1e-9 <= value <= 0.99 + 1e-9 for value in values):
        raise ValueError(f"probabilities {values} are outside 1–99%")
    return values


# Each probability's bounds and the pair's length are in the document; that they sum to 1 is a
# rule across items no JSON Schema states.
Probability = Annotated[float, Field(ge=0.01 - 1e-9, le=0.99 + 1e-9)]
Distribution = Annotated[
    list[Probability], Field(min_length=2, max_length=2), AfterValidator(_distribution)
]


def percent_a(distribution: list[float]) -> int:
    return round(distribution[0] * 100)


def distribution_of(percent: int) -> list[float]:
    return [percent / 100, (100 - percent) / 100]


class RecordJudgeTurn(Record):
    """The judge's belief after `round` speeches rounds (0: the prior), and what they said."""

    round: int = Field(ge=0, le=1000)
    distribution: Distribution
    feedback: Text = ""
    end_debate: bool = False


class RecordVerdict(Record):
    kind: Literal["human", "offline", "llm"]
    judge: Name
    distribution: Distribution
    judge_turns: int = Field(ge=0, le=1000)
    rationale: Text = ""
    model: Name | None = None  # the LLM judge's model config


class RecordRules(Record):
    turn_order: Literal["simultaneous", "sequential"] = "sequential"
    rounds_mode: Literal["fixed", "judge_ends"] = "judge_ends"
    max_rounds: int = Field(default=1, ge=1, le=1000)
    speech_char_limit: int = Field(default=750, ge=0, le=100_000)
    quote_char_limit: int = Field(default=250, ge=0, le=100_000)


class RoomExtras(Record):
    """Debate.extras: what an imported NYU room published beyond our columns, as it was."""

    rules: StoredObject = Field(default_factory=dict)
    offline_judgments: list[StoredJson] = Field(default_factory=list, max_length=1000)


class RecordSetting(Record):
    is_human: bool
    is_debate: bool


Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class RecordMarketCandidate(Record):
    """One of Adv's candidate arguments at a step and M's P(A) after reading it."""

    index: int = Field(ge=0, le=15)
    argued_side: Literal["a", "b"]
    text: Text
    predicted_p_a: Unit
    option_mass: Unit | None = None
    kept: bool


class RecordMarketStep(Record):
    """Step `step`: M's P(A) before and after the kept argument (speech round `step`)."""

    step: int = Field(ge=1, le=1000)
    p_before: Unit
    p_after: Unit
    method: Literal["logprobs", "votes"]
    candidates: list[RecordMarketCandidate] = Field(default_factory=list, max_length=16)


class RecordMarket(Record):
    """A market's setting, M's p_0 and every step (Hubinger 2020). The extension of the
    schema for `protocol = market`: its kept arguments are the record's speeches (side "a")."""

    predictor: Name = Field(min_length=1)  # M's model config
    epsilon: float = Field(gt=0, lt=0.5)
    patience: int = Field(ge=1, le=10)
    candidates: int = Field(ge=1, le=16)
    p_0: Unit | None = None
    p_0_method: Literal["logprobs", "votes", ""] = ""
    stop_reason: Literal["converged", "step_limit", ""] = ""
    steps: list[RecordMarketStep] = Field(default_factory=list, max_length=1000)


class DebateRecord(Record):
    format: Literal["arbiter-debate/1"] = "arbiter-debate/1"
    name: Name = Field(min_length=1)
    source: Literal["arbiter", "nyu-2023"]
    setting: RecordSetting
    # None: not known from this record (an update keeps what the database has).
    included_in_paper: bool | None = None
    story_title: Name = ""
    question: Question
    answers: list[AnswerOrNone] = Field(min_length=2, max_length=2)
    correct_answer_index: Annotated[Index, Field(le=1)] | None = None
    source_material: Passage = ""
    rules: RecordRules = Field(default_factory=RecordRules)
    # Who played each role ("Debater A", "Debater B", "Judge"): a person's name or a model's.
    roles: dict[Literal["Debater A", "Debater B", "Judge"], Name] = Field(default_factory=dict)
    models: dict[Literal["Debater A", "Debater B"], Name] = Field(default_factory=dict)
    consultant: Literal["a", "b"] | None = None
    status: Literal[
        "waiting_for_prior", "generating", "awaiting_judge", "judged", "finished", "incomplete"
    ]
    created_at: Annotated[AwareDatetime, BeforeValidator(iso_datetime_text)]
    has_transcript: bool = True
    rounds_held: int = Field(default=0, ge=0, le=1000)
    speeches: list[RecordSpeech] = Field(default_factory=list, max_length=10_000)
    judge_turns: list[RecordJudgeTurn] = Field(default_factory=list, max_length=10_000)
    verdicts: list[RecordVerdict] = Field(default_factory=list, max_length=1000)
    # NYU rooms: the published rules and offline judgments, kept as they were.
    extras: RoomExtras = Field(default_factory=RoomExtras)
    # Markets only (`setting.is_debate` false, no consultant): M's predictions and every step.
    market: RecordMarket | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DebateRecord:
        debaters = {"Debater A", "Debater B"}
        if not self.setting.is_debate and (
            debaters <= set(self.roles) or debaters <= set(self.models)
        ):
            raise ValueError("a consultancy has one debater, not two (roles or models)")
        if self.market is not None and (self.setting.is_debate or self.consultant):
            raise ValueError("a market is neither a debate nor a consultancy (no consultant)")
        if not self.setting.is_debate and self.consultant is None and self.market is None:
            raise ValueError("a consultancy names its consultant ('a' or 'b')")
        if self.has_transcript:
            answers_check(self.answers)
        if self.status == "judged" and not self.verdicts:
            raise ValueError("a judged debate has at least one verdict")
        rounds = [turn.round for turn in self.judge_turns]
        if len(rounds) != len(set(rounds)):
            raise ValueError("two judge turns for one round")
        seen = {(speech.round, speech.side) for speech in self.speeches}
        if len(seen) != len(self.speeches):
            raise ValueError("two speeches by one side in one round")
        judges = [(verdict.kind, verdict.judge) for verdict in self.verdicts]
        if len(judges) != len(set(judges)):
            raise ValueError("two verdicts by one judge")
        return self


Entrant = tuple[int, int]  # a tournament entrant: (model config id, best of n)


def entrant_name(name: str, best_of_n: int) -> str:
    """A tournament entrant's name: its config's, with its best-of-n when it has one."""
    return name if best_of_n == 1 else f"{name} (best of {best_of_n})"


class BatchSpec(BaseModel):
    """What a DebateBatch runs (DebateBatch.spec)."""

    model_config = ConfigDict(extra="forbid")

    question_filter: Name = ""
    protocol: Literal["debate", "consultancy", "market"] = "debate"
    turn_order: Literal["simultaneous", "sequential"] = "simultaneous"
    rounds: int = Field(default=1, ge=1, le=10)
    speech_char_limit: int = Field(default=750, ge=50, le=10_000)
    quote_char_limit: int = Field(default=250, ge=0, le=10_000)
    max_new_tokens: int = Field(default=64, ge=1, le=4096)
    # Debate and consultancy: the debaters; market: debater A is Adv. A tournament names its
    # debaters in tournament_config_ids instead.
    debater_a_config_id: DbId | None = None
    debater_b_config_id: DbId | None = None
    count: int = Field(ge=1, le=1000)
    human_queue_id: DbId | None = None
    # A person (annotator) who judges every debate of the batch on the judging page once it
    # is spoken: the final probabilities and a rationale, as a live debate's last turn.
    human_judge_id: DbId | None = None
    judge_max_new_tokens: int = Field(default=16, ge=1, le=1024)
    # Cross-play tournament (Khan et al. 2024): every ordered pair of these configs (self-play
    # included) debates each of the `count` questions, the first config of the pair arguing
    # the correct answer; None: not a tournament.
    tournament_config_ids: list[DbId] | None = Field(default=None, min_length=2, max_length=6)
    # Best-of-n variants: entrant i is config tournament_config_ids[i] keeping the best of
    # tournament_best_of_n[i] candidates a speech (the active debate reward model chooses, as
    # in live debates); None: every entrant speaks once. One config may enter with several n.
    tournament_best_of_n: list[Annotated[int, Field(ge=1, le=MAX_BEST_OF_N)]] | None = Field(
        default=None, min_length=2, max_length=6
    )
    # Market (Hubinger 2020): M, the stopping rule, and Adv's candidates per step (`rounds` is
    # the step limit).
    market_predictor_config_id: DbId | None = None
    market_epsilon: float = Field(default=0.05, gt=0, lt=0.5)
    market_patience: int = Field(default=2, ge=1, le=10)
    market_candidates: int = Field(default=4, ge=1, le=16)

    def tournament_entrants(self) -> list[Entrant]:
        """A tournament's entrants, (config id, best of n), in the spec's order."""
        ids = self.tournament_config_ids or []
        return list(zip(ids, self.tournament_best_of_n or [1] * len(ids), strict=False))
