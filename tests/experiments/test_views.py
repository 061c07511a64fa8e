"""The participant pages and the researcher's page, tested on the bytes that reach them."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from experiments.assistance import assistance_job_run
from experiments.models import Arm, AssistanceFlag, AssistanceJob, Participant
from experiments.services import experiment_link_set
from tests.experiments.conftest import make_experiment
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

IDS = "PROLIFIC_PID={pid}&STUDY_ID=study1&SESSION_ID=session-{pid}"


def joined(experiment, pid):
    client = Client()
    response = client.get(f"/join/{experiment.slug}/?" + IDS.format(pid=pid))
    assert response.status_code == 302, response.content
    return client, response


def consented(experiment, pid):
    client, _ = joined(experiment, pid)
    response = client.post(f"/join/{experiment.slug}/consent/", {"agree": "on"})
    assert response.status_code == 302
    return client, Participant.objects.get(experiment=experiment, external_id=pid)


@pytest.fixture
def experiment(researcher, fake_backend):
    experiment = make_experiment(researcher=researcher)
    helped = experiment.arms.get(position=1)
    job = AssistanceJob.objects.create(arm=helped, items_total=4)
    assistance_job_run(job_id=job.pk)
    return experiment


def both_arms(experiment):
    """Two consented participants, one in each arm: (client, participant) by arm position."""
    found = {}
    for n in range(4):
        client, person = consented(experiment, f"P{n}")
        found.setdefault(person.arm.position, (client, person))
    return found[0], found[1]


def test_the_study_link_asks_consent_then_instructions_then_the_task(experiment):
    client, response = joined(experiment, "P1")
    assert response["Location"] == f"/join/{experiment.slug}/consent/"
    page = client.get(response["Location"]).content.decode()
    assert "<strong>take part</strong>" in page  # Markdown rendered
    refused = client.post(f"/join/{experiment.slug}/consent/", {})
    assert refused.status_code == 200 and "tick the box" in refused.content.decode()
    assert client.get(f"/join/{experiment.slug}/task/")["Location"].endswith("/consent/")
    client.post(f"/join/{experiment.slug}/consent/", {"agree": "on"})
    assert (
        "Pick the better answer."
        in client.get(f"/join/{experiment.slug}/instructions/").content.decode()
    )
    assert client.get(f"/join/{experiment.slug}/task/").status_code == 200
    # A returning id resumes past consent, in the same account.
    again, response = joined(experiment, "P1")
    assert response["Location"] == f"/join/{experiment.slug}/task/"
    assert Participant.objects.count() == 1


@pytest.mark.parametrize(
    "query",
    [
        "",
        "PROLIFIC_PID=P1&STUDY_ID=s",
        "PROLIFIC_PID=&STUDY_ID=s&SESSION_ID=x",
        "PROLIFIC_PID=<b>&STUDY_ID=s&SESSION_ID=x",
    ],
)
def test_a_link_without_its_ids_is_refused(experiment, query):
    response = Client().get(f"/join/{experiment.slug}/?{query}")
    assert response.status_code == 400 and b"incomplete" in response.content
    assert not Participant.objects.exists()


def test_a_closed_link_is_refused(experiment):
    experiment_link_set(experiment=experiment, open=False)
    response = Client().get(f"/join/{experiment.slug}/?" + IDS.format(pid="P1"))
    assert response.status_code == 410 and b"closed" in response.content


def test_a_burst_of_joins_from_one_address_is_refused_with_429(experiment, settings):
    settings.STUDY_JOIN_RATE_LIMIT = 3
    address = f"203.0.113.{uuid.uuid4().int % 250}"
    answers = [
        Client(REMOTE_ADDR=address).get(f"/join/{experiment.slug}/?" + IDS.format(pid=f"B{n}"))
        for n in range(5)
    ]
    assert [a.status_code for a in answers] == [302, 302, 302, 429, 429]
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60
    assert Participant.objects.filter(experiment=experiment).count() == 3
    other = Client(REMOTE_ADDR="198.51.100.9").get(
        f"/join/{experiment.slug}/?" + IDS.format(pid="other")
    )
    assert other.status_code == 302


def test_the_unassisted_arm_never_receives_assistance_gold_or_arm_names(experiment):
    (plain, plain_person), (helped, helped_person) = both_arms(experiment)
    slug = experiment.slug
    plain_bytes = [plain.get(f"/join/{slug}/task/").content]
    helped_page = helped.get(f"/join/{slug}/task/").content
    # The assisted arm shows the critique beside the item, escaped.
    assert b"CRITIQUE-MARKER" in helped_page and b"<script>alert(1)" not in helped_page
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in helped_page
    for _ in range(4):  # every fragment of the whole task, label by label
        page = plain_bytes[-1].decode()
        lease = page.split('name="assignment" value="')[1].split('"')[0]
        plain_bytes.append(
            plain.post(
                f"/join/{slug}/task/label/",
                {"assignment": lease, "key": "1", "request_id": uuid.uuid4()},
                HTTP_HX_REQUEST="true",
            ).content
        )
    plain_bytes.append(plain.get(f"/join/{slug}/done/").content)
    everything = b"".join(plain_bytes)
    for secret in (
        b"CRITIQUE-MARKER",
        b"assistant",
        b"Control arm",
        b"Helped arm",
        b"gold",
        b"critique",
    ):
        assert secret not in everything, secret
    assert b"C0DE42" in plain_bytes[-1]
    plain_person.refresh_from_db()
    assert plain_person.completed_at is not None


def test_the_item_held_ahead_carries_only_the_arms_own_assistance(experiment):
    """The task page holds the next item ahead (a <template>, swapped in on the key): its
    bytes are the participant's like the rest, so an unassisted arm's carry no critique while
    an assisted arm's carry the critique of that next item, escaped."""
    (plain, plain_person), (helped, helped_person) = both_arms(experiment)
    slug = experiment.slug
    pages = {}
    for client, person in ((plain, plain_person), (helped, helped_person)):
        first = client.get(f"/join/{slug}/task/").content.decode()
        ahead = person.user.assignments.get(ahead=True)
        current = person.user.assignments.get(ahead=False)
        # The label's answer holds the item after the next one ahead in turn.
        answer = client.post(
            f"/join/{slug}/task/label/",
            {"assignment": current.pk, "key": "1", "request_id": uuid.uuid4()},
            HTTP_HX_REQUEST="true",
        ).content.decode()
        held = [page.split('<template class="ahead">')[1].split("</template>")[0]
                for page in (first, answer)]  # fmt: skip
        assert f'data-lease="{ahead.pk}"' in held[0]
        assert f'id="work" class="card work study" data-lease="{ahead.pk}"' in answer
        pages[person.arm.position] = held
    for ahead in pages[0]:
        assert 'name="key"' in ahead
        for secret in ("CRITIQUE-MARKER", "assistant", "critique", "flag"):
            assert secret not in ahead.lower(), secret
    for ahead in pages[1]:
        assert "CRITIQUE-MARKER" in ahead and "&lt;script&gt;alert(1)" in ahead
        assert "<script>alert(1)" not in ahead


