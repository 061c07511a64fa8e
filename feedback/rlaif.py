"""AI labels for reward models (RLAIF): each model annotator's newest finished run on the
reward model's queues gives its overall a/b answer per comparison item (rewards/data.py
`ai_choices_register`; rewards builds the pairs and keeps its gate on human pairs). Items
whose answer is a tie (P(A) = 0.5: e.g. the two orders cancelled) or that named no option
give no pair."""

from __future__ import annotations

from collections.abc import Sequence

from feedback.agreement import run_answers
from feedback.selectors import newest_runs
from rewards.data import AiChoice, ai_choices_register


def ai_choices(queue_ids: Sequence[int]) -> list[AiChoice]:
    choices = []
    for run in newest_runs(queue_ids):
        if run.annotator.queue.item_kind.value_field != "choice":
            continue
        for item_id, answer in sorted(run_answers(run).get(None, {}).items()):
            if answer.scalar in ("a", "b"):
                choices.append(AiChoice(item_id=item_id, choice=answer.scalar))
    return choices


def register() -> None:
    ai_choices_register(ai_choices)
