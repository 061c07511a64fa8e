from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.models import User

from annotations.models import Queue
from llm.models import ModelConfig, TrainingKind
from llm.schemas import RS_MAX_N, RS_MIN_N
from rewards.best_of_n import MAX_PROMPTS
from rewards.data import labels_needed
from rewards.models import GoldKind, LabelSource, RewardModel, RewardVersion, Speed
from rewards.overoptimisation import MAX_N
from rewards.policy import PolicySettings


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


class BestOfNForm(forms.Form):
    """A best-of-n over-optimisation experiment; the prompts come from exactly one of a
    queue and a JSONL file, read here into `cleaned_data["prompts"]`."""

    name = forms.CharField(max_length=200)
    policy = forms.ModelChoiceField(
        queryset=ModelConfig.objects.all(), help_text="the model whose samples are ranked"
    )
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.all(), required=False,
        help_text="its items' prompts (comparison queues)",
    )  # fmt: skip
    prompts_file = forms.FileField(
        required=False, label="or a JSONL file", help_text='one {"prompt": "…"} a line'
    )
    samples_per_prompt = forms.IntegerField(
        label="N (samples per prompt)", min_value=2, max_value=MAX_N, initial=16,
        help_text=f"best-of-n is read for n = 1, 2, 4 … N; at most {MAX_N}",
    )  # fmt: skip
    temperature = forms.FloatField(min_value=0.0, max_value=2.0, initial=1.0)
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=0)
    max_new_tokens = forms.IntegerField(min_value=1, max_value=1024, initial=48)
    proxies = forms.ModelMultipleChoiceField(
        queryset=RewardVersion.objects.none(), widget=forms.CheckboxSelectMultiple,
        help_text="the reward-model versions best-of-n optimises; several share one plot",
    )  # fmt: skip
    gold_kind = forms.ChoiceField(
        label="Gold scorer", choices=GoldKind.choices, initial=GoldKind.MODEL,
        widget=forms.RadioSelect, required=False,
    )  # fmt: skip
    gold = forms.ModelChoiceField(
        queryset=RewardVersion.objects.none(), required=False,
        help_text="the version that stands for the true reward (not one of the proxies)",
    )  # fmt: skip
    human_prompts = forms.IntegerField(
        label="Human gold: prompts in the sample", required=False, min_value=0,
        max_value=MAX_PROMPTS,
        help_text="drawn with the seed; for each, best-of-n (n = 2, 4 … N, the proxy's pick) "
        "against one random sample goes to a blind pairwise queue; one proxy only",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from rewards.best_of_n import scorable_versions

        for name in ("proxies", "gold"):
            field = self.fields[name]
            field.queryset = scorable_versions()  # type: ignore[attr-defined]
            field.label_from_instance = _version_label  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        from rewards.best_of_n import ExperimentInvalid, jsonl_prompts, queue_prompts

        data = super().clean() or {}
        queue, upload = data.get("queue"), data.get("prompts_file")
        if (queue is None) == (upload is None):
            raise forms.ValidationError("Choose a queue or upload a JSONL file of prompts (one).")
        try:
            if queue is not None:
                data["prompts"] = queue_prompts(queue=queue)
                data["prompt_source"] = f"queue {queue.name}"
            elif upload is not None:
                data["prompts"] = jsonl_prompts(upload.read())
                data["prompt_source"] = f"file {upload.name}"[:300]
        except ExperimentInvalid as error:
            raise forms.ValidationError(error.message) from None
        if not data["prompts"]:
            raise forms.ValidationError("The prompt set has no prompts: nothing to sample.")
        gold, proxies = data.get("gold"), data.get("proxies") or []
        if data.get("gold_kind") == GoldKind.HUMAN:
            # The service checks the sample's size against the prompt set (one rule, one
            # place); an empty box is a size of 0, which it refuses.
            data["gold"], data["human_prompts"] = None, data.get("human_prompts") or 0
        else:
            data["human_prompts"] = None
            if gold is None:
                self.add_error("gold", "Choose the gold version (or human gold).")
            elif gold in proxies:
                self.add_error("gold", "The gold scorer must not be one of the proxies.")
        return data


def _version_label(version: RewardVersion) -> str:
    return (
        f"{version.reward_model.name} v{version.number} · {version.label_count} labels "
        f"({version.status})"
    )


class PolicyRunForm(forms.Form):
    """Start a policy training run (DPO or rejection sampling) from a queue; the service
    (rewards.policy.policy_run_start) refuses what the fields cannot (a parent that is not
    local, a queue without pairs or prompts, no active reward model)."""

    kind = forms.ChoiceField(
        choices=[
            (TrainingKind.DPO, TrainingKind.DPO.label),
            (TrainingKind.REJECTION_SAMPLING, TrainingKind.REJECTION_SAMPLING.label),
        ],
        help_text="DPO trains on the queue's A/B labels; rejection sampling samples n "
        "completions of each of the queue's prompts and fine-tunes on the reward model's best",
    )
    parent = forms.ModelChoiceField(
        queryset=ModelConfig.objects.all(),
        help_text="the policy to start from: a local transformers model (also DPO's reference)",
    )
    name = forms.CharField(max_length=100, help_text="what the new model config will be called")
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.all(), help_text="a comparison queue: its pairs or its prompts"
    )
    reward_model = forms.ModelChoiceField(
        queryset=RewardModel.objects.all(),
        required=False,
        help_text="its active version ranks the samples (rejection sampling, required) and "
        "gives the report's proxy reward (both kinds)",
    )
    gold_model = forms.ModelChoiceField(
        queryset=RewardModel.objects.all(),
        required=False,
        label="Gold reward model",
        help_text="optional, not the proxy: its active version (trained on more, or other, "
        "labels) also scores the report's samples, so you see whether the proxy's gain is real",
    )
    n = forms.IntegerField(
        label="n (samples a prompt)",
        min_value=RS_MIN_N,
        max_value=RS_MAX_N,
        initial=4,
        required=False,
        help_text=f"rejection sampling only; {RS_MIN_N} to {RS_MAX_N}",
    )
    beta = forms.FloatField(
        label="β",
        min_value=0.001,
        max_value=10.0,
        initial=0.1,
        required=False,
        help_text="DPO only: larger keeps the policy nearer its parent",
    )
    learning_rate = forms.FloatField(
        min_value=1e-7,
        max_value=1e-2,
        required=False,
        help_text="empty: 5e-6 for DPO, 5e-5 for rejection sampling",
    )
    max_steps = forms.IntegerField(
        initial=0,
        min_value=0,
        max_value=100_000,
        required=False,
        help_text="stop after this many steps (0 or empty: one epoch)",
    )
    batch_size = forms.IntegerField(
        min_value=1, max_value=128, required=False, help_text="empty: 4 for DPO, 8 for RS"
    )
    max_length = forms.IntegerField(
        initial=256, min_value=16, max_value=4096, help_text="tokens a row is cut to"
    )

    def policy_settings(self) -> PolicySettings:
        data = self.cleaned_data
        return PolicySettings(
            beta=data.get("beta") or 0.1,
            n=data["n"] if data.get("n") is not None else 4,
            learning_rate=data.get("learning_rate"),
            max_steps=data.get("max_steps") or 0,
            batch_size=data.get("batch_size"),
            max_length=data["max_length"],
        )


class PolicyEvalForm(forms.Form):
    """Who labels a run's blind evaluation queue."""

    members = forms.ModelMultipleChoiceField(
        queryset=User.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="annotators who compare the two models' responses",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from annotations.forms import annotators

        self.fields["members"].queryset = annotators()  # type: ignore[attr-defined]
