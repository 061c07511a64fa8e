from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """`{{ form }}` renders every form the same way: label, widget, help, errors."""

    form_template_name = "forms/fields.html"
