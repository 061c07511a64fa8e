from __future__ import annotations

from typing import Any

from django import forms

from annotations.models import Queue
from rewards.models import RewardModel, Speed


class RewardModelForm(forms.ModelForm):
    queues = forms.ModelMultipleChoiceField(
        queryset=Queue.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        help_text="every label of these queues trains this reward model",
    )

    class Meta:
        model = RewardModel
        fields = ["name", "base_checkpoint", "queues", "fast_every", "full_every_hours",
                  "margin", "max_length", "heldout_percent"]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            # The split depends on it: changing it would move pairs across the split.
            self.fields["heldout_percent"].disabled = True


class RetrainForm(forms.Form):
    speed = forms.ChoiceField(choices=Speed.choices, initial=Speed.FULL)
