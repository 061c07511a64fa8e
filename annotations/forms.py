from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from pydantic import ValidationError as PydanticValidationError

from annotations.exports import (
    AGGREGATION_NAMES,
    FORMAT_NAMES,
    ExportInvalid,
    ExportSpec,
    export_plan,
)
from annotations.importers import UploadRefused, upload_format
from annotations.kinds import ItemKind, QueueKind, item_kind, validation_message
from annotations.models import Queue
from core.roles import Role

# A day: anything longer is a tab left open, not time on an item.
MAX_TIME_MS = 24 * 3600 * 1000


class RevisitForm(forms.Form):
    """Whether the labelling page is going through the annotator's skipped items."""

    revisit = forms.BooleanField(required=False)


class LabelForm(RevisitForm):
    """One key press on the annotator page: the lease, the key, and the client's request id."""

    assignment = forms.IntegerField(min_value=1)
    key = forms.CharField(max_length=8)
    request_id = forms.UUIDField()
    time_ms = forms.IntegerField(min_value=0, max_value=MAX_TIME_MS, required=False)

    def __init__(self, *args: Any, kind: ItemKind, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind

    def clean_key(self) -> str:
        key = self.cleaned_data["key"].strip().lower()
        if key not in {label_key.key for label_key in self.kind.keys}:
            raise forms.ValidationError(f"{key!r} is not a label key in a {self.kind.name} queue.")
        return key

    def value(self) -> dict[str, Any]:
        key = self.cleaned_data["key"]
        return next(label_key.value for label_key in self.kind.keys if label_key.key == key)


class LeaseForm(RevisitForm):
    assignment = forms.IntegerField(min_value=1)


def annotators() -> Any:
    return (
        User.objects.filter(is_active=True, groups__name=Role.ANNOTATOR)
        .distinct()
        .order_by("username")
    )


class QueueForm(forms.ModelForm):
    member_users = forms.ModelMultipleChoiceField(
        queryset=User.objects.none(),
        required=False,
        label="Members",
        widget=forms.CheckboxSelectMultiple,
        help_text="annotators who label in this queue",
    )

    class Meta:
        model = Queue
        fields = [
            "name", "kind", "instructions", "labels_per_item", "priority", "gold_rate",
            "lease_minutes",
        ]  # fmt: skip
        widgets = {"instructions": forms.Textarea(attrs={"rows": 6})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["member_users"].queryset = annotators()  # type: ignore[attr-defined]
        if self.instance.pk is not None:
            self.fields["member_users"].initial = list(self.instance.members.all())
            if self.instance.items.exists():
                # Items were validated against the kind: it cannot change under them.
                self.fields["kind"].disabled = True
                self.fields["kind"].help_text = "fixed once the queue has items"

    def clean_kind(self) -> str:
        name = self.cleaned_data["kind"]
        if name == self.instance.kind and self.instance.pk is not None:
            return name  # a queue keeps its own kind, wherever it was made
        try:
            kind = item_kind(name)
        except KeyError:
            raise forms.ValidationError(f"No app provides {name} queues here.") from None
        if kind.made_by:
            raise forms.ValidationError(
                f"A {kind.title.lower()} queue cannot be made with this form: such queues are "
                f"made by {kind.made_by}. Choose another kind."
            )
        return name


class NewQueueKindForm(forms.Form):
    """`?kind=` on the new-queue page: a link that means "a queue of this kind" (the debate
    list's hint when no debate-judgment queue exists) starts the form with it."""

    kind = forms.ChoiceField(choices=[(kind.value, kind.value) for kind in QueueKind])


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL or CSV, at most 20 MB")
    format = forms.ChoiceField(
        choices=[("", "from the file name"), ("jsonl", "JSONL"), ("csv", "CSV")], required=False
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is None:
            return data
        try:
            data["format"] = upload_format(
                size=upload.size, name=upload.name or "", fmt=data.get("format")
            )
        except UploadRefused as refused:
            self.add_error(refused.field, refused.message)
        return data


class ExportForm(forms.Form):
    queues = forms.ModelMultipleChoiceField(
        queryset=Queue.objects.all(), help_text="queues of one kind"
    )
    format = forms.ChoiceField(choices=list(FORMAT_NAMES.items()))
    aggregation = forms.ChoiceField(choices=list(AGGREGATION_NAMES.items()))
    since = forms.DateTimeField(required=False, help_text="labelled at or after (UTC)")
    until = forms.DateTimeField(required=False, help_text="labelled before (UTC)")
    min_agreement = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="leave out items below this agreement (0–1)",
    )
    min_gold_accuracy = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="leave out annotators below this gold accuracy (0–1)",
    )
    include_gold = forms.BooleanField(required=False, label="Include gold items")
    include_ai_labels = forms.BooleanField(
        required=False,
        label="Include AI labels",
        help_text="one row per label only: add model annotators' labels; every row then says"
        " its source (human or model) and, for a model, its provenance",
    )
    csv_raw = forms.BooleanField(
        required=False,
        label="CSV: keep cells exactly as written",
        help_text="Off (safe): a cell starting with = + - or @ gets a leading ' so a"
        " spreadsheet shows it as text instead of running it as a formula. Turn on only for"
        " a file that no spreadsheet will open.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            self.spec = ExportSpec(
                queues=[queue.pk for queue in data["queues"]],
                **{key: value for key, value in data.items() if key != "queues"},
            )
            export_plan(self.spec)
        except PydanticValidationError as error:
            raise forms.ValidationError(validation_message(error)) from None
        except ExportInvalid as error:
            raise forms.ValidationError(error.message) from None
        return data


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="what the token is for, e.g. “labelling script on my laptop”",
    )
