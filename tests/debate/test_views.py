import re

import pytest
from django.test import Client
from django.urls import reverse

from debate.models import Debate, DebateBatch, DebateStatus, JudgeTurn, Speech, SpeechStatus
from debate.services import debate_prior_submit, judge_turn_submit
from tests.debate.research_factories import QuestionBankFactory, imported_rooms
from tests.factories import DebateFactory, ModelConfigFactory
from tests.helpers import signed_in

PASSAGE_MARK = "zanzibar-lighthouse-7731"


@pytest.fixture
def debate(annotator):
    return DebateFactory(judge=annotator, passage=f"Secret passage {PASSAGE_MARK}.")


def test_the_judge_the_observer_and_nobody_else(users, annotator2, debate):
    url = reverse("debate:detail", args=[debate.pk])
    assert signed_in(users["annotator"]).get(url).status_code == 200
    assert signed_in(users["researcher"]).get(url).status_code == 200
    assert signed_in(users["admin"]).get(url).status_code == 200
    assert signed_in(annotator2).get(url).status_code == 404
    assert signed_in(users["outsider"]).get(url).status_code == 404
    assert Client().get(url)["Location"].startswith(reverse("login"))
    assert signed_in(users["annotator"]).post(url).status_code == 405


def test_only_the_judge_posts_a_prior(users, annotator2, debate, enqueued):
    url = reverse("debate:prior", args=[debate.pk])
    data = {"probability_a": "40", "probability_b": "60"}
    assert signed_in(annotator2).post(url, data).status_code == 404
    assert signed_in(users["researcher"]).post(url, data).status_code == 403
    assert signed_in(users["annotator"]).get(url).status_code == 405
    assert not JudgeTurn.objects.exists()
    response = signed_in(users["annotator"]).post(
        url, data | {"message": "Quote the passage, both of you."}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    prior = JudgeTurn.objects.get()
    assert (prior.probability_a, prior.message) == (40, "Quote the passage, both of you.")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"probability_a": "40", "probability_b": "50"}, "must sum to 100%"),
        ({"probability_a": "0", "probability_b": "100"}, "greater than or equal to 1"),
        ({"probability_a": "abc", "probability_b": "50"}, "Enter a whole number"),
        ({"probability_a": "50", "probability_b": "50", "message": "x" * 1001}, "at most"),
        ({"probability_a": "50", "probability_b": "50", "message": "a\x00b"}, "Null characters"),
    ],
)
def test_bad_probabilities_are_refused_and_change_nothing(annotator, debate, data, error):
    response = signed_in(annotator).post(
        reverse("debate:prior", args=[debate.pk]), data, headers={"HX-Request": "true"}
    )
    assert error in response.content.decode()
    assert not JudgeTurn.objects.exists()
    assert Debate.objects.get(pk=debate.pk).status == DebateStatus.WAITING_FOR_PRIOR


def test_ending_needs_a_rationale(annotator, debate, enqueued):
    debate_prior_submit(debate_id=debate.pk, judge=annotator, probability_a=50)
    debate.speeches.update(status=SpeechStatus.DONE, text="said")
    Debate.objects.filter(pk=debate.pk).update(status=DebateStatus.AWAITING_JUDGE)
    response = signed_in(annotator).post(
        reverse("debate:turn", args=[debate.pk]),
        {"probability_a": "70", "probability_b": "30", "action": "end", "rationale": " "},
        headers={"HX-Request": "true"},
    )
    assert "Explain your judgment" in response.content.decode()
    assert Debate.objects.get(pk=debate.pk).status == DebateStatus.AWAITING_JUDGE


def test_a_researcher_creates_a_debate(researcher, annotator):
    config = ModelConfigFactory()
    response = signed_in(researcher).post(
        reverse("debate:new"),
        {
            "question": "Q?", "answer_a": "yes", "answer_b": "no", "correct_side": "a",
            "passage": "text", "protocol": "debate", "turn_order": "simultaneous",
            "rounds_mode": "judge_ends", "max_rounds": "3", "speech_char_limit": "750",
            "quote_char_limit": "250", "debater_a_config": str(config.pk),
            "judge": str(annotator.pk),
        },
    )  # fmt: skip
    debate = Debate.objects.get()
    assert response.status_code == 302
    assert debate.debater_b_config == config  # two instances of one config
    assert debate.created_by == researcher


