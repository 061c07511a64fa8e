from django import template
from django.utils.safestring import SafeString

from debate.models import Speech, SpeechCandidate
from debate.quotes import speech_html
from debate.selectors import DebateView

register = template.Library()


@register.simple_tag
def speech_body(speech: Speech) -> SafeString:
    """A finished speech with its quotes marked verified or unverified; all text escaped."""
    return speech_html(speech.text, speech.quotes, truncated=speech.truncated)


@register.simple_tag
def speech_candidates(view: DebateView, speech: Speech) -> list[SpeechCandidate]:
    """A best-of-n speech's candidates, if this view holds them (observers only)."""
    return view.candidates.get(speech.pk, [])
