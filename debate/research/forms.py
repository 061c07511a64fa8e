from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from annotations.kinds import QueueKind
from annotations.models import Queue
from core.roles import Role
from debate.models import (
    MAX_BEST_OF_N,
    DebateBatch,
    Protocol,
    QuestionBank,
    Source,
    TurnOrder,
    VerdictKind,
)
from debate.records import BatchSpec
from debate.research.analytics import GROUPINGS, Filters
from debate.research.batches import DEFAULT_JUDGE_PROMPT, HUMAN_QUEUE_KIND_ERROR
from llm.models import ModelConfig

MAX_UPLOAD_FILES = 1000


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> Any:
        single = super().clean
        if isinstance(data, list | tuple):
            if len(data) > MAX_UPLOAD_FILES:
                raise forms.ValidationError(f"At most {MAX_UPLOAD_FILES} files at once.")
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class DebateImportForm(forms.Form):
    uploads = MultipleFileField(
        help_text="NYU room files (<room>.json), debates-metadata.jsonl, or Arbiter exports "
        "(.jsonl). A room's name is its key: importing it again updates it."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = filesizeformat(settings.DEBATE_IMPORT_MAX_BYTES)
        self.fields["uploads"].help_text += f" At most {limit} of files in one import."

    def clean_uploads(self) -> list[UploadedFile]:
        uploads: list[UploadedFile] = self.cleaned_data["uploads"]
        total, limit = sum(upload.size or 0 for upload in uploads), settings.DEBATE_IMPORT_MAX_BYTES
        if total > limit:
            raise forms.ValidationError(
                f"These {len(uploads)} files come to {filesizeformat(total)}; one import takes "
                f"at most {filesizeformat(limit)}. Import them in parts."
            )
        return uploads


class AnalyticsFilterForm(forms.Form):
    group_by = forms.ChoiceField(choices=list(GROUPINGS.items()), required=False)
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    protocol = forms.ChoiceField(choices=[("", "any")] + Protocol.choices, required=False)
    judge_kind = forms.ChoiceField(
        label="Judge", choices=[("", "live judges (human and LLM)")] + VerdictKind.choices,
        required=False,
    )  # fmt: skip
    source = forms.ChoiceField(choices=[("", "any")] + Source.choices, required=False)
    batch = forms.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    paper_only = forms.BooleanField(label="Only debates the NYU paper includes", required=False)

    def filters(self) -> Filters:
        data = self.cleaned_data if self.is_valid() else {}
        return Filters(
            group_by=data.get("group_by") or "setting",
            date_from=data.get("date_from"), date_to=data.get("date_to"),
            protocol=data.get("protocol", ""), judge_kind=data.get("judge_kind", ""),
            source=data.get("source", ""), batch_id=data.get("batch"),
            paper_only=bool(data.get("paper_only")),
        )  # fmt: skip


class QuestionBankImportForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="importing into an existing bank adds to it")
    file = forms.FileField(
        help_text="JSONL, one question a line: passage (or article), question, options, "
        "gold_index (0-based) or gold_label (QuALITY, 1-based); optional title, "
        "distractor_index"
    )


class QuestionFilterForm(forms.Form):
    q = forms.CharField(label="Question contains", max_length=200, required=False)


MARKET_FIELDS = ("market_candidates", "market_epsilon", "market_patience")