def test_a_debate_form_with_bad_input_changes_nothing(researcher, annotator2):
    config = ModelConfigFactory()
    response = signed_in(researcher).post(
        reverse("debate:new"),
        {
            "question": "Q?", "answer_a": "same", "answer_b": "same", "protocol": "debate",
            "turn_order": "simultaneous", "rounds_mode": "judge_ends", "max_rounds": "99",
            "speech_char_limit": "100", "quote_char_limit": "500",
            "debater_a_config": str(config.pk), "judge": str(annotator2.pk),
        },
    )  # fmt: skip
    html = response.content.decode()
    assert "Answers 1 and 2 are the same: the answers must differ." in html
    assert "less than or equal to 10" in html
    assert "cannot exceed the speech limit" in html
    assert not Debate.objects.exists()


def test_debate_pages_are_for_the_right_roles(users):
    for name in ("debate:list", "debate:new"):
        assert signed_in(users["annotator"]).get(reverse(name)).status_code == 403
        assert signed_in(users["researcher"]).get(reverse(name)).status_code == 200
    assert signed_in(users["researcher"]).get(reverse("debate:mine")).status_code == 403
    assert signed_in(users["annotator"]).get(reverse("debate:mine")).status_code == 200


def test_the_list_filters(researcher, annotator):
    DebateFactory(judge=annotator, question="about lighthouses")
    DebateFactory(judge=annotator, question="about ships", protocol="consultancy")
    html = signed_in(researcher).get(reverse("debate:list"), {"protocol": "consultancy"})
    assert "about ships" in html.content.decode()
    assert "about lighthouses" not in html.content.decode()
    bad = signed_in(researcher).get(reverse("debate:list"), {"status": "nonsense"})
    assert bad.status_code == 200  # an invalid filter shows everything, not an error page


def test_the_list_pages_counts_and_filters_by_source(researcher, annotator):
    imported_rooms(60)
    bank = QuestionBankFactory()
    batch = DebateBatch.objects.create(name="b", bank=bank, spec={}, created_by=researcher)
    DebateFactory.create_batch(2, judge=annotator, batch=batch, question="a batch debate")
    DebateFactory(judge=annotator, question="a live debate")
    client = signed_in(researcher)

    def rows(response) -> list[str]:
        return re.findall(r"<tr><td>(\d+)</td>", response.content.decode())

    first = client.get(reverse("debate:list"))
    html = first.content.decode()
    assert len(rows(first)) == 50
    assert "<strong>63</strong> debates, 1–50 shown" in html and "page 1 of 2" in html
    # Every filter box is labelled.
    for label in ("Status", "Protocol", "Source", "Question contains"):
        assert re.search(rf"<label>{label} <(select|input)", html), label
    second = client.get(reverse("debate:list"), {"page": "2"})
    assert len(rows(second)) == 13 and not set(rows(first)) & set(rows(second))
    # Out of range: the last page, not an error.
    assert rows(client.get(reverse("debate:list"), {"page": "99"})) == rows(second)

    imported = client.get(reverse("debate:list"), {"source": "imported"})
    assert "<strong>60</strong> debates" in imported.content.decode()
    nyu = client.get(reverse("debate:list"), {"source": "imported:nyu-2023", "page": "2"})
    assert len(rows(nyu)) == 10 and "source=imported%3Anyu-2023&amp;page=1" in nyu.content.decode()
    by_source = {
        source: client.get(reverse("debate:list"), {"source": source}).content.decode()
        for source in ("batch", "live", "imported:arbiter")
    }
    assert (
        by_source["batch"].count("a batch debate") == 2
        and "a live debate" not in by_source["batch"]
    )
    assert "a live debate" in by_source["live"] and "a batch debate" not in by_source["live"]
    assert "<strong>0</strong> debates" in by_source["imported:arbiter"]
    bad = client.get(reverse("debate:list"), {"source": "nowhere"}).content.decode()
    assert "<strong>63</strong> debates" in bad and "Source: Select a valid choice" in bad


