from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator

from annotations.forms import MAX_TIME_MS
from experiments.models import Flag

_external = RegexValidator(
    r"^[A-Za-z0-9_.:-]+$", "An id is letters, digits and _ . : - only (as Prolific's are)."
)


class JoinForm(forms.Form):
    """The study link's query string: Prolific's three ids, each required."""

    PROLIFIC_PID = forms.CharField(max_length=100, validators=[_external])
    STUDY_ID = forms.CharField(max_length=100, validators=[_external])
    SESSION_ID = forms.CharField(max_length=100, validators=[_external])


class ConsentForm(forms.Form):
    agree = forms.BooleanField(label="I have read the above and agree to take part")


class FlagForm(forms.Form):
    assignment = forms.IntegerField(min_value=1)
    flag = forms.ChoiceField(choices=Flag.choices)


class LinkForm(forms.Form):
    open = forms.BooleanField(required=False)


class ProbabilityLabelForm(forms.Form):
    """A question-bank arm's answer: the probability (1–99 %) that answer A is correct, as a
    debate judge gives it; B's is the rest."""

    assignment = forms.IntegerField(min_value=1)
    probability_a = forms.IntegerField(
        min_value=1, max_value=99, label="Probability that answer A is correct (%)"
    )
    request_id = forms.UUIDField()
    time_ms = forms.IntegerField(min_value=0, max_value=MAX_TIME_MS, required=False)

    def value(self) -> dict[str, Any]:
        return {"probability_a": self.cleaned_data["probability_a"]}
