import pytest

from debate.quotes import normalise, passage_html, quotes_verify, speech_html, speech_limit

PASSAGE = "The keeper painted his door green every spring, because the salt wind peeled it."


@pytest.mark.parametrize(
    "quoted",
    [
        "painted his door green",  # exact
        "Painted  his\ndoor GREEN",  # case and whitespace
        "door green every spring because the salt wind",  # punctuation dropped
        "the salt-wind peeled it!",  # punctuation changed
    ],
)
def test_quotes_matching_the_passage_are_verified(quoted):
    [quote] = quotes_verify(f"He <quote>{quoted}</quote>.", passage=PASSAGE, quote_char_limit=250)
    assert quote.verified and not quote.over_limit


@pytest.mark.parametrize(
    "quoted", ["painted his door red", "door green every autumn", "", "   ", "green door"]
)
def test_fabricated_or_empty_quotes_are_unverified(quoted):
    [quote] = quotes_verify(f"<quote>{quoted}</quote>", passage=PASSAGE, quote_char_limit=250)
    assert not quote.verified


def test_quote_characters_count_toward_the_limit():
    text = "<quote>painted his door green</quote> and <quote>the salt wind peeled it</quote>"
    first, second = quotes_verify(text, passage=PASSAGE, quote_char_limit=30)
    assert first.verified
    assert second.over_limit and not second.verified  # 22 + 24 characters > 30


def test_no_passage_verifies_nothing():
    [quote] = quotes_verify("<quote>anything</quote>", passage="", quote_char_limit=250)
    assert not quote.verified


def test_normalise_keeps_words_and_order():
    assert normalise("  Don’t—STOP, now! ") == normalise("don t stop now")
    assert normalise("a b") != normalise("b a")


def test_over_long_speeches_are_cut_and_marked():
    text, cut = speech_limit("x" * 800, char_limit=750)
    assert (len(text), cut) == (750, True)
    assert speech_limit("short", char_limit=750) == ("short", False)
    assert "[cut]" in speech_html(text, [], truncated=True)


def test_speech_html_escapes_model_output_everywhere():
    text = "<script>alert(1)</script> says <quote>door <b>green</b></quote> & more"
    quotes = [q.as_json() for q in quotes_verify(text, passage=PASSAGE, quote_char_limit=250)]
    html = speech_html(text, quotes, truncated=False)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<q class="quote unverified" title="not found in the passage">door &lt;b&gt;' in html
    assert "&amp; more" in html


def test_verified_and_unverified_quotes_look_different():
    text = "<quote>painted his door green</quote> <quote>a purple door</quote>"
    quotes = [q.as_json() for q in quotes_verify(text, passage=PASSAGE, quote_char_limit=250)]
    html = speech_html(text, quotes, truncated=False)
    assert '<q class="quote verified"' in html and '<q class="quote unverified"' in html


def test_the_passage_marks_each_verified_quote_where_it_was_found():
    # Verified despite case, spacing and punctuation: the mark covers the passage's own words.
    html = passage_html(PASSAGE, [("a", "Painted  his\ndoor GREEN"), ("b", "the salt-wind")])
    assert html == (
        'The keeper <mark class="quote verified side-a" title="quoted by A">painted his door '
        "green</mark> every spring, because "
        '<mark class="quote verified side-b" title="quoted by B">the salt wind</mark> peeled it.'
    )


def test_overlapping_quotes_of_both_sides_are_marked_as_both():
    html = passage_html(PASSAGE, [("a", "his door green"), ("b", "door green every")])
    assert '<mark class="quote verified side-a" title="quoted by A">his </mark>' in html
    assert (
        '<mark class="quote verified side-a side-b" title="quoted by A and B">door green</mark>'
    ) in html
    assert '<mark class="quote verified side-b" title="quoted by B"> every</mark>' in html


def test_the_passage_is_escaped_and_a_quote_it_lacks_marks_nothing():
    passage = 'He wrote <script>alert("x")</script> & left. Ünïcode ﬁne.'
    html = passage_html(passage, [("a", "not in it"), ("b", "ÜNÏCODE fine")])
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; left" in html
    assert html.count("<mark") == 1
    assert '<mark class="quote verified side-b" title="quoted by B">Ünïcode ﬁne</mark>' in html
    assert passage_html("", [("a", "x")]) == ""


def test_an_imported_speech_is_verified_by_arbiter_not_by_its_file():
    from debate.quotes import Quote, quotes_recheck

    passage = "The keeper painted his door green every spring."
    text = "A: <quote>door green</quote> and <quote>the keeper hated green</quote>"
    given = [
        Quote(text="door green", verified=False, span=(4, 6), span_clipped=True),
        Quote(text="the keeper hated green", verified=True, span=(9, 3)),
    ]
    nyu = quotes_recheck(text, passage=passage, quote_char_limit=None, given=given)
    assert [(q.verified, q.span, q.span_clipped) for q in nyu] == [
        (True, (4, 6), True), (False, (9, 3), False),
    ]  # fmt: skip
    # With a budget (an Arbiter record) it is counted as live: 10 characters fit, 22 more not.
    arbiter = quotes_recheck(text, passage=passage, quote_char_limit=10, given=given)
    assert [(q.verified, q.over_limit) for q in arbiter] == [(True, False), (False, True)]
    # Without one, a file's over-limit mark can only unverify.
    over = [Quote(text="door green", verified=True, over_limit=True)]
    assert not quotes_recheck(text, passage=passage, quote_char_limit=None, given=over)[0].verified
