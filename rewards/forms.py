from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from annotations.models import Queue
from rewards.data import labels_needed
from rewards.models import LabelSource, RewardModel, Speed


class RewardModelForm(forms.ModelForm):
    queues = forms.ModelMultipleChoiceField(
        queryset=Queue.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        help_text="every label of these queues trains this reward model",
    )

    class Meta:
        model = RewardModel
        fields = ["name", "base_checkpoint", "queues", "label_source", "ai_weight", "fast_every",
                  "full_every_hours", "margin", "max_length", "heldout_percent"]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            # The split depends on it: changing it would move pairs across the split.
            self.fields["heldout_percent"].disabled = True
        self.fields["heldout_percent"].help_text = (
            "share of items (rated items: prompts) held out to evaluate each version, fixed "
            "once created; reached on small queues too"
        )
        percent = (
            self.instance.heldout_percent
            or RewardModel._meta.get_field("heldout_percent").get_default()
        )
        self.minimums = minimums_text(int(percent))
        # Older clients (and scripts) post neither: a human-labels model, as before.
        self.fields["label_source"].required = False
        self.fields["ai_weight"].required = False

    def clean_label_source(self) -> str:
        return self.cleaned_data.get("label_source") or LabelSource.HUMAN

    def clean_ai_weight(self) -> float:
        weight = self.cleaned_data.get("ai_weight")
        return 1.0 if weight is None else weight


def _first_run_labels(percent: int) -> int:
    return labels_needed(
        train=0, heldout=0, groups=0, heldout_groups=0, percent=percent,
        min_train=settings.REWARD_MIN_TRAIN_PAIRS, min_heldout=settings.REWARD_MIN_HELDOUT_PAIRS,
    )  # fmt: skip


def minimums_text(percent: int) -> str:
    """The labels a reward model needs before its first run, stated on its form."""
    others = ", ".join(f"{p} %: {_first_run_labels(p)}" for p in (10, 30, 50) if p != percent)
    return (
        f"A version needs at least {settings.REWARD_MIN_TRAIN_PAIRS} training pairs and "
        f"{settings.REWARD_MIN_HELDOUT_PAIRS} held-out pairs (one a/b label on a new item is "
        f"one pair; ties give none): with {percent} % held out, at least "
        f"{_first_run_labels(percent)} labels ({others}). "
        "Nothing trains before that. A first version goes live only if it beats chance: the "
        "lower bound of its held-out accuracy's Wilson 95 % interval above 50 %."
    )


class RetrainForm(forms.Form):
    speed = forms.ChoiceField(choices=Speed.choices, initial=Speed.FULL)