def test_imported_rooms_show_their_judge_score_and_whether_the_judge_was_right(researcher):
    right, wrong = imported_rooms(2)  # 10 % on A with A correct; 11 % on A with B correct
    client = signed_in(researcher)
    listed = client.get(reverse("debate:list")).content.decode()
    # log2(0.10) − 0.05 × 0 and log2(0.89) − 0.05 × 1
    assert "-3.322" in listed and "-0.218" in listed
    assert listed.count('verdict-result wrong">wrong') == 1
    assert listed.count('verdict-result correct">correct') == 1
    panel = client.get(reverse("debate:detail", args=[right.pk])).content.decode()
    assert 'verdict-result wrong">wrong</strong> <span class="muted small">(10% on' in panel
    assert "score <strong>-3.322</strong>" in panel
    panel = client.get(reverse("debate:detail", args=[wrong.pk])).content.decode()
    assert 'verdict-result correct">correct' in panel and "score <strong>-0.218</strong>" in panel


def test_a_quote_given_six_times_is_listed_once_with_its_count(researcher, annotator):
    debate = DebateFactory(judge=annotator, status=DebateStatus.AWAITING_JUDGE, current_round=1)
    quote = {"text": "painted his door green", "verified": True}
    Speech.objects.create(debate=debate, round=1, side="a", status=SpeechStatus.DONE,
                          text="x", quotes=[quote] * 6)  # fmt: skip
    unverified = {"text": "stayed red", "verified": False}
    Speech.objects.create(debate=debate, round=1, side="b", status=SpeechStatus.DONE,
                          text="y", quotes=[quote, unverified])  # fmt: skip
    for user in (annotator, researcher):
        html = signed_in(user).get(reverse("debate:detail", args=[debate.pk])).content.decode()
        quotes = html[html.index('id="quotes"') :]
        assert quotes.count("painted his door green") == 2  # once for A (× 6), once for B
        assert '<span class="side-tag">A</span> painted his door green <span' in quotes
        assert "× 6</span>" in quotes and "× 1" not in quotes and "stayed red" not in quotes


def test_prompts_reject_broken_placeholders(researcher):
    url = reverse("debate:prompts", args=["debate"])
    response = signed_in(researcher).post(
        url, {"debater_system": "Hi {question", "debater_turn": "x"}
    )
    assert "Broken placeholder" in response.content.decode()
    assert signed_in(researcher).get(reverse("debate:prompts", args=["nope"])).status_code == 404


def _normalised(html: str, debate_id: int) -> str:
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'"X-CSRFToken": "[^"]+"', "", html)
    html = re.sub(r"speech-\d+", "speech-N", html)
    # How long a generation has been queued is the clock's, not the debate's.
    html = re.sub(r'data-elapsed="[\d.]+"', "", html)
    html = re.sub(r'<span class="gen-elapsed">\d+ s</span>', "", html)
    return html.replace(f"/{debate_id}/", "/ID/").replace(f"Debate {debate_id}", "Debate ID")


def test_the_judge_page_carries_no_trace_of_the_passage_or_the_answer(annotator, enqueued):
    """Two debates that differ only in the hidden passage and the correct answer must look
    byte-for-byte the same to their judge, at every step before the judgment."""
    twins = [
        DebateFactory(judge=annotator, passage=f"{PASSAGE_MARK} one", correct_side="a"),
        DebateFactory(judge=annotator, passage="another story entirely", correct_side="b"),
    ]
    client = signed_in(annotator)

    def pages() -> list[str]:
        return [
            _normalised(client.get(reverse("debate:detail", args=[d.pk])).content.decode(), d.pk)
            for d in twins
        ]

    def posts(name: str, data: dict[str, str]) -> list[str]:
        """The fragments an htmx POST of the judge's form returns, for each twin."""
        return [
            _normalised(client.post(reverse(f"debate:{name}", args=[d.pk]), data,
                                    headers={"HX-Request": "true"}).content.decode(), d.pk)
            for d in twins
        ]  # fmt: skip

    first, second = pages()
    assert first == second and PASSAGE_MARK not in first
    first, second = posts("prior", {"probability_a": "60", "probability_b": "40"})
    assert first == second and PASSAGE_MARK not in first and "A 60%" in first
    for debate in twins:
        debate.speeches.update(status=SpeechStatus.DONE, text="<quote>one</quote> same speech",
                               quotes=[{"text": "one", "verified": True}])  # fmt: skip
        Debate.objects.filter(pk=debate.pk).update(status=DebateStatus.AWAITING_JUDGE)
    first, second = pages()
    assert first == second and PASSAGE_MARK not in first
    continued = {"probability_a": "55", "probability_b": "45", "action": "continue"}
    first, second = posts("turn", continued)
    assert first == second and PASSAGE_MARK not in first and "A 55%" in first

    _round_done(twins[0])
    judge_turn_submit(
        debate_id=twins[0].pk, judge=annotator, probability_a=70, action="end", rationale="r"
    )
    after = client.get(reverse("debate:detail", args=[twins[0].pk])).content.decode()
    assert "Correct answer: <strong>A</strong>" in after  # revealed only now
    assert f'{PASSAGE_MARK} <mark class="quote verified side-a side-b"' in after


