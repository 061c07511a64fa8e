from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from pydantic import ValidationError as PydanticError

from amplification.models import (
    MAX_ANSWER_CHARS,
    MAX_CHILDREN,
    MAX_DEPTH,
    MAX_NODES,
    MAX_QUESTION_CHARS,
    Mode,
    Tree,
    TreeStatus,
)
from amplification.parsing import REQUIRED
from amplification.schemas import TreeExport
from amplification.selectors import DistillMode
from amplification.services import ASPECT_ANSWER, ASPECT_DECOMPOSITION
from annotations.kinds import QueueKind, validation_message
from annotations.models import Queue
from core.roles import Role
from core.text import text_problem
from llm.forms import TrainingStartForm
from llm.models import BUNDLED_CONFIG_NAME, Backend, ModelConfig
from rewards.models import RewardModel

MAX_IMPORT_BYTES = 20 * 1024 * 1024


def _storable(value: str) -> None:
    """The project's one text check (core/text.py): text the database cannot store."""
    problem = text_problem(value)
    if problem:
        raise forms.ValidationError(f"The text {problem}.")


class TreeForm(forms.ModelForm):
    assignees = forms.ModelMultipleChoiceField(
        queryset=User.objects.none(), required=False,
        help_text="annotators who may take and answer nodes (augmented mode)",
    )  # fmt: skip

    class Meta:
        model = Tree
        fields = [
            "question", "context", "mode", "max_depth", "max_children", "max_nodes",
            "decompose_config", "answer_config", "compose_config",
            "decompose_prompt", "answer_prompt", "compose_prompt",
        ]  # fmt: skip
        widgets = {
            "question": forms.Textarea(attrs={"rows": 2, "maxlength": MAX_QUESTION_CHARS}),
            "context": forms.Textarea(attrs={"rows": 4}),
            "mode": forms.RadioSelect,
            "decompose_prompt": forms.Textarea(attrs={"rows": 4}),
            "answer_prompt": forms.Textarea(attrs={"rows": 3}),
            "compose_prompt": forms.Textarea(attrs={"rows": 4}),
        }
        help_texts = {
            "max_depth": "levels below the root (0–4); nodes this deep are answered directly",
            "max_children": "sub-questions per node (1–8)",
            "max_nodes": "the whole tree, root included (1–200)",
            "decompose_prompt": "placeholders: {question} {context} {max_children} {examples} "
            "(worked examples from a bank, never the question's own)",
            "answer_prompt": "placeholders: {question} {context}",
            "compose_prompt": "placeholders: {question} {context} {subanswers}",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignees"].queryset = (  # type: ignore[attr-defined]
            User.objects.filter(is_active=True, groups__name=Role.ANNOTATOR)
            .distinct()
            .order_by("username")
        )
        bundled = ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).first()
        if bundled is not None and not self.is_bound:
            for name in ("decompose_config", "answer_config", "compose_config"):
                self.fields[name].initial = bundled.pk

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("question", "context", "decompose_prompt", "answer_prompt",
                     "compose_prompt"):  # fmt: skip
            value = data.get(name)
            if isinstance(value, str) and (problem := text_problem(value)):
                self.add_error(name, f"The text {problem}.")
        if isinstance(data.get("question"), str) and not data["question"].strip():
            self.add_error("question", "The question must not be empty.")
        for name, needed in REQUIRED.items():
            value = data.get(name)
            for placeholder in needed:
                if isinstance(value, str) and placeholder not in value:
                    self.add_error(name, f"Must contain {placeholder}.")
        return data


class TreeFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "any status"), *TreeStatus.choices], required=False)
    mode = forms.ChoiceField(
        choices=[("", "any mode"), *((mode.value, mode.value) for mode in Mode)], required=False
    )
    q = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"placeholder": "Search"})
    )


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200)
    node = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class QuestionForm(forms.Form):
    question = forms.CharField(
        max_length=MAX_QUESTION_CHARS, widget=forms.Textarea(attrs={"rows": 2}),
        validators=[_storable],
    )  # fmt: skip


class AnswerForm(forms.Form):
    answer = forms.CharField(
        max_length=MAX_ANSWER_CHARS, widget=forms.Textarea(attrs={"rows": 4}),
        validators=[_storable],
    )  # fmt: skip


class SubquestionsForm(forms.Form):
    subquestions = forms.CharField(
        max_length=MAX_ANSWER_CHARS, widget=forms.Textarea(attrs={"rows": 4}),
        validators=[_storable], help_text="one sub-question a line",
    )  # fmt: skip