def test_a_leaving_page_gives_back_only_its_own_item_held_ahead(experiment):
    (plain, plain_person), (helped, _) = both_arms(experiment)
    slug = experiment.slug
    plain.get(f"/join/{slug}/task/")
    helped.get(f"/join/{slug}/task/")
    ahead = plain_person.user.assignments.get(ahead=True)
    current = plain_person.user.assignments.get(ahead=False)
    release = f"/join/{slug}/task/release/"
    assert helped.post(release, {"assignment": ahead.pk}).status_code == 409  # not theirs
    assert plain.post(release, {"assignment": current.pk}).status_code == 409  # on screen
    assert plain.get(release).status_code == 405
    assert plain.post(release, {"assignment": ahead.pk}).status_code == 204
    ahead.refresh_from_db()
    assert ahead.outcome == "released"


def test_another_arms_item_and_flags_in_an_unassisted_arm_are_404(experiment):
    (plain, plain_person), (helped, helped_person) = both_arms(experiment)
    slug = experiment.slug
    helped.get(f"/join/{slug}/task/")
    plain.get(f"/join/{slug}/task/")
    # The item on screen (the page also holds the next one ahead).
    helped_lease = helped_person.user.assignments.get(ahead=False).pk
    plain_lease = plain_person.user.assignments.get(ahead=False).pk
    stolen = plain.post(
        f"/join/{slug}/task/label/",
        {"assignment": helped_lease, "key": "1", "request_id": uuid.uuid4()},
    )
    assert stolen.status_code == 404
    assert (
        plain.post(
            f"/join/{slug}/task/flag/", {"assignment": plain_lease, "flag": "helped"}
        ).status_code
        == 404
    )
    assert (
        plain.post(
            f"/join/{slug}/task/flag/", {"assignment": helped_lease, "flag": "helped"}
        ).status_code
        == 404
    )
    assert (
        helped.post(
            f"/join/{slug}/task/flag/",
            {"assignment": helped_lease, "flag": "wrong"},
            HTTP_HX_REQUEST="true",
        ).status_code
        == 200
    )
    assert AssistanceFlag.objects.get().flag == "wrong"
    # A participant is nobody anywhere else: annotations' pages and the API refuse them.
    assert plain.get("/queues/").status_code == 403
    assert plain.get("/queues/tokens/").status_code == 403
    assert plain.get(f"/experiments/{experiment.pk}/").status_code == 403
    other = make_experiment(slug="other", assistance="none")
    assert plain.get(f"/join/{other.slug}/task/").status_code == 404


