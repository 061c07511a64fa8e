from django import template
from django.utils.safestring import SafeString

from debate.models import Speech
from debate.quotes import speech_html

register = template.Library()


@register.simple_tag
def speech_body(speech: Speech) -> SafeString:
    """A finished speech with its quotes marked verified or unverified; all text escaped."""
    return speech_html(speech.text, speech.quotes, truncated=speech.truncated)