class BatchForm(forms.Form):
    name = forms.CharField(max_length=200)
    bank = forms.ModelChoiceField(QuestionBank.objects.all(), label="Question bank")
    question_filter = forms.CharField(
        max_length=200, required=False, help_text="only questions containing this text"
    )
    count = forms.IntegerField(min_value=1, max_value=1000, initial=8, label="How many debates")
    protocol = forms.ChoiceField(choices=Protocol.choices, initial=Protocol.DEBATE)
    turn_order = forms.ChoiceField(choices=TurnOrder.choices, initial=TurnOrder.SIMULTANEOUS)
    rounds = forms.IntegerField(min_value=1, max_value=10, initial=3)
    speech_char_limit = forms.IntegerField(min_value=50, max_value=10_000, initial=750)
    quote_char_limit = forms.IntegerField(min_value=0, max_value=10_000, initial=250)
    max_new_tokens = forms.IntegerField(
        min_value=1, max_value=4096, initial=200, label="Tokens per speech (at most)"
    )
    debater_a_config = forms.ModelChoiceField(
        ModelConfig.objects.all(), required=False, label="Debater A model",
        help_text="a market: Adv, the model that writes the arguments; a tournament: leave empty",
    )  # fmt: skip
    debater_b_config = forms.ModelChoiceField(
        ModelConfig.objects.all(), required=False, label="Debater B model",
        help_text="debate only; empty: the same model as A",
    )  # fmt: skip
    tournament_configs = forms.ModelMultipleChoiceField(
        ModelConfig.objects.all(), required=False, label="Tournament: debater models",
        help_text="2–6 models: every ordered pair debates every question, the first arguing "
        "the correct answer, self-play included (Khan et al. 2024); empty: not a tournament",
    )  # fmt: skip
    tournament_best_of_n = forms.CharField(
        max_length=40, required=False, label="Tournament: best-of-n variants",
        help_text="e.g. 4, or 4, 16: each model also enters keeping the best of n speeches "
        f"(2–{MAX_BEST_OF_N}), the active debate reward model choosing; at most six entrants "
        "in all; empty: none",
    )  # fmt: skip
    market_predictor_config = forms.ModelChoiceField(
        ModelConfig.objects.all(), required=False, label="Market: M (the predictor)",
        help_text="market only: predicts the judge's final answer before and after each argument",
    )  # fmt: skip
    market_candidates = forms.IntegerField(
        min_value=1,
        max_value=16,
        initial=4,
        required=False,
        label="Market: Adv's candidates a step (n)",
    )
    market_epsilon = forms.FloatField(
        min_value=0.001,
        max_value=0.499,
        initial=0.05,
        required=False,
        label="Market: ε (stop when |Δp| < ε)",
    )
    market_patience = forms.IntegerField(
        min_value=1,
        max_value=10,
        initial=2,
        required=False,
        label="Market: for k steps in a row",
    )
    llm_judge_config = forms.ModelChoiceField(
        ModelConfig.objects.all(), required=False, label="LLM judge model"
    )
    judge_prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}), initial=DEFAULT_JUDGE_PROMPT, required=False,
        help_text="placeholders: {question} {answer_a} {answer_b} {transcript} {protocol} — "
        "the passage and the correct answer are never given to the judge",
    )  # fmt: skip
    judge_max_new_tokens = forms.IntegerField(
        min_value=1, max_value=1024, initial=32, label="Judge reply tokens (at most)"
    )
    human_judge = forms.ModelChoiceField(
        User.objects.filter(is_active=True, groups__name=Role.ANNOTATOR).distinct()
        .order_by("username"),
        required=False, label="Human judge: judges every debate on the judging page",
    )  # fmt: skip
    human_queue = forms.ModelChoiceField(
        Queue.objects.filter(kind=QueueKind.DEBATE_JUDGMENT), required=False,
        label="Human judges: debate-judgment queue",
        error_messages={"invalid_choice": HUMAN_QUEUE_KIND_ERROR},
    )  # fmt: skip

    def spec(self) -> BatchSpec:
        data = self.cleaned_data
        # Entrants: each model plain, then as each best-of-n variant.
        configs, ns = data["tournament_configs"], [1, *data["tournament_best_of_n"]]
        return BatchSpec(
            question_filter=data["question_filter"], protocol=data["protocol"],
            turn_order=data["turn_order"], rounds=data["rounds"],
            speech_char_limit=data["speech_char_limit"],
            quote_char_limit=data["quote_char_limit"], max_new_tokens=data["max_new_tokens"],
            debater_a_config_id=data["debater_a_config"].pk if data["debater_a_config"] else None,
            debater_b_config_id=data["debater_b_config"].pk if data["debater_b_config"] else None,
            count=data["count"],
            human_queue_id=data["human_queue"].pk if data["human_queue"] else None,
            judge_max_new_tokens=data["judge_max_new_tokens"],
            tournament_config_ids=[c.pk for c in configs for _ in ns] or None,
            tournament_best_of_n=[n for _ in configs for n in ns] if ns != [1] else None,
            human_judge_id=data["human_judge"].pk if data["human_judge"] else None,
            market_predictor_config_id=data["market_predictor_config"].pk
            if data["market_predictor_config"] else None,
            # Left empty: the spec's defaults.
            **{name: data[name] for name in MARKET_FIELDS if data.get(name) is not None},
        )  # fmt: skip

    def clean_tournament_best_of_n(self) -> list[int]:
        text = self.cleaned_data["tournament_best_of_n"]
        try:
            values = [int(part) for part in text.replace(",", " ").split()]
        except ValueError:
            raise forms.ValidationError(
                "Give whole numbers separated by commas, such as 4, 16."
            ) from None
        if any(not 2 <= n <= MAX_BEST_OF_N for n in values):
            raise forms.ValidationError(f"Each best-of-n is from 2 to {MAX_BEST_OF_N}.")
        return sorted(set(values))

    def clean(self) -> dict[str, Any] | None:
        data = super().clean() or {}
        configs, variants = data.get("tournament_configs"), data.get("tournament_best_of_n")
        if variants and not configs:
            self.add_error("tournament_best_of_n", "Best-of-n variants need tournament models.")
        elif variants and configs and len(configs) * (1 + len(variants)) > 6:
            self.add_error(
                "tournament_best_of_n",
                f"{len(configs)} models × {1 + len(variants)} variants make "
                f"{len(configs) * (1 + len(variants))} entrants; a tournament takes at most six.",
            )
        return data

    def clean_tournament_configs(self) -> Any:
        configs = self.cleaned_data["tournament_configs"]
        if len(configs) == 1:
            raise forms.ValidationError("A tournament needs at least two debater models.")
        if len(configs) > 6:
            raise forms.ValidationError("A tournament takes at most six debater models.")
        return configs


class BatchStartForm(forms.Form):
    """The query string of the New batch page: a bank to start from."""

    bank = forms.ModelChoiceField(QuestionBank.objects.all(), required=False)


class ExportFilterForm(forms.Form):
    source = forms.ChoiceField(choices=[("", "any")] + Source.choices, required=False)
    protocol = forms.ChoiceField(choices=[("", "any")] + Protocol.choices, required=False)
    batch = forms.ModelChoiceField(DebateBatch.objects.all(), required=False)
