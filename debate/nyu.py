"""The NYU debate format (Michael et al. 2023) read into DebateRecords: full rooms
(`debates/<room>.json`) and metadata lines (`debates-metadata.jsonl`). Pure functions: a file
that is not the schema raises RecordError with the reason, before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from debate.quotes import Quote, quotes_recheck
from debate.records import (
    DebateRecord,
    RecordJudgeTurn,
    RecordQuote,
    RecordRules,
    RecordSetting,
    RecordSpeech,
    RecordVerdict,
    validation_reason,
)

# The NYU debaters' name for the AI debater.
AI_DEBATER_NAMES = frozenset({"GPT-4"})
_NO_SPACE_BEFORE = re.compile(
    r"^(?:[.,;:!?%)\]}]|''|-RSB-|-RRB-|-RCB-|'s|'S|n't|'re|'ve|'ll|'d|'m)$"
)
_NO_SPACE_AFTER = frozenset({"(", "[", "{", "$", "\n", "``", "-LSB-", "-LRB-", "-LCB-"})
# Penn Treebank escapes in the QuALITY tokens, shown as the characters they stand for.
_PTB = {"``": '"', "''": '"', "-LSB-": "[", "-RSB-": "]", "-LRB-": "(", "-RRB-": ")",
        "-LCB-": "{", "-RCB-": "}"}  # fmt: skip


class RecordError(ValueError):
    """This file or line is not a debate we can import; the message says why."""


@dataclass(frozen=True)
class Story:
    """The source material: tokens joined into text, with each token's character offset."""

    text: str
    starts: list[int]
    ends: list[int]

    def span(self, start: int, end: int) -> str:
        return self.text[self.starts[start] : self.ends[end - 1]]


def story_from_tokens(tokens: list[str]) -> Story:
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    length = 0
    previous = "\n"
    for token in tokens:
        space = not (previous in _NO_SPACE_AFTER or token == "\n" or _NO_SPACE_BEFORE.match(token))
        if space:
            parts.append(" ")
            length += 1
        shown = _PTB.get(token, token)
        starts.append(length)
        parts.append(shown)
        length += len(shown)
        ends.append(length)
        previous = token
    return Story(text="".join(parts), starts=starts, ends=ends)


def _millis(value: object) -> datetime:
    if not isinstance(value, int | float) or value < 0:
        return datetime(2023, 1, 1, tzinfo=UTC)
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _get(data: Any, *path: str | int) -> Any:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            raise RecordError(f"not the NYU schema: no {'.'.join(map(str, path))}") from None
    return data


def _only_key(data: Any, what: str) -> tuple[str, Any]:
    if not isinstance(data, dict) or len(data) != 1:
        raise RecordError(f"not the NYU schema: {what} is not a one-key object")
    return next(iter(data.items()))


def _text_of(content: list[Any], story: Story, *, where: str) -> tuple[str, list[RecordQuote]]:
    """NYU speech content (Text and Quote parts) as text with <quote> tags, and its quotes."""
    parts: list[str] = []
    quotes: list[RecordQuote] = []
    for piece in content:
        kind, body = _only_key(piece, f"a content part of {where}")
        if kind == "Text":
            parts.append(str(_get(body, "text")))
        elif kind == "Quote":
            span = _get(body, "span")
            tokens = len(story.starts)
            if (
                not isinstance(span, list) or len(span) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in span)
                or not 0 <= span[0] < span[1]
                or span[0] >= tokens
            ):  # fmt: skip
                raise RecordError(
                    f"{where}: quote span {span} does not fit the story's {tokens} tokens"
                )
            # NYU's app let a span run past the story's end (a-pail-of-air-7 quotes "the very
            # end" as [6926, 6929] of 6927 tokens): cut at the end, and marked as cut.
            clipped = span[1] > tokens
            end = min(span[1], tokens)
            quoted = story.span(span[0], end)
            parts.append(f"<quote>{quoted}</quote>")
            # Verified by Arbiter's check (_verified), not taken on trust.
            quotes.append(RecordQuote(
                text=quoted, verified=False, span=(span[0], end), span_clipped=clipped
            ))  # fmt: skip
        else:
            raise RecordError(f"{where}: unknown content part {kind!r}")
    return "".join(parts), quotes


