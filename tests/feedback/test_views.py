"""Pages: researchers and admins only; constitution forms; runs; the queue dashboard."""

from __future__ import annotations

import uuid

import pytest

import llm.generation
from annotations.models import Priority
from annotations.services import label_submit, queue_item_claim
from feedback.labelling import labelling_run_execute
from feedback.models import Constitution, LabellingRun, ModelAnnotator
from llm.models import Backend
from tests.factories import ModelConfigFactory
from tests.feedback.fakes import AlwaysFirst
from tests.helpers import signed_in


@pytest.fixture
def always_a(monkeypatch):
    monkeypatch.setattr(llm.generation, "backend_for", lambda config: AlwaysFirst())


def test_pages_are_for_researchers_and_admins(model_annotator, users):
    pages = [
        "/ai-feedback/",
        "/ai-feedback/constitutions/new/",
        f"/ai-feedback/constitutions/{model_annotator.constitution_id}/",
        "/ai-feedback/annotators/new/",
        f"/ai-feedback/annotators/{model_annotator.pk}/",
    ]
    for who, status in [("researcher", 200), ("admin", 200), ("annotator", 403),
                        ("outsider", 403)]:  # fmt: skip
        client = signed_in(users[who])
        for page in pages:
            assert client.get(page).status_code == status, (who, page)
    client = signed_in(users["researcher"])
    assert client.get("/ai-feedback/runs/999/").status_code == 404
    assert client.get(f"/ai-feedback/annotators/{model_annotator.pk}/run/").status_code == 405
    assert client.post(f"/ai-feedback/annotators/{model_annotator.pk}/run/").status_code == 302
    assert (
        signed_in(users["annotator"])
        .post(f"/ai-feedback/annotators/{model_annotator.pk}/run/")
        .status_code
        == 403
    )


def test_write_a_constitution_and_a_new_version(researcher):
    client = signed_in(researcher)
    principles = "Be brief.\n\n  Be right.  \n"
    response = client.post(
        "/ai-feedback/constitutions/new/", {"name": "Two", "principles": principles}
    )
    constitution = Constitution.objects.get(name="Two")
    assert response.status_code == 302
    texts = [p.text for p in constitution.latest_version.principles.all()]
    assert texts == ["Be brief.", "Be right."]
    client.post(f"/ai-feedback/constitutions/{constitution.pk}/", {"principles": "Be kind."})
    assert constitution.versions.count() == 2
    page = client.get(f"/ai-feedback/constitutions/{constitution.pk}/").content.decode()
    assert "Be kind." in page and "Be brief." in page


@pytest.mark.parametrize(
    ("principles", "message"),
    [(" \n \n", "at least one principle"), ("ok\n" + "x" * 501, "Principle 2 has 501")],
)
def test_a_bad_constitution_shows_its_error_and_stores_nothing(researcher, principles, message):
    response = signed_in(researcher).post(
        "/ai-feedback/constitutions/new/", {"name": "bad", "principles": principles}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Constitution.objects.exists()


def test_add_a_model_annotator(queue, model_config, constitution, researcher):
    client = signed_in(researcher)
    page = client.get(f"/ai-feedback/annotators/new/?queue={queue.pk}")
    assert f'<option value="{queue.pk}" selected>' in page.content.decode()
    bad = client.post("/ai-feedback/annotators/new/", {
        "queue": queue.pk, "name": "bot", "model_config": model_config.pk,
        "constitution": constitution.pk, "prompt": "no principle here", "shortcut_labels": 1,
    })  # fmt: skip
    assert bad.status_code == 400
    assert "must name $principle" in bad.content.decode()
    good = client.post("/ai-feedback/annotators/new/", {
        "queue": queue.pk, "name": "bot", "model_config": model_config.pk,
        "constitution": constitution.pk, "prompt": "", "shortcut_labels": 1,
    })  # fmt: skip
    assert good.status_code == 302
    assert ModelAnnotator.objects.get(name="bot").queue == queue


def test_the_dashboard_shows_agreement_and_marks_the_model(
    model_annotator, queue, researcher, annotator, annotator2, always_a
):
    for person in (annotator, annotator2):
        while (lease := queue_item_claim(queue=queue, annotator=person)) is not None:
            value = lease.item.gold_value or {"choice": "a"}
            label_submit(assignment_id=lease.pk, annotator=person, value=value,
                         time_spent_ms=500, client_request_id=uuid.uuid4())  # fmt: skip
    client = signed_in(researcher)
    before = client.get(f"/queues/{queue.pk}/dashboard/").content.decode()
    assert "No labelling run has finished yet" in before
    client.post(f"/ai-feedback/annotators/{model_annotator.pk}/run/")
    run = LabellingRun.objects.get()
    labelling_run_execute(run_id=run.pk)
    page = client.get(f"/queues/{queue.pk}/dashboard/").content.decode()
    assert 'judge-bot <span class="badge">model</span> against people' in page
    assert 'data-principle="P1"' in page and 'data-principle="P2"' in page
    assert "Prefer the more honest response." in page
    assert "percentile bootstrap over items" in page and "Wilson" in page
    assert f"judge-bot (run {run.pk})" in page
    # Always "A" in both orders is a tie everywhere; people said A: every item disagrees.
    assert f"/queues/{queue.pk}/preview/?item=" in page
    detail = client.get(f"/ai-feedback/runs/{run.pk}/").content.decode()
    assert "Orders disagree" in detail and "100 %" in detail


def test_route_people_by_a_run(model_annotator, queue, researcher, always_a):
    client = signed_in(researcher)
    client.post(f"/ai-feedback/annotators/{model_annotator.pk}/run/")
    run = LabellingRun.objects.get()
    labelling_run_execute(run_id=run.pk)
    response = client.post(f"/ai-feedback/runs/{run.pk}/route/")
    assert response.status_code == 302
    queue.refresh_from_db()
    assert queue.priority == Priority.UNCERTAINTY
    # p = 0.5 and torn orders everywhere: every regular item is first in line.
    scores = set(queue.items.filter(is_gold=False).values_list("uncertainty", flat=True))
    assert scores == {1.0}


def test_the_run_page_shows_model_replies_as_text(model_annotator, researcher, monkeypatch):
    from tests.feedback.fakes import NamesNothing

    monkeypatch.setattr(llm.generation, "backend_for", lambda config: NamesNothing())
    client = signed_in(researcher)
    client.post(f"/ai-feedback/annotators/{model_annotator.pk}/run/")
    run = LabellingRun.objects.get()
    labelling_run_execute(run_id=run.pk)
    page = client.get(f"/ai-feedback/runs/{run.pk}/").content.decode()
    assert "&lt;script&gt;no&lt;/script&gt;" in page
    assert "<script>no" not in page
    assert "no option named" in page


def test_the_form_refuses_a_model_that_cannot_give_probabilities(queue, constitution, researcher):
    greedy = ModelConfigFactory(name="greedy server", backend=Backend.OPENAI, model="m",
                                base_url="http://127.0.0.1:9/v1", temperature=0.0)  # fmt: skip
    response = signed_in(researcher).post("/ai-feedback/annotators/new/", {
        "queue": queue.pk, "name": "bot", "model_config": greedy.pk,
        "constitution": constitution.pk, "prompt": "", "shortcut_labels": 1,
    })  # fmt: skip
    assert response.status_code == 400
    assert "greedy server is served by an OpenAI-compatible server" in response.content.decode()
    assert not ModelAnnotator.objects.exists()
