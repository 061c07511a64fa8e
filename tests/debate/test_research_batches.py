from unittest import mock

import pytest
from django.core.exceptions import ValidationError

import llm.generation
from debate.models import BatchStatus, Debate, DebateBatch, Speech, Verdict
from debate.records import BatchSpec
from debate.research import batches
from debate.research.analytics import Filters, analytics_compute
from debate.research.batches import batch_create, batch_run, judge_probability
from llm.backends.base import Completion, Usage
from llm.models import ModelConfig
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.factories import DebateFactory, ModelConfigFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch_sent(monkeypatch):
    from debate.tasks import debate_batch_run_task

    sent: list[int] = []
    monkeypatch.setattr(debate_batch_run_task, "delay", sent.append)
    return sent


@pytest.fixture
def fake_model(monkeypatch):
    """Every generate_batch call: the config, and the exact prompts the model received."""
    calls: list[tuple[str, list]] = []

    class Recorded:
        def __init__(self, config):
            self.config = config

        def generate_batch(self, prompts, *, params):
            return generate(self.config, prompts, params)

    def generate(config, prompts, params):
        calls.append((config.name, list(prompts)))
        judging = "Probability A" in prompts[0][-1]["content"]
        text = (
            "Probability A: 70. B quoted nothing."
            if judging
            else ("Read this: <quote>green ink</quote> & <script>x</script>")
        )
        usage = Usage(prompt_tokens=10, completion_tokens=5, time_to_first_token_s=None,
                      total_s=0.1)  # fmt: skip
        return [Completion(text=text, usage=usage, finish_reason="stop") for _ in prompts]

    monkeypatch.setattr(llm.generation, "backend_for", Recorded)
    return calls


def _batch(researcher, count=3, **spec):
    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(count, bank=bank)
    a, b = ModelConfigFactory(), ModelConfigFactory()
    judge = ModelConfig.objects.filter(name="judge-llm").first() or ModelConfigFactory(
        name="judge-llm"
    )
    spec = BatchSpec(debater_a_config_id=a.pk, debater_b_config_id=b.pk, count=count,
                     rounds=1, **spec)  # fmt: skip
    return batch_create(name="b1", bank=bank, spec=spec, created_by=researcher,
                        llm_judge_config=judge)  # fmt: skip