class ToQueueForm(forms.Form):
    queue = forms.ModelChoiceField(queryset=Queue.objects.filter(kind=QueueKind.TREE_NODE_RATING))
    aspect = forms.ChoiceField(
        choices=[
            (ASPECT_ANSWER, "Is this answer right? (given its children where it has them)"),
            (ASPECT_DECOMPOSITION, "Is this decomposition helpful?"),
        ]
    )


class DistillForm(forms.Form):
    trees = forms.ModelMultipleChoiceField(
        queryset=Tree.objects.none(), required=False,
        widget=forms.SelectMultiple(attrs={"size": 4}),
        help_text="none chosen: every finished tree",
    )  # fmt: skip
    mode = forms.ChoiceField(choices=DistillMode.choices, required=False, label="Nodes")
    min_rating = forms.FloatField(
        required=False, min_value=1, max_value=7,
        help_text="keep rated nodes whose mean rating reaches this (unrated nodes are kept)",
    )  # fmt: skip
    rated_only = forms.BooleanField(required=False, label="Rated nodes only")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The tree list's filter form has a `mode` too: ids of their own, names unchanged.
        kwargs.setdefault("auto_id", "distill_%s")
        super().__init__(*args, **kwargs)
        self.fields["trees"].queryset = Tree.objects.filter(  # type: ignore[attr-defined]
            status=TreeStatus.DONE
        ).order_by("-created_at")

    def filters(self) -> dict[str, Any]:
        """The selector's keyword filters (call once valid)."""
        data = self.cleaned_data
        trees = data["trees"]
        return {
            "tree_ids": [tree.pk for tree in trees] if trees else None,
            "mode": data["mode"] or DistillMode.ALL, "min_rating": data["min_rating"],
            "rated_only": data["rated_only"],
        }  # fmt: skip


class ImportForm(forms.Form):
    """An exported tree; `file_name` (once valid) is what the tree says it was imported from."""

    file_name = ""
    file = forms.FileField(help_text="a tree exported from Arbiter as JSON")
    again = forms.BooleanField(
        required=False, label="Import another copy",
        help_text="a tree imported before is refused unless you tick this",
    )  # fmt: skip

    def clean_file(self) -> TreeExport:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError("The file is larger than 20 MB.")
        self.file_name = str(upload.name or "a file")
        raw = upload.read()
        try:
            return TreeExport.model_validate_json(raw)
        except PydanticError as error:
            raise forms.ValidationError(
                f"Not a valid tree export: {validation_message(error)[:1000]}"
            ) from error


class IterationLineForm(forms.Form):
    """A new line of iterations: its name, base, iteration 1's finished trees and the
    held-out questions every iteration answers three ways."""

    name = forms.CharField(max_length=80, validators=[_storable])
    base = forms.ModelChoiceField(
        queryset=ModelConfig.objects.filter(backend=Backend.TRANSFORMERS),
        help_text="iteration 1's helper: a local model (it is fine-tuned)",
    )
    trees = forms.ModelMultipleChoiceField(
        queryset=Tree.objects.none(), widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text="iteration 1: finished trees in no other line",
    )  # fmt: skip
    held_out = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), max_length=MAX_ANSWER_CHARS,
        validators=[_storable], label="Held-out questions",
        help_text="one a line; never trained on, each answered three ways every iteration",
    )  # fmt: skip
    max_depth = forms.IntegerField(initial=1, min_value=1, max_value=MAX_DEPTH,
                                   help_text="of the trees each iteration grows")  # fmt: skip
    max_children = forms.IntegerField(initial=3, min_value=1, max_value=MAX_CHILDREN)
    max_nodes = forms.IntegerField(initial=7, min_value=1, max_value=MAX_NODES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trees"].queryset = Tree.objects.filter(  # type: ignore[attr-defined]
            status=TreeStatus.DONE, iteration__isnull=True
        ).order_by("-created_at")
        bundled = ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).first()
        if bundled is not None:
            self.fields["base"].initial = bundled.pk


class IterationDistilForm(TrainingStartForm):
    """The hyperparameters of an iteration's distillation (base and name are the iteration's)."""

    base = None  # type: ignore[assignment]
    name = None  # type: ignore[assignment]


class PairwiseQueueForm(forms.Form):
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.filter(kind=QueueKind.PAIRWISE),
        help_text="a pairwise queue (A / B / tie / both bad)",
    )


class RewardModelChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        active = obj.active_version
        return f"{obj.name} ({f'v{active.number} active' if active else 'no active version'})"


class IterationJudgeForm(forms.Form):
    """Any reward model may be chosen; one with no active version is refused by the service
    with its reason (amplification.iteration_judge.iteration_judge_start)."""

    reward_model = RewardModelChoice(
        queryset=RewardModel.objects.select_related("active_version").order_by("name"),
        help_text="its active version scores each pair's two answers",
    )