def test_observers_see_the_passage_and_answer(researcher, debate):
    html = signed_in(researcher).get(reverse("debate:detail", args=[debate.pk])).content.decode()
    assert PASSAGE_MARK in html
    assert "correct answer (A)" in html


def _round_done(debate, text: str = "said") -> None:
    debate.speeches.filter(round=Debate.objects.get(pk=debate.pk).current_round).update(
        status=SpeechStatus.DONE, text=text
    )
    Debate.objects.filter(pk=debate.pk).update(status=DebateStatus.AWAITING_JUDGE)


def _form_values(html: str) -> tuple[str, str]:
    a = re.search(r'name="probability_a"[^>]* value="(\d*)"', html)
    b = re.search(r'name="probability_b"[^>]* value="(\d*)"', html)
    assert a and b, "no probability inputs"
    return a.group(1), b.group(1)


def test_each_judge_turn_starts_from_the_judges_last_probabilities(annotator, debate, enqueued):
    client = signed_in(annotator)
    url = reverse("debate:detail", args=[debate.pk])
    assert _form_values(client.get(url).content.decode()) == ("50", "50")  # before the prior
    client.post(reverse("debate:prior", args=[debate.pk]), {"probability_a": "60",
                "probability_b": "40"})  # fmt: skip
    _round_done(debate)
    assert _form_values(client.get(url).content.decode()) == ("60", "40")
    client.post(reverse("debate:turn", args=[debate.pk]), {"probability_a": "25",
                "probability_b": "75", "action": "continue", "message": "B, why?"})  # fmt: skip
    _round_done(debate)
    # The final judgment's form too.
    assert _form_values(client.get(url).content.decode()) == ("25", "75")
    # A refused submission shows what the judge typed, not the carried-over values.
    refused = client.post(
        reverse("debate:turn", args=[debate.pk]),
        {"probability_a": "90", "probability_b": "20", "action": "end", "rationale": "r"},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert _form_values(refused) == ("90", "20") and "must sum to 100%" in refused


def test_the_transcript_shows_the_prior_and_every_judge_turn_in_order(
    annotator, researcher, debate, enqueued
):
    debate_prior_submit(debate_id=debate.pk, judge=annotator, probability_a=60)
    _round_done(debate)
    judge_turn_submit(debate_id=debate.pk, judge=annotator, probability_a=35,
                      action="continue", message="Debater B: <b>which</b> shed?")  # fmt: skip
    _round_done(debate)
    for user in (annotator, researcher):
        html = signed_in(user).get(reverse("debate:detail", args=[debate.pk])).content.decode()
        start = html.index('id="transcript"')
        transcript = html[start : html.index("</section>", start)]
        turns = re.findall(r'<div class="judge-turn[^"]*">.*?</div>', transcript, re.DOTALL)
        assert [re.sub(r"<[^>]+>", "", turn) for turn in turns] == [
            "Judge prior A 60% · B 40%",
            "Judge after round 1 A 35% · B 65%Debater B: &lt;b&gt;which&lt;/b&gt; shed?",
        ]
        assert transcript.index("prior") < transcript.index("Round 1") < transcript.index(
            "after round 1") < transcript.index("Round 2")  # fmt: skip
        # The chart: one point per judge turn for each answer, and its labels.
        chart = html[html.index('class="belief-chart"') :]
        chart = chart[: chart.index("</figure>")]
        assert chart.count('<circle class="side-a"') == 2
        assert "<title>Prior: A 60% · B 40%</title>" in chart
        assert "<title>After round 1: A 35% · B 65%</title>" in chart
        who = "Your" if user == annotator else "The judge's"
        assert f"{who} probabilities over the debate" in chart


def test_after_judging_the_passage_shows_with_its_quotes_marked_and_a_next_debate(
    annotator, debate, enqueued
):
    waiting = DebateFactory(judge=annotator)
    DebateFactory(judge=annotator, status=DebateStatus.JUDGED)  # not waiting
    debate_prior_submit(debate_id=debate.pk, judge=annotator, probability_a=50)
    _round_done(debate, text="<quote>Secret passage</quote> says so")
    debate.speeches.update(quotes=[{"text": "Secret passage", "verified": True}])
    client = signed_in(annotator)
    response = client.post(
        reverse("debate:turn", args=[debate.pk]),
        {"probability_a": "70", "probability_b": "30", "action": "end", "rationale": "A"},
        headers={"HX-Request": "true"},
    ).content.decode()
    page = client.get(reverse("debate:detail", args=[debate.pk])).content.decode()
    for html in (response, page):
        assert (
            '<mark class="quote verified side-a side-b" title="quoted by A and B">'
            f"Secret passage</mark> {PASSAGE_MARK}."
        ) in html
        assert f'href="{reverse("debate:detail", args=[waiting.pk])}">Next debate</a>' in html
    assert 'id="reveal" hx-swap-oob="true" class="card reveal"' in response

    Debate.objects.filter(pk=waiting.pk).update(status=DebateStatus.JUDGED)
    page = client.get(reverse("debate:detail", args=[debate.pk])).content.decode()
    assert "No more debates waiting for you." in page and "Next debate" not in page


def test_observers_read_about_the_judge_not_about_themselves(
    annotator, researcher, debate, enqueued
):
    debate_prior_submit(debate_id=debate.pk, judge=annotator, probability_a=50)
    _round_done(debate)
    judge_turn_submit(
        debate_id=debate.pk, judge=annotator, probability_a=70, action="end", rationale="r"
    )
    observed = signed_in(researcher).get(reverse("debate:detail", args=[debate.pk]))
    html = observed.content.decode()
    assert "The judge's final probabilities: A 70% · B 30%" in html
    assert not re.search(r"\b(Your|your|you)\b", re.sub(r"<[^>]+>", " ", html.split("<main")[1]))
    assert "Next debate" not in html and "No more debates waiting" not in html
    judged = signed_in(annotator).get(reverse("debate:detail", args=[debate.pk])).content.decode()
    assert "Your final probabilities: A 70% · B 30%" in judged


def test_counts_read_as_words(annotator, debate, enqueued):
    one = DebateFactory(judge=annotator, max_rounds=1)
    client = signed_in(annotator)
    assert "up to 1 round ·" in client.get(reverse("debate:detail", args=[one.pk])).content.decode()
    assert (
        "up to 2 rounds ·"
        in client.get(reverse("debate:detail", args=[debate.pk])).content.decode()
    )
    debate_prior_submit(debate_id=debate.pk, judge=annotator, probability_a=50)
    _round_done(debate)
    judge_turn_submit(debate_id=debate.pk, judge=annotator, probability_a=60, action="continue")
    _round_done(debate)
    judge_turn_submit(debate_id=debate.pk, judge=annotator, probability_a=70, action="end",
                      rationale="r")  # fmt: skip
    html = client.get(reverse("debate:detail", args=[debate.pk])).content.decode()
    assert "0.05 × 1 judge turn</span>" in html


def test_the_admin_speaks_of_speeches_and_debate_batches(admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    html = signed_in(admin_user).get("/admin/").content.decode()
    assert "Speeches" in html and "Debate batches" in html
    assert "Speechs" not in html and "batchs" not in html


def test_best_of_n_without_a_debate_reward_model_is_refused_in_the_form(researcher, annotator):
    config = ModelConfigFactory(temperature=0.8)
    response = signed_in(researcher).post(
        reverse("debate:new"),
        {
            "question": "Q?", "answer_a": "yes", "answer_b": "no", "correct_side": "a",
            "passage": "text", "protocol": "debate", "turn_order": "simultaneous",
            "rounds_mode": "judge_ends", "max_rounds": "3", "speech_char_limit": "750",
            "quote_char_limit": "250", "debater_a_config": str(config.pk), "best_of_n": "3",
            "judge": str(annotator.pk),
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert "needs an active reward model trained on a debate-judgment queue" in (
        response.content.decode()
    )
    assert not Debate.objects.exists()
