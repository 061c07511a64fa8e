from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

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