def test_a_batch_speaks_in_batched_calls_and_the_llm_judge_never_sees_the_passage(
    researcher, batch_sent, fake_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        batch = _batch(researcher)
    assert batch_sent == [batch.pk]
    batch_run(batch_id=batch.pk)

    batch.refresh_from_db()
    assert batch.status == BatchStatus.DONE and batch.steps_done == batch.steps_total == 9
    # Six speeches (3 debates × 2 sides) in one call per debater model, then one judge call.
    assert [(name, len(prompts)) for name, prompts in fake_model] == [
        (fake_model[0][0], 3),
        (fake_model[1][0], 3),
        ("judge-llm", 3),
    ]
    assert Speech.objects.filter(status="done", quotes__0__verified=True).count() == 6
    debates = list(Debate.objects.filter(batch=batch))
    assert {d.status for d in debates} == {"finished"}
    judge_bytes = str(fake_model[2][1])
    for debate in debates:
        assert debate.passage.split()[-1].rstrip(".") not in judge_bytes  # the passage's secret
        assert debate.question in judge_bytes
    assert "passage-secret" not in judge_bytes
    # What the judge reads cannot depend on the passage or on which answer is correct.
    for debate in debates:
        sent = batches.judge_messages(debate, batch.judge_prompt)
        assert sent in fake_model[2][1]
        debate.passage, debate.correct_side = (
            "another passage",
            "b" if debate.correct_side == "a" else "a",
        )
        assert batches.judge_messages(debate, batch.judge_prompt) == sent
    assert "<v_quote>green ink</v_quote>" in judge_bytes
    assert set(Verdict.objects.filter(kind="llm").values_list("probability_a", flat=True)) == {70}

    # A second delivery of the task finds nothing queued.
    batch_run(batch_id=batch.pk)
    assert len(fake_model) == 3

    stats = analytics_compute(Filters(batch_id=batch.pk, group_by="judge"))
    assert [(g.name, g.accuracy.n) for g in stats.groups] == [("LLM judge: judge-llm", 3)]


def test_a_batch_whose_worker_died_resumes_where_it_stopped(
    researcher, batch_sent, fake_model, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from debate.generation import speeches_requeue_stale

    with django_capture_on_commit_callbacks(execute=True):
        batch = _batch(researcher)
    # What a worker SIGKILLed mid-round leaves: claimed, silent for 11 minutes, round 1 made
    # with two speeches done, one streaming and three not started.
    silent_since = timezone.now() - timedelta(minutes=11)
    DebateBatch.objects.filter(pk=batch.pk).update(
        status=BatchStatus.RUNNING, attempt=1, heartbeat_at=silent_since, steps_done=2
    )
    debates = list(batch.debates.order_by("pk"))
    for index, (debate, side) in enumerate((d, s) for d in debates for s in "ab"):
        status = ["done", "done", "streaming"][index] if index < 3 else "queued"
        text = "kept" if status == "done" else ""
        Speech.objects.create(debate=debate, round=1, side=side, status=status, attempt=1,
                              text=text, heartbeat_at=silent_since)  # fmt: skip
    assert speeches_requeue_stale() == 0  # a batch's speeches are the batch run's to restart
    assert batches.batches_requeue_stale(now=silent_since + timedelta(minutes=9)) == 0

    with django_capture_on_commit_callbacks(execute=True):
        assert batches.batches_requeue_stale() == 1
    assert batch_sent == [batch.pk, batch.pk]
    batch_run(batch_id=batch.pk)

    batch.refresh_from_db()
    assert (batch.status, batch.attempt) == (BatchStatus.DONE, 2)
    assert batch.steps_done == batch.steps_total == 9
    # Only the four unfinished speeches were generated again; nothing was made twice.
    assert sum(len(prompts) for name, prompts in fake_model if name != "judge-llm") == 4
    assert Speech.objects.filter(debate__batch=batch).count() == 6
    assert Speech.objects.filter(debate__batch=batch, text="kept").count() == 2
    assert Verdict.objects.filter(kind="llm", debate__batch=batch).count() == 3
    # The run it replaced stops at its next heartbeat.
    with pytest.raises(batches.BatchSuperseded):
        batches._batch_alive(DebateBatch.objects.filter(pk=batch.pk, attempt=1))


def test_a_consultancy_batch_draws_a_consultant_and_sequential_debates_speak_in_two_waves(
    researcher, batch_sent, fake_model
):
    batch = _batch(researcher, protocol="consultancy")
    batch_run(batch_id=batch.pk)
    assert Speech.objects.filter(debate__batch=batch).count() == 3
    assert all(d.consultant_side in "ab" and d.consultant_side for d in batch.debates.all())

    fake_model.clear()
    sequential = _batch(researcher, count=2, turn_order="sequential")
    batch_run(batch_id=sequential.pk)
    assert [len(prompts) for _, prompts in fake_model[:2]] == [2, 2]
    # B speaks second and hears A's speech.
    assert "Read this" in fake_model[1][1][0][-1]["content"]


def test_a_batch_needs_enough_questions_and_a_judge(researcher, batch_sent):
    with pytest.raises(ValidationError, match="Only 0 questions"):
        _batch(researcher, count=3, question_filter="no such text")
    config = ModelConfigFactory()
    with pytest.raises(ValidationError, match="at least one judge"):
        batch_create(name="x", bank=QuestionBankFactory(), created_by=researcher,
                     spec=BatchSpec(debater_a_config_id=config.pk, count=1))  # fmt: skip
    assert not DebateBatch.objects.filter(name="x").exists()


def test_a_judge_that_names_no_probability_is_read_from_sampled_votes(
    researcher, batch_sent, monkeypatch
):
    """6 votes for A and 2 for B read as (6 + 1) / (8 + 2) = 70 %; replies that are not A or B
    are no votes, and the note says how many of the 8 were usable; the vote prompts hold the
    transcript and never the passage; a judge that cannot even vote is recorded as 50 %."""
    calls: list[tuple[list, object]] = []
    letters = iter(
        ["A", " a.", "A", "B", "A because", "b", "A", "A"]
        + ["A", "maybe", "A", "B", "?", "A", "", "nope"]
        + ["maybe"] * 8
    )

    def generate(config, prompts, params):
        calls.append((prompts, params))
        voting = batches.JUDGE_VOTE_QUESTION in prompts[0][-1]["content"]
        text = (lambda: next(letters)) if voting else (lambda: "Read <quote>green ink</quote>")
        if "Probability A" in prompts[0][-1]["content"]:
            text = lambda: "I am not sure."  # noqa: E731
        usage = Usage(prompt_tokens=1, completion_tokens=1, time_to_first_token_s=None, total_s=0)
        return [Completion(text=text(), usage=usage, finish_reason="stop") for _ in prompts]

    monkeypatch.setattr(batches, "_generate", generate)
    batch = _batch(researcher, count=3)
    batch_run(batch_id=batch.pk)

    votes = [(prompts, params) for prompts, params in calls if len(prompts) == batches.JUDGE_VOTES]
    assert len(votes) == 3 and all(params.temperature == 1.0 for _, params in votes)
    for debate in batch.debates.all():
        assert debate.passage.split()[-1].rstrip(".") not in str(votes)
    verdicts = list(Verdict.objects.filter(kind="llm").order_by("debate_id"))
    assert [v.probability_a for v in verdicts] == [70, 67, 50]
    assert "70 % from 8 usable of 8 sampled votes (6 A, 2 B)" in verdicts[0].rationale
    # (3 + 1) / (4 + 2): four replies were no vote.
    assert "67 % from 4 usable of 8 sampled votes (3 A, 1 B)" in verdicts[1].rationale
    assert verdicts[2].rationale.endswith(batches.NO_PROBABILITY)


def test_the_bundled_model_casts_votes_a_judge_can_read():
    """The real bundled model, asked for one letter about a short transcript, answers A or B
    at least once in JUDGE_VOTES samples (the fallback is worth its generations)."""
    debate = DebateFactory()
    Speech.objects.create(
        debate=debate,
        round=1,
        side="a",
        status="done",
        text="The door is green: <quote>painted his door green</quote>.",
    )
    Speech.objects.create(debate=debate, round=1, side="b", status="done",
                          text="The door is red, like the shed beside it.")  # fmt: skip
    # judge_votes samples unseeded (as it must against a server); here the draw is fixed, so
    # the test does not depend on a lucky one.
    import torch

    def seeded(seed: int | None) -> torch.Generator:
        return torch.Generator().manual_seed(0 if seed is None else seed)

    with mock.patch("llm.backends.transformers_backend._make_generator", seeded):
        for_a, for_b = batches.judge_votes(debate.debater_a_config, [debate])[debate.pk]
    assert for_a + for_b >= 1


COPIED = (
    "The keeper painted the door green every spring, because 90 boats could then see it "
    "through the fog of the channel."
)


def test_a_judge_that_copies_a_speech_has_the_copy_cut_out_and_no_probability_read_from_it(
    researcher, batch_sent, monkeypatch
):
    """The bundled judge gave back a debater's speech as its rationale: the stored rationale
    marks the copied run instead, and the 90 in the speech is not taken for the judge's
    probability (the votes decide)."""

    class Model:
        def __init__(self, config):
            pass

        def generate_batch(self, prompts, *, params):
            content = prompts[0][-1]["content"]
            if batches.JUDGE_VOTE_QUESTION in content:
                text = "B"
            elif "Probability A" in content:
                text = f"{COPIED.upper()} So A wins."
            else:
                text = f"<quote>{COPIED}</quote>"
            usage = Usage(prompt_tokens=1, completion_tokens=1, time_to_first_token_s=None,
                          total_s=0)  # fmt: skip
            return [Completion(text=text, usage=usage, finish_reason="stop") for _ in prompts]

    monkeypatch.setattr(llm.generation, "backend_for", Model)
    batch = _batch(researcher, count=1)
    batch_run(batch_id=batch.pk)
    verdict = Verdict.objects.get(kind="llm", debate__batch=batch)
    assert verdict.probability_a == 10  # (0 + 1) / (8 + 2): eight votes for B
    assert verdict.rationale.startswith("[21 words copied from a speech removed]. So A wins.")
    assert "KEEPER" not in verdict.rationale and "0 usable" not in verdict.rationale


@pytest.mark.parametrize(
    ("reply", "copied"),
    [
        # 11 words in a row of the speech: the judge's own sentence may use them.
        ("I think the keeper painted the door green every spring, because boats", []),
        # 12: a copy, whatever the case, punctuation or quote markup.
        ("Yes: THE KEEPER painted the <v_quote>door green every spring</v_quote> because 90 "
         "boats could. Right.", ["THE KEEPER painted the <v_quote>door green every "
                                 "spring</v_quote> because 90 boats could"]),
        ("", []),
    ],
)  # fmt: skip
def test_a_copied_run_is_twelve_words_shared_with_a_speech(reply, copied):
    spans = batches.copied_runs(reply, [f"<quote>{COPIED}</quote>", "Another speech."])
    assert [reply[start:end] for start, end in spans] == copied


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("Probability A: 85. A quoted.", 85), ("I think 30%", 30), ("no idea", None),
     ("Probability A: 100", 99), ("probability of A = 0", 1)],
)  # fmt: skip
def test_the_judge_probability_is_read_from_the_reply(reply, expected):
    assert judge_probability(reply) == expected


