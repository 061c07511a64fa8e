from amplification.selectors import text_diff


def _shown(before: str, after: str) -> str:
    """The diff as a reader sees it: ~~deleted~~, [inserted]."""
    marks = {"same": "{}", "del": "~~{}~~", "ins": "[{}]"}
    return "".join(marks[s.op].format(s.text) for s in text_diff(before, after))


def test_the_version_diff_works_by_whole_words():
    # Not "~~A~~Sea ~~plant~~levels": the shared space does not split a changed phrase.
    assert _shown("A plant", "Sea levels") == "~~A plant~~[Sea levels]"
    assert _shown("A plant grows", "Sea levels grows") == "~~A plant~~[Sea levels ]grows"
    assert _shown("the big cat", "the cat") == "the ~~big ~~cat"
    assert _shown("the cat", "the big cat") == "the [big ]cat"
    assert _shown("", "Hello world.") == "[Hello world.]"
    assert _shown("planting trees", "plants trees") == "~~planting~~[plants ]trees"


def test_the_diff_keeps_every_character_of_both_texts():
    before, after = "  Sea levels rise\nslowly.", "Sea  levels fall\n quickly."
    segments = text_diff(before, after)
    kept = "".join(s.text for s in segments if s.op != "del")
    assert kept == after
    assert "".join(s.text for s in segments if s.op != "ins").split() == before.split()
