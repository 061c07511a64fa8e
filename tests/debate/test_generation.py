"""Speech generation on the worker: one batched stream per simultaneous round, the phases a
card shows, the token-cap mark, and best-of-n with a real (quickly trained) reward model."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

import core.streams
import llm.generation
from annotations.services import NewItem
from debate.generation import speeches_generate
from debate.kinds import DebatePayload, DebateTurn
from debate.models import Debate, Speech, SpeechCandidate, SpeechStatus
from debate.selectors import best_of_n_reward_model, debate_view
from debate.services import debate_create, debate_prior_submit
from rewards.scoring import reward_model_score
from tests.annotations.factories import make_queue
from tests.factories import DebateFactory, ModelConfigFactory
from tests.helpers import signed_in
from tests.rewards.factories import KIND, RUDE, TOPICS, label_all, reward_model_for, run_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Every event the worker publishes to a debate's group (still really sent)."""
    events: list[dict] = []
    send = core.streams.stream_send

    def recorded(group, event):
        events.append(event)
        send(group, event)

    monkeypatch.setattr(core.streams, "stream_send", recorded)
    return events


@pytest.fixture
def batch_calls(monkeypatch):
    """How many rows each stream_batch call of the real backend was given."""
    calls: list[int] = []
    backend_for = llm.generation.backend_for

    class Counted:
        def __init__(self, backend):
            self.backend = backend

        def stream_batch(self, chats, *, params):
            calls.append(len(chats))
            return self.backend.stream_batch(chats, params=params)

    monkeypatch.setattr(llm.generation, "backend_for", lambda config: Counted(backend_for(config)))
    return calls


def test_a_simultaneous_round_is_one_batched_stream_each_speech_to_its_own_card(
    sent, batch_calls, judge_client_for
):
    debate = DebateFactory(debater_a_config=ModelConfigFactory(max_new_tokens=10, timeout_s=900))
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speech_a, speech_b = debate.speeches.order_by("side")

    speeches_generate(speech_ids=[speech_a.pk, speech_b.pk])

    assert batch_calls == [2]  # both speeches, one generation
    debate.refresh_from_db()
    states = [(s.status, s.error, s.finish_reason) for s in debate.speeches.all()]
    assert debate.status == "awaiting_judge", states
    for speech in (speech_a, speech_b):
        speech.refresh_from_db()
        deltas = [
            e for e in sent if e["type"] == "stream.delta" and e["stream"] == speech.stream_key
        ]
        assert len(deltas) >= 2, "tokens arrive as they are decoded, not in one lump"
        assert "".join(e["text"] for e in deltas).strip() == speech.text
        assert any("progress" in e and e["progress"]["tokens"] > 0 for e in deltas)
        assert speech.status == SpeechStatus.DONE and speech.started_at and speech.generating_at
        assert speech.started_at <= speech.generating_at <= speech.finished_at
        # Ten greedy tokens never finish a speech: cut at the cap, marked, text untouched.
        assert (speech.finish_reason, speech.completion_tokens) == ("length", 10)
        assert "cut at" not in speech.text
    assert speech_a.text != speech_b.text  # each row went to its own card

    page = judge_client_for(debate).get(reverse("debate:detail", args=[debate.pk]))
    assert page.content.decode().count("… [cut at 10-token limit]</p>") == 2


@pytest.fixture
def judge_client_for():
    return lambda debate: signed_in(debate.judge)


def test_each_card_shows_the_phase_its_worker_recorded(judge_client_for):
    debate = DebateFactory()
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speech_a, speech_b = debate.speeches.order_by("side")
    url = reverse("debate:detail", args=[debate.pk])

    def card(speech):
        html = judge_client_for(debate).get(url).content.decode()
        start = html.index(f'id="speech-{speech.pk}"')
        return html[start : html.index("</article>", start)]

    assert 'data-phase="queued"' in card(speech_a) and ">queued<" in card(speech_a)
    now = timezone.now()
    Speech.objects.filter(pk=speech_a.pk).update(
        status=SpeechStatus.STREAMING, started_at=now - timedelta(seconds=7), heartbeat_at=now
    )
    loading = card(speech_a)
    assert 'data-phase="loading"' in loading and ">loading model<" in loading
    # The seconds in this phase (as rendered, then ticked on by the page's script).
    elapsed = float(re.search(r'data-elapsed="([0-9.]+)"', loading).group(1))
    assert 7 <= elapsed < 60
    Speech.objects.filter(pk=speech_a.pk).update(
        generating_at=now - timedelta(seconds=4), heartbeat_at=now, completion_tokens=30,
        text="So far",
    )  # fmt: skip
    generating = card(speech_a)
    assert 'data-phase="generating"' in generating and ">generating<" in generating
    assert ">30 tokens<" in generating and ">7.5 tokens/s<" in generating
    assert 'data-phase="queued"' in card(speech_b)  # its own state, not its sibling's