def test_a_batch_for_human_judges_fills_their_queue_and_agreement_compares_the_judges(
    researcher, batch_sent, fake_model
):
    from annotations.models import Item
    from tests.annotations.factories import QueueFactory

    queue = QueueFactory(kind="debate_judgment", labels_per_item=1)
    batch = _batch(researcher, count=2, human_queue_id=queue.pk)
    batch_run(batch_id=batch.pk)
    assert Item.objects.filter(queue=queue).count() == 2

    # A human verdict on one debate (as the queue's label would give): agreement with the LLM.
    debate = batch.debates.order_by("pk").first()
    Verdict.objects.create(debate=debate, kind="human", judge_name="annotator1",
                           probability_a=80)  # fmt: skip
    stats = analytics_compute(Filters(batch_id=batch.pk, group_by="judge"))
    assert (stats.agreement.same_answer.k, stats.agreement.same_answer.n) == (1, 1)
    assert stats.agreement.mean_abs_difference == pytest.approx(0.1)
    assert {g.name for g in stats.groups} == {"Human judge", "LLM judge: judge-llm"}
    assert analytics_compute(Filters(batch_id=batch.pk, source="nyu-2023")).verdicts == 0
    assert analytics_compute(Filters(batch_id=batch.pk, judge_kind="llm")).verdicts == 2


