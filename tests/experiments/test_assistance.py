from __future__ import annotations

import pytest

from annotations.kinds import item_kind
from experiments.assistance import assistance_job_run
from experiments.models import AssistanceJob, AssistanceText, JobStatus
from experiments.prompting import suggestion_parse
from experiments.services import arm_change
from llm.backends.base import GenerationError
from tests.experiments.conftest import make_experiment

pytestmark = pytest.mark.django_db


def run(arm, batch=8):
    job = AssistanceJob.objects.create(arm=arm, items_total=arm.arm_items.count())
    assistance_job_run(job_id=job.pk, batch=batch)
    job.refresh_from_db()
    return job


def test_a_job_generates_every_item_in_batches_and_caches_them(fake_backend):
    arm = make_experiment().arms.get(position=1)
    job = run(arm, batch=3)
    assert job.status == JobStatus.DONE and (job.items_done, job.percent) == (4, 100)
    assert fake_backend.batches == [3, 1]
    assert AssistanceText.objects.filter(prompt_version=arm.prompt_version).count() == 4
    # Cached per (item, config, prompt version): a second job generates nothing.
    assert run(arm).status == JobStatus.DONE and fake_backend.batches == [3, 1]
    # A new prompt is a new version: everything again.
    arm_change(arm=arm, prompt="Critique this: {item}")
    arm.refresh_from_db()
    run(arm)
    assert fake_backend.batches == [3, 1, 4]


def test_a_second_delivery_of_a_job_does_nothing(fake_backend):
    arm = make_experiment().arms.get(position=1)
    job = run(arm)
    assistance_job_run(job_id=job.pk)
    assert fake_backend.batches == [4]


def test_a_generation_error_fails_the_job_with_its_message(monkeypatch):
    class Broken:
        def generate_batch(self, chats, *, params):
            raise GenerationError("server down", config_name="x")

    monkeypatch.setattr("experiments.assistance.backend_for", lambda config: Broken())
    job = run(make_experiment().arms.get(position=1))
    assert job.status == JobStatus.FAILED and job.error == "server down"


def test_the_prompt_carries_the_item(fake_backend, monkeypatch):
    seen = []
    original = fake_backend.generate_batch

    def spy(chats, *, params):
        seen.extend(chats)
        return original(chats, params=params)

    monkeypatch.setattr(fake_backend, "generate_batch", spy)
    run(make_experiment().arms.get(position=1))
    assert "Question: Question 0?" in seen[0][-1]["content"]
    assert "Answer B: answer B0" in seen[0][-1]["content"]


@pytest.mark.parametrize(
    ("text", "value", "confidence"),
    [
        ("A 80", {"choice": "a"}, 0.8),
        ("I think answer B is better, 95%", {"choice": "b"}, 0.95),
        ("B", {"choice": "b"}, None),
        ("Both are fine", None, None),
        ("This is a good one, but B wins", {"choice": "b"}, None),
        ("A 30", {"choice": "a"}, None),  # below 50: not a confidence in a two-way choice
    ],
)
def test_a_suggestion_is_read_as_the_kinds_own_value(text, value, confidence):
    assert suggestion_parse(item_kind("pairwise"), text) == (value, confidence)


def test_model_alone_accuracy_scores_the_suggestions_on_gold(monkeypatch):
    from experiments.analysis import experiment_analysis
    from tests.experiments.conftest import FakeBackend

    backend = FakeBackend(text="A 70")
    monkeypatch.setattr("experiments.assistance.backend_for", lambda config: backend)
    experiment = make_experiment(assistance="suggestion")
    run(experiment.arms.get(position=1))
    figures = experiment_analysis(experiment).arms[1]
    assert (figures.model_alone.k, figures.model_alone.n) == (2, 4)  # gold is a, b, a, b
