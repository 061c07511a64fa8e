from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """`{{ form }}` renders every form the same way: label, widget, help, errors."""

    form_template_name = "forms/fields.html"


from django import forms  # noqa: E402

from core.models import WebhookEvent  # noqa: E402


class WebhookEndpointForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="For you; the URL if empty.")
    url = forms.CharField(
        max_length=500,
        label="URL",
        help_text="http:// or https://; it receives a signed POST per event (labels in batches).",
    )
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple
    )


class WebhookEnabledForm(forms.Form):
    enabled = forms.BooleanField(required=False)