def test_a_batch_whose_human_queue_is_not_a_debate_judgment_queue_is_refused_at_once(
    researcher, batch_sent, client
):
    from annotations.kinds import QueueKind
    from tests.annotations.factories import QueueFactory
    from tests.helpers import Api, signed_in

    pairwise_queue = QueueFactory(kind=QueueKind.PAIRWISE)
    with pytest.raises(ValidationError, match="must be a debate-judgment queue"):
        _batch(researcher, human_queue_id=pairwise_queue.pk)

    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(2, bank=bank)
    config = ModelConfigFactory()
    spec = {"debater_a_config_id": config.pk, "count": 2, "human_queue_id": pairwise_queue.pk}
    body = {"name": "api batch", "bank_id": bank.pk, "spec": spec}
    response = Api(researcher).post("/debates/batches/", body)
    assert response.status_code == 400
    assert "must be a debate-judgment queue" in response.json()["detail"]

    form = {"name": "n", "bank": bank.pk, "count": 2, "protocol": "debate",
            "turn_order": "simultaneous", "rounds": 1, "speech_char_limit": 300,
            "quote_char_limit": 100, "max_new_tokens": 8, "debater_a_config": config.pk,
            "judge_max_new_tokens": 8, "judge_prompt": "{question}",
            "human_queue": pairwise_queue.pk}  # fmt: skip
    page = signed_in(researcher).post("/debates/batches/new/", form).content.decode()
    assert "The human queue must be a debate-judgment queue" in page
    assert not DebateBatch.objects.exists() and batch_sent == []