def test_a_progress_message_renders_the_status_line_for_its_card():
    from llm.models import GenerationState

    state = GenerationState.from_progress("speech-9", {"tokens": 42, "elapsed_s": 3.0})
    html = render_to_string("llm/_state.html", {"state": state, "oob": True})
    assert 'id="speech-9-state"' in html and 'hx-swap-oob="true"' in html
    assert ">42 tokens<" in html and ">14.0 tokens/s<" in html


# --- best-of-n --------------------------------------------------------------------------------
def debate_judgment_reward_model(annotator, n=60):
    """A reward model trained (fast) on a debate-judgment queue whose judges always picked
    the kind, explaining answer over the rude one; active once it passes the gate."""
    items, answers = [], {}
    for i in range(n):
        topic = f"{TOPICS[i % len(TOPICS)]} (case {i})"
        good, bad = KIND[i % len(KIND)].format(t=topic), RUDE[i % len(RUDE)].format(t=topic)
        side = "a" if i % 2 else "b"
        a, b = (good, bad) if side == "a" else (bad, good)
        payload = DebatePayload(question=f"Explain {topic}.", answer_a=a, answer_b=b,
                                turns=[DebateTurn(speaker="Debater A", text=a)])  # fmt: skip
        items.append(NewItem(payload=payload, external_id=f"d{i}"))
        answers[f"d{i}"] = side
    queue = make_queue(members=[annotator], kind="debate_judgment", labels_per_item=1,
                       items=items)  # fmt: skip
    label_all(queue, annotator, answers)
    reward_model = reward_model_for(queue)
    version = run_now(reward_model)
    assert version.status == "active", version.reason
    reward_model.refresh_from_db()
    return reward_model


def test_best_of_n_keeps_the_candidate_the_reward_model_scores_highest_and_hides_the_rest(
    annotator2, researcher
):
    reward_model = debate_judgment_reward_model(annotator2)
    assert best_of_n_reward_model() == reward_model
    sampler = ModelConfigFactory(temperature=1.0, max_new_tokens=12, timeout_s=900)
    debate = DebateFactory(debater_a_config=sampler, best_of_n=3)
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speeches = list(debate.speeches.order_by("side"))

    speeches_generate(speech_ids=[speech.pk for speech in speeches])

    judge_page = signed_in(debate.judge).get(reverse("debate:detail", args=[debate.pk]))
    observer_page = signed_in(researcher).get(reverse("debate:detail", args=[debate.pk]))
    judge_frame = render_to_string("debate/debate.html#live",
                                   {"view": debate_view(debate.pk, "judge")})  # fmt: skip
    for speech in speeches:
        speech.refresh_from_db()
        candidates = list(SpeechCandidate.objects.filter(speech=speech))
        assert [c.index for c in candidates] == [0, 1, 2]
        [chosen] = [c for c in candidates if c.chosen]
        rewards = [c.reward for c in candidates]
        assert chosen.reward == max(rewards)
        assert all(c.reward_version_id == reward_model.active_version_id for c in candidates)
        # The stored rewards are the active version's scores of (question, candidate).
        pairs = [(debate.question, c.text) for c in candidates]
        again = reward_model_score(reward_model_id=reward_model.pk, pairs=pairs)
        assert again.rewards == pytest.approx(rewards, abs=1e-4)
        assert speech.status == SpeechStatus.DONE and speech.text == chosen.text
        for candidate in candidates:
            if candidate.chosen or candidate.text in speech.text or len(candidate.text) < 8:
                continue
            # Never sent to the judge: not the page, not the socket's snapshot.
            escaped = candidate.text.replace("&", "&amp;").replace("<", "&lt;")
            escaped = escaped.replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#x27;")
            assert escaped not in judge_page.content.decode()
            assert escaped not in judge_frame
            assert escaped in observer_page.content.decode()
    assert 'class="candidates"' in observer_page.content.decode()
    assert 'class="candidates"' not in judge_page.content.decode()


def test_best_of_n_is_refused_without_an_active_debate_reward_model(researcher):
    debate = DebateFactory.build(best_of_n=3,
                                 debater_a_config=ModelConfigFactory(temperature=0.9))  # fmt: skip
    debate.judge.save()
    debate.debater_b_config = debate.debater_a_config
    with pytest.raises(ValidationError, match="needs an active reward model"):
        debate_create(debate=debate, created_by=researcher)
    assert not Debate.objects.filter(question=debate.question).exists()


def test_best_of_n_refuses_greedy_debaters(annotator2, researcher):
    debate_judgment_reward_model(annotator2)
    greedy = ModelConfigFactory(name="greedy one")
    debate = DebateFactory.build(best_of_n=2, debater_a_config=greedy)
    debate.judge.save()
    debate.debater_b_config = debate.debater_a_config
    with pytest.raises(ValidationError, match="greedy one has temperature 0"):
        debate_create(debate=debate, created_by=researcher)
