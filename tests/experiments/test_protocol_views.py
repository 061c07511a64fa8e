"""A question-bank experiment's participant pages, tested on the bytes that reach each arm: no
passage, no correct answer, no arm's name, and only the participant's own arm's transcript
(none at all for a direct answer). And the researcher's page for such an experiment."""

from __future__ import annotations

import csv
import io
import re
import uuid

import pytest
from django.test import Client

from debate.models import Debate
from experiments.models import Arm, Participant
from tests.experiments.conftest import BANK_ARMS, bank_experiment, transcripts_ready
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

IDS = "PROLIFIC_PID={pid}&STUDY_ID=study1&SESSION_ID=session-{pid}"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def experiment(researcher, transcripts_sent, fake_debaters, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        made = bank_experiment(researcher=researcher)
    transcripts_ready(made)
    return made


def one_per_arm(experiment):
    """A consented participant in each arm: {protocol: (client, participant, bytes so far)}."""
    found = {}
    for n in range(6):  # one permuted block of 2 × 3 arms
        client = Client()
        pid = f"P{n}"
        seen = client.get(f"/join/{experiment.slug}/?" + IDS.format(pid=pid), follow=True).content
        seen += client.post(
            f"/join/{experiment.slug}/consent/", {"agree": "on"}, follow=True
        ).content
        person = Participant.objects.get(experiment=experiment, external_id=pid)
        found.setdefault(person.arm.protocol, (client, person, seen))
    assert set(found) == {"direct", "consultancy", "debate"}
    return found


def lease_of(page: bytes) -> int:
    found = re.search(rb'name="assignment" value="(\d+)"', page)
    assert found is not None, page
    return int(found.group(1))


def judge_all(experiment, client) -> bytes:
    """Every page and fragment the participant receives while answering every question."""
    seen = client.get(f"/join/{experiment.slug}/task/").content
    page = seen
    for _ in range(10):
        response = client.post(
            f"/join/{experiment.slug}/task/label/",
            {"assignment": lease_of(page), "probability_a": 70, "request_id": uuid.uuid4(),
             "time_ms": 900},
            **HTMX,
        )  # fmt: skip
        seen += response.content
        if response.status_code == 204:
            assert response["HX-Redirect"].endswith("/done/")
            break
        assert response.status_code == 200
        page = response.content
    seen += client.get(f"/join/{experiment.slug}/done/").content
    return seen


def test_each_arm_receives_only_its_own_material_and_never_the_passage_or_the_answer(
    experiment,
):
    consultant = f"consultant-model-{experiment.slug}-SAYS"
    debater = f"debater-model-{experiment.slug}-SAYS"
    passages = [d.passage for d in Debate.objects.filter(batch__isnull=False)]
    for protocol, (client, person, seen) in one_per_arm(experiment).items():
        seen += client.get(f"/join/{experiment.slug}/instructions/").content
        seen += judge_all(experiment, client)
        text = seen.decode()
        assert "C0DE42" in text  # they reached the end
        assert person.responses.count() == 4
        assert "passage-secret" not in text and "Mira kept the ferry log" not in text
        assert not any(passage[:60] in text for passage in passages)
        for name in BANK_ARMS.values():
            assert name not in text
        assert "gold" not in text.lower() and "correct_side" not in text
        assert "<script>alert" not in text  # model output is escaped
        if protocol == "direct":
            assert "SAYS" not in text and "Consultant" not in text and "Debater" not in text
            assert "what an AI wrote" not in text
        elif protocol == "consultancy":
            assert consultant in text and debater not in text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        else:
            assert debater in text and consultant not in text
            assert "Debater A" in text and "Debater B" in text


def test_a_participant_cannot_answer_another_arms_item_and_bad_probabilities_are_refused(
    experiment,
):
    arms = one_per_arm(experiment)
    direct_client = arms["direct"][0]
    debate_client = arms["debate"][0]
    theirs = lease_of(debate_client.get(f"/join/{experiment.slug}/task/").content)
    refused = direct_client.post(
        f"/join/{experiment.slug}/task/label/",
        {"assignment": theirs, "probability_a": 70, "request_id": uuid.uuid4()}, **HTMX,
    )  # fmt: skip
    assert refused.status_code == 404
    mine = lease_of(direct_client.get(f"/join/{experiment.slug}/task/").content)
    for bad in ("0", "100", "abc", ""):
        page = direct_client.post(
            f"/join/{experiment.slug}/task/label/",
            {"assignment": mine, "probability_a": bad, "request_id": uuid.uuid4()}, **HTMX,
        )  # fmt: skip
        assert page.status_code == 200 and 'class="error"' in page.content.decode()
    assert not arms["direct"][1].responses.exists()


def test_the_researchers_page_shows_the_transcripts_and_the_export_the_probabilities(
    experiment, researcher
):
    client, _, _ = one_per_arm(experiment)["debate"]
    judge_all(experiment, client)
    researcher_client = signed_in(researcher)
    page = researcher_client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert "Transcripts, generated ahead" in page and "ready: 4 questions" in page
    assert "Debate (two debaters)" in page and "Direct answer (no debaters)" in page
    exported = researcher_client.get(f"/experiments/{experiment.pk}/labels.csv").content.decode()
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 4 and {row["probability_correct"] for row in rows} <= {"0.7", "0.3"}
    direct = Arm.objects.get(experiment=experiment, protocol="direct")
    assert (
        researcher_client.post(
            f"/experiments/{experiment.pk}/arms/{direct.pk}/generate/"
        ).status_code
        == 404
    )


def test_the_study_link_waits_for_the_transcripts(
    researcher, transcripts_sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        made = bank_experiment(researcher=researcher, slug="early")
    response = Client().get(f"/join/{made.slug}/?" + IDS.format(pid="P1"))
    assert response.status_code == 503 and "not open yet" in response.content.decode()
    assert not Participant.objects.exists()