def _verified(text: str, quotes: list[RecordQuote], story: Story) -> list[RecordQuote]:
    """The quotes as Arbiter's check finds them in the story (the same check an import
    applies again before writing)."""
    checked = quotes_recheck(
        text, passage=story.text, quote_char_limit=None,
        given=[Quote(**quote.model_dump()) for quote in quotes],
    )  # fmt: skip
    return [RecordQuote.model_validate(quote.as_json()) for quote in checked]


def _distribution(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or not all(isinstance(p, int | float) for p in value):
        raise RecordError(f"{where}: the distribution is not a list of numbers")
    if len(value) != 2 or abs(sum(value) - 1.0) > 1e-6:
        raise RecordError(f"{where}: probabilities {value} do not sum to 1")
    return [float(p) for p in value]


def _consultant(roles: dict[str, str]) -> str | None:
    debaters = [role for role in ("Debater A", "Debater B") if role in roles]
    if len(debaters) == 1:
        return "a" if debaters[0] == "Debater A" else "b"
    return None


def _offline_verdicts(offline: Any, where: str) -> list[RecordVerdict]:
    verdicts = []
    for judge, result in (offline or {}).items():
        judgments = _get(result, "judgments")
        if not judgments:
            continue
        final = judgments[-1]
        continues = sum(1 for j in judgments[1:] if not j.get("endDebate"))
        dist = _distribution(_get(final, "distribution"), f"{where}, offline judge {judge}")
        verdicts.append(
            RecordVerdict(kind="offline", judge=judge, distribution=dist, judge_turns=continues)
        )
    return verdicts


def _record(fields: dict[str, Any], where: str) -> DebateRecord:
    try:
        return DebateRecord(**fields)
    except ValidationError as error:
        raise RecordError(f"{where}: {validation_reason(error)}") from None


def room_record(data: Any, *, name: str, setting: RecordSetting | None = None) -> DebateRecord:
    """A full NYU room file as a record. `setting` from its metadata line, if known; else it
    is inferred (GPT-4 debaters are the AI; one debater is a consultancy)."""
    if not isinstance(data, dict) or not {"setup", "rounds"} <= set(data):
        raise RecordError("not the NYU schema: a room has 'setup' and 'rounds'")
    setup = _get(data, "setup")
    _kind, material = _only_key(_get(setup, "sourceMaterial"), "setup.sourceMaterial")
    tokens = _get(material, "contents")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise RecordError("not the NYU schema: the source material's contents are not tokens")
    story = story_from_tokens(tokens)
    roles = {str(role): str(person) for role, person in _get(setup, "roles").items()}
    answers = _get(setup, "answers")
    if not isinstance(answers, list) or len(answers) != 2:
        raise RecordError("not the NYU schema: a room has exactly two answers")
    consultant = _consultant(roles)
    if setting is None:
        debaters = [roles.get("Debater A"), roles.get("Debater B")]
        setting = RecordSetting(
            is_human=not any(d in AI_DEBATER_NAMES for d in debaters if d),
            is_debate=consultant is None,
        )
    rules = _get(setup, "rules")
    structure = list(rules.get("fixedOpening") or []) + list(rules.get("repeatingStructure") or [])
    speech_rules = [
        body for round_rule in structure for kind, body in round_rule.items() if "Speeches" in kind
    ]
    speeches: list[RecordSpeech] = []
    judge_turns: dict[int, RecordJudgeTurn] = {}
    verdicts: list[RecordVerdict] = []
    offline_raw: list[Any] = []
    simultaneous_only = True
    round_number = 0
    continues = 0
    final: list[float] | None = None
    for index, entry in enumerate(_get(data, "rounds")):
        kind, body = _only_key(entry, f"round {index + 1}")
        where = f"round {index + 1} ({kind})"
        if kind in ("SimultaneousSpeeches", "SequentialSpeeches"):
            round_number += 1
            simultaneous_only &= kind == "SimultaneousSpeeches"
            for key, speech in sorted(_get(body, "speeches").items()):
                if key not in ("0", "1"):
                    raise RecordError(f"{where}: a speech by speaker {key!r}, not a debater")
                side: Literal["a", "b"] = "a" if key == "0" else "b"
                text, quotes = _text_of(_get(speech, "content"), story, where=where)
                quotes = _verified(text, quotes, story)
                speeches.append(RecordSpeech(
                    round=round_number, side=side, speaker=str(_get(speech, "speaker")),
                    text=text, quotes=quotes,
                ))  # fmt: skip
        elif kind == "JudgeFeedback":
            dist = _distribution(_get(body, "distribution"), where)
            feedback, _quotes = _text_of(_get(body, "feedback", "content"), story, where=where)
            end = bool(body.get("endDebate"))
            # NYU's numContinues counts every feedback that continued, the prior's included.
            if not end:
                continues += 1
            # Two feedbacks without speeches between (after a vote to end): the later stands.
            judge_turns[round_number] = RecordJudgeTurn(
                round=round_number, distribution=dist, feedback=feedback, end_debate=end
            )
            if end:
                final = dist
        elif kind == "OfflineJudgments":
            offline_raw.append(_get(body, "judgments"))
            verdicts.extend(_offline_verdicts(_get(body, "judgments"), where))
        elif kind == "NegotiateEnd":
            continue
        else:
            raise RecordError(f"{where}: unknown kind of round")
    correct = _get(setup, "correctAnswerIndex")
    if correct not in (0, 1):
        raise RecordError(f"not the NYU schema: correctAnswerIndex {correct!r}")
    if final is not None and "Judge" in roles:
        verdicts.insert(0, RecordVerdict(
            kind="human", judge=roles["Judge"], distribution=final, judge_turns=continues
        ))  # fmt: skip
    first_rule = speech_rules[-1] if speech_rules else {}
    fields = {
        "name": name, "source": "nyu-2023", "setting": setting,
        "story_title": str(material.get("title", ""))[:200],
        "question": _get(setup, "question"), "answers": [str(a) for a in answers],
        "correct_answer_index": correct, "source_material": story.text,
        "rules": RecordRules(
            turn_order="simultaneous" if simultaneous_only and speeches else "sequential",
            rounds_mode="judge_ends", max_rounds=max(1, round_number),
            speech_char_limit=int(first_rule.get("charLimit") or 0),
            quote_char_limit=int(first_rule.get("quoteLimit") or 0),
        ),
        "roles": roles,
        "consultant": consultant,
        "status": "judged" if verdicts else "incomplete",
        "created_at": _millis(setup.get("creationTime")),
        "rounds_held": round_number,
        "speeches": speeches,
        "judge_turns": list(judge_turns.values()),
        "verdicts": verdicts,
        "extras": {"rules": rules, "offline_judgments": offline_raw},
    }  # fmt: skip
    return _record(fields, f"room {name}")


def metadata_record(line: Any) -> DebateRecord:
    """A line of debates-metadata.jsonl: setting, participants, outcome, final beliefs."""
    name = str(_get(line, "name"))
    setting = RecordSetting(
        is_human=bool(_get(line, "setting", "isHuman")),
        is_debate=bool(_get(line, "setting", "isDebate")),
    )
    roles = {str(role): str(person) for role, person in _get(line, "roleAssignments").items()}
    status_kind, status = _only_key(_get(line, "status"), "status")
    verdicts: list[RecordVerdict] = []
    correct = None
    if status_kind == "Complete":
        result = _get(status, "result")
        correct = _get(result, "correctAnswerIndex")
        info = result.get("judgingInfo")
        if info and "Judge" in roles:
            dist = _distribution(_get(info, "finalJudgement"), f"room {name}")
            verdicts.append(RecordVerdict(
                kind="human", judge=roles["Judge"], distribution=dist,
                judge_turns=int(_get(info, "numContinues")),
            ))  # fmt: skip
        verdicts.extend(_offline_verdicts(status.get("offlineJudgingResults"), f"room {name}"))
    consultant = _consultant(roles)
    fields = {
        "name": name, "source": "nyu-2023", "setting": setting,
        "included_in_paper": bool(line.get("includedInPaper", False)),
        "story_title": str(line.get("storyTitle", ""))[:200],
        "question": _get(line, "question"), "answers": ["", ""],
        "correct_answer_index": correct, "roles": roles,
        "consultant": consultant if not setting.is_debate else None,
        "status": "judged" if verdicts else "incomplete",
        "created_at": _millis(line.get("creationTime")),
        "has_transcript": False, "verdicts": verdicts,
    }  # fmt: skip
    if not setting.is_debate and consultant is None:
        raise RecordError(f"room {name}: a consultancy with no single debater")
    return _record(fields, f"room {name}")
