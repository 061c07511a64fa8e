from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from annotations.kinds import QueueKind
from annotations.models import Queue
from core.roles import Role
from debate.models import Debate, DebateStatus, JudgeAction, Protocol, ProtocolPrompt
from debate.prompting import PLACEHOLDERS, template_fill
from debate.records import (
    MAX_ANSWER_CHARS,
    MAX_PASSAGE_CHARS,
    MAX_QUESTION_CHARS,
    answers_check,
)
from debate.research.forms import BatchForm
from debate.selectors import DEBATE_ORIGINS
from debate.services import best_of_n_check

MAX_JUDGE_MESSAGE_CHARS = 1000
MAX_RATIONALE_CHARS = 5000


class DebateForm(forms.ModelForm):
    # The field rules of debate.records, as the API and the imports apply them.
    question = forms.CharField(
        max_length=MAX_QUESTION_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    answer_a = forms.CharField(
        max_length=MAX_ANSWER_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    answer_b = forms.CharField(
        max_length=MAX_ANSWER_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    passage = forms.CharField(
        max_length=MAX_PASSAGE_CHARS, required=False, widget=forms.Textarea(attrs={"rows": 6}),
        help_text=Debate._meta.get_field("passage").help_text,
    )  # fmt: skip

    # A market (Hubinger 2020): debater A's model is Adv, max rounds the step limit; these
    # are the batch form's fields, so the two forms cannot drift.
    market_predictor_config = BatchForm.base_fields["market_predictor_config"]
    market_candidates = BatchForm.base_fields["market_candidates"]
    market_epsilon = BatchForm.base_fields["market_epsilon"]
    market_patience = BatchForm.base_fields["market_patience"]

    class Meta:
        model = Debate
        fields = [
            "question", "answer_a", "answer_b", "correct_side", "passage", "protocol",
            "turn_order", "rounds_mode", "max_rounds", "speech_char_limit", "quote_char_limit",
            "debater_a_config", "debater_b_config", "best_of_n", "judge",
        ]  # fmt: skip
        help_texts = {
            "debater_a_config": "a market: Adv, the model that writes the arguments",
            "max_rounds": "a market: the step limit (it may stop sooner, by the ε rule below)",
            "debater_b_config": "leave empty for two instances of debater A's model; "
            "consultancy uses debater A's model only",
            "speech_char_limit": "NYU 2023: 750 for debate; consultancy doubles it",
            "quote_char_limit": "NYU 2023: 250 for debate; consultancy doubles it",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["best_of_n"].required = False
        # Judges are people with the annotator role.
        self.fields["judge"].queryset = (  # type: ignore[attr-defined]
            User.objects.filter(is_active=True, groups__name=Role.ANNOTATOR)
            .distinct()
            .order_by("username")
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["best_of_n"] = data.get("best_of_n") or 1  # left out: no choice, as before
        if data.get("answer_a") and data.get("answer_b"):
            try:
                answers_check([data["answer_a"], data["answer_b"]])
            except ValueError as error:
                self.add_error("answer_b", f"{str(error).capitalize()}.")
        limit, quotes = data.get("speech_char_limit"), data.get("quote_char_limit")
        if limit is not None and quotes is not None and quotes > limit:
            self.add_error("quote_char_limit", "The quote limit cannot exceed the speech limit.")
        if data.get("protocol") == Protocol.CONSULTANCY and data.get("debater_b_config"):
            self.add_error("debater_b_config", "Consultancy has one consultant: leave this empty.")
        if data.get("protocol") == Protocol.MARKET:
            self._market_clean(data)
        configs = [data.get("debater_a_config"), data.get("debater_b_config")]
        try:
            best_of_n_check(best_of_n=data.get("best_of_n") or 1,
                            configs=[config for config in configs if config])  # fmt: skip
        except ValidationError as error:
            self.add_error("best_of_n", error)
        return data

    def _market_clean(self, data: dict[str, Any]) -> None:
        if not data.get("market_predictor_config"):
            self.add_error("market_predictor_config", "A market needs M: choose its model.")
        if data.get("debater_b_config"):
            self.add_error("debater_b_config", "A market has one arguer, Adv: leave this empty.")
        if (data.get("best_of_n") or 1) > 1:
            self.add_error("best_of_n", "A market has its own candidates: set n below instead.")
        for name in ("market_candidates", "market_epsilon", "market_patience"):
            if data.get(name) is None:
                data[name] = self.fields[name].initial

    def market_settings(self) -> dict[str, Any]:
        """market_create's arguments beside the debate."""
        data = self.cleaned_data
        return {
            "predictor": data["market_predictor_config"], "epsilon": data["market_epsilon"],
            "patience": data["market_patience"], "candidates": data["market_candidates"],
        }  # fmt: skip


class ProbabilityForm(forms.Form):
    probability_a = forms.IntegerField(min_value=1, max_value=99, label="Answer A (%)")
    probability_b = forms.IntegerField(min_value=1, max_value=99, label="Answer B (%)")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        a, b = data.get("probability_a"), data.get("probability_b")
        if a is not None and b is not None and a + b != 100:
            raise forms.ValidationError(
                f"The probabilities must sum to 100% (they sum to {a + b}%)."
            )
        return data


class PriorForm(ProbabilityForm):
    """The judge's prior, and what they want the debaters to hear before round 1."""

    message = forms.CharField(
        required=False,
        max_length=MAX_JUDGE_MESSAGE_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Question or feedback for the debaters",
    )


class JudgeTurnForm(PriorForm):
    action = forms.ChoiceField(choices=JudgeAction.choices)
    rationale = forms.CharField(
        required=False,
        max_length=MAX_RATIONALE_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Rationale (required to end)",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("action") == JudgeAction.END and not data.get("rationale", "").strip():
            self.add_error("rationale", "Explain your judgment before ending the debate.")
        return data


def judge_forms() -> dict[str, forms.Form]:
    """Fresh forms for the judge's panel; the page and the socket render the same panel. No
    initial probabilities: the panel starts them from the judge's latest (DebateView.belief_now)."""
    return {"prior_form": PriorForm(), "turn_form": JudgeTurnForm()}


class DebatesToQueueForm(forms.Form):
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.filter(kind=QueueKind.DEBATE_JUDGMENT).order_by("name"),
        empty_label="a debate-judgment queue…",
        label="Add every judged debate to",
    )


class DebateFilterForm(forms.Form):
    """The debate list's query string: filters and the page."""

    status = forms.ChoiceField(
        required=False, choices=[("", "any status"), *DebateStatus.choices], label="Status"
    )
    protocol = forms.ChoiceField(
        required=False, choices=[("", "any protocol"), *Protocol.choices], label="Protocol"
    )
    source = forms.ChoiceField(
        required=False, choices=[("", "any source"), *DEBATE_ORIGINS], label="Source"
    )
    q = forms.CharField(required=False, max_length=200, label="Question contains")
    page = forms.IntegerField(required=False, min_value=1)


class ProtocolPromptForm(forms.ModelForm):
    class Meta:
        model = ProtocolPrompt
        fields = ["debater_system", "debater_turn"]
        widgets = {
            "debater_system": forms.Textarea(attrs={"rows": 8}),
            "debater_turn": forms.Textarea(attrs={"rows": 3}),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        sample = dict.fromkeys(PLACEHOLDERS, "x")
        for name in ("debater_system", "debater_turn"):
            try:
                template_fill(data.get(name, ""), sample)
            except (ValueError, IndexError) as error:
                self.add_error(
                    name, f"Broken placeholder: {error}. Write {{{{ for a literal brace."
                )
        return data