def test_the_page_counts_down_from_the_servers_clock(researcher, fake_backend):
    experiment = make_experiment(researcher=researcher, time_limit_s=30, slug="timed")
    client, _ = consented(experiment, "P1")
    page = client.get(f"/join/{experiment.slug}/task/").content.decode()
    remaining = int(page.split('data-remaining-ms="')[1].split('"')[0])
    assert 28_000 < remaining <= 30_000
    assert "data-timeout" in page
    early = client.post(
        f"/join/{experiment.slug}/task/timeout/",
        {"assignment": page.split('name="assignment" value="')[1].split('"')[0]},
        HTTP_HX_REQUEST="true",
    )
    assert b"not up yet" in early.content


def test_the_researcher_sees_the_analysis_and_exports(experiment, researcher):
    (plain, _), (helped, _) = both_arms(experiment)
    for client in (plain, helped):
        page = client.get(f"/join/{experiment.slug}/task/").content.decode()
        lease = page.split('name="assignment" value="')[1].split('"')[0]
        client.post(
            f"/join/{experiment.slug}/task/label/",
            {"assignment": lease, "key": "1", "request_id": uuid.uuid4()},
        )
    client = signed_in(researcher)
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert "Wilson" in page and "participant-clustered bootstrap" in page and "<svg" in page
    assert "permutation" in page
    labels = client.get(f"/experiments/{experiment.pk}/labels.csv").content.decode()
    assert labels.count("\n") == 3 and "Control arm" in labels
    parquet = client.get(f"/experiments/{experiment.pk}/labels.parquet")
    assert parquet.content[:4] == b"PAR1"
    people = client.get(f"/experiments/{experiment.pk}/participants.csv").content.decode()
    assert people.splitlines()[0].startswith("external_id,study_id,session_id,arm,items")
    assert len(people.splitlines()) == 5
    assert client.post(f"/experiments/{experiment.pk}/link/", {}).status_code == 302
    experiment.refresh_from_db()
    assert not experiment.link_open


def test_the_researcher_pages_refuse_others_and_wrong_methods(experiment, annotator):
    assert signed_in(annotator).get(f"/experiments/{experiment.pk}/").status_code == 403
    assert Client().get(f"/experiments/{experiment.pk}/").status_code == 302


def test_generate_starts_a_job_for_an_assisted_arm_only(
    experiment, researcher, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        "experiments.services.design.current_app.tasks",
        {
            "experiments.tasks.assistance_generate_task": type(
                "T", (), {"delay": staticmethod(sent.append)}
            )
        },
    )
    client = signed_in(researcher)
    control, helped = Arm.objects.filter(experiment=experiment).order_by("position")
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            client.post(f"/experiments/{experiment.pk}/arms/{helped.pk}/generate/").status_code
            == 302
        )
    assert sent == [AssistanceJob.objects.latest("id").pk]
    assert (
        client.post(f"/experiments/{experiment.pk}/arms/{control.pk}/generate/").status_code == 404
    )
    assert client.get(f"/experiments/{experiment.pk}/arms/{helped.pk}/generate/").status_code == 405
