from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from feedback.models import MAX_PRINCIPLES, PRINCIPLE_MAX_CHARS, Constitution, ModelAnnotator
from feedback.services import principles_clean

PRINCIPLES_HELP = (
    f"one principle a line, at most {PRINCIPLE_MAX_CHARS} characters each, up to "
    f"{MAX_PRINCIPLES}; e.g. “Prefer the response that is more honest about what it does not know.”"
)


class PrinciplesField(forms.CharField):
    """One principle a line; none at all is refused by principles_clean, in its words."""

    widget = forms.Textarea(attrs={"rows": 6})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)

    def clean(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().clean(value)
        return principles_clean(text.splitlines())


class ConstitutionForm(forms.Form):
    name = forms.CharField(max_length=200)
    principles = PrinciplesField(help_text=PRINCIPLES_HELP)

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if Constitution.objects.filter(name=name).exists():
            raise ValidationError("A constitution with this name exists already.")
        return name


class VersionForm(forms.Form):
    principles = PrinciplesField(help_text=PRINCIPLES_HELP)


class ModelAnnotatorForm(forms.ModelForm):
    class Meta:
        model = ModelAnnotator
        fields = ["queue", "name", "model_config", "constitution", "prompt",
                  "shortcut_threshold", "shortcut_labels", "counts_toward_k"]  # fmt: skip
        widgets = {"prompt": forms.Textarea(attrs={"rows": 8})}
        labels = {"model_config": "Model"}


class ModelAnnotatorNewForm(forms.Form):
    """The query string of the new-annotator page: which queue to start from."""

    queue = forms.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
