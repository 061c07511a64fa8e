"""core/text.py: the one check for text going into the database."""

import pytest
from pydantic import TypeAdapter, ValidationError

from core.text import (
    RequiredText,
    StoredText,
    TextRefused,
    text_blank,
    text_clean,
    text_problem,
    text_refuse,
)


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "x\ud800", "\udfff"])
def test_unstorable_text_is_named(text):
    assert text_problem(text)
    assert text_clean(text).count("\ufffd") == 1
    assert text_problem(text_clean(text)) is None


@pytest.mark.parametrize("text", ["", "plain", "é ✓ 🎉", "tab\tnew\nline", "\ufffd"])
def test_storable_text_passes_unchanged(text):
    assert text_problem(text) is None
    assert text_clean(text) == text


def test_refusal_names_the_path_into_nested_json():
    with pytest.raises(TextRefused) as refused:
        text_refuse({"turns": [{"text": "ok"}, {"text": "bad\x00"}]})
    assert refused.value.field == "turns.1.text"
    with pytest.raises(TextRefused, match="^a\x00: contains a NUL"):
        text_refuse({"a\x00": 1})


def test_blank_and_schema_types():
    assert text_blank(" \n\t") and text_blank("") and not text_blank(" x ")
    required = TypeAdapter(RequiredText)
    assert required.validate_python(" x ") == " x "
    for bad in (" \n", "x\x00"):
        with pytest.raises(ValidationError):
            required.validate_python(bad)
    with pytest.raises(ValidationError):
        TypeAdapter(StoredText).validate_python("\x00")
    assert TypeAdapter(StoredText).validate_python("") == ""
