import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from annotations.importers import MAX_IMPORT_BYTES
from annotations.models import Item, Queue, QueueMember
from tests.annotations.factories import make_queue, pairwise
from tests.helpers import signed_in

GOOD_ROW = b'{"prompt": "p", "response_a": "a", "response_b": "b"}\n'


@pytest.fixture
def queue(annotator):
    return make_queue(name="Helpfulness", members=[annotator], items=pairwise(2))


def pages(queue):
    return {
        "get": [
            reverse("annotations:queue_admin"),
            reverse("annotations:queue_create"),
            reverse("annotations:queue_detail", args=[queue.pk]),
        ],
        "post": [reverse("annotations:queue_import", args=[queue.pk])],
    }


def test_anonymous_is_sent_to_login(queue):
    for method, paths in pages(queue).items():
        for path in paths:
            response = getattr(Client(), method)(path)
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["annotator", "outsider"])
def test_annotators_and_outsiders_get_403(queue, users, who):
    client = signed_in(users[who])
    for method, paths in pages(queue).items():
        for path in paths:
            assert getattr(client, method)(path).status_code == 403, path
    assert Item.objects.count() == 2


@pytest.mark.parametrize("who", ["researcher", "admin"])
def test_researchers_and_admins_open_every_page(queue, users, who):
    client = signed_in(users[who])
    for path in pages(queue)["get"]:
        assert client.get(path).status_code == 200, path


def test_wrong_methods_are_refused(queue, researcher):
    client = signed_in(researcher)
    assert client.post(reverse("annotations:queue_admin")).status_code == 405
    assert client.get(reverse("annotations:queue_import", args=[queue.pk])).status_code == 405
    assert client.put(reverse("annotations:queue_detail", args=[queue.pk])).status_code == 405


def test_a_missing_queue_is_404(researcher):
    client = signed_in(researcher)
    assert client.get(reverse("annotations:queue_detail", args=[999])).status_code == 404
    upload = SimpleUploadedFile("items.jsonl", GOOD_ROW)
    assert (
        client.post(reverse("annotations:queue_import", args=[999]), {"file": upload}).status_code
        == 404
    )


def test_queue_list_shows_counts(queue, researcher):
    html = signed_in(researcher).get(reverse("annotations:queue_admin")).content.decode()
    assert "Helpfulness" in html and '<td class="num">2</td>' in html


def test_create_a_queue_with_members(researcher, annotator, annotator2):
    response = signed_in(researcher).post(
        reverse("annotations:queue_create"),
        {
            "name": "Harmlessness",
            "kind": "likert",
            "instructions": "Rate it.",
            "labels_per_item": 2,
            "priority": "random",
            "gold_rate": 0.1,
            "lease_minutes": 5,
            "member_users": [annotator.pk, annotator2.pk],
        },
    )
    queue = Queue.objects.get(name="Harmlessness")
    assert response.status_code == 302
    assert response["Location"] == reverse("annotations:queue_detail", args=[queue.pk])
    assert (queue.kind, queue.labels_per_item, queue.created_by) == ("likert", 2, researcher)
    assert set(queue.members.all()) == {annotator, annotator2}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("labels_per_item", 0, "greater than or equal to 1"),
        ("gold_rate", 0.9, "less than or equal to 0.5"),
        ("kind", "essay", "Select a valid choice"),
        ("name", "", "This field is required"),
    ],
)
def test_bad_queue_settings_are_explained(researcher, field, value, message):
    data = {
        "name": "Q",
        "kind": "pairwise",
        "labels_per_item": 3,
        "priority": "fifo",
        "gold_rate": 0,
        "lease_minutes": 10,
    }
    response = signed_in(researcher).post(
        reverse("annotations:queue_create"), data | {field: value}
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Queue.objects.exists()


def test_a_question_judgment_queue_is_refused_saying_an_experiment_makes_it(researcher):
    data = {
        "name": "Q",
        "kind": "question_judgment",
        "labels_per_item": 3,
        "priority": "fifo",
        "gold_rate": 0,
        "lease_minutes": 10,
    }
    response = signed_in(researcher).post(reverse("annotations:queue_create"), data)
    assert response.status_code == 200
    assert "made by a question-bank experiment" in response.content.decode()
    assert not Queue.objects.exists()
    # Nor can an existing queue be turned into one.
    queue = make_queue(name="Plain", kind="pairwise")
    response = signed_in(researcher).post(
        reverse("annotations:queue_detail", args=[queue.pk]), data | {"name": "Plain"}
    )
    assert "made by a question-bank experiment" in response.content.decode()
    queue.refresh_from_db()
    assert queue.kind == "pairwise"
    # An experiment's own queue of that kind still takes its settings from the form.
    arm_queue = make_queue(name="arm queue", kind="question_judgment")
    response = signed_in(researcher).post(
        reverse("annotations:queue_detail", args=[arm_queue.pk]), data | {"name": "Arm 1"}
    )
    assert response.status_code == 302
    arm_queue.refresh_from_db()
    assert (arm_queue.name, arm_queue.kind) == ("Arm 1", "question_judgment")


def test_only_annotators_can_be_members(researcher, outsider):
    data = {
        "name": "Q",
        "kind": "pairwise",
        "labels_per_item": 3,
        "priority": "fifo",
        "gold_rate": 0,
        "lease_minutes": 10,
    }
    response = signed_in(researcher).post(
        reverse("annotations:queue_create"), data | {"member_users": [outsider.pk]}
    )
    assert "Select a valid choice" in response.content.decode()
    assert not Queue.objects.exists()


def test_edit_keeps_the_kind_once_there_are_items(queue, researcher, annotator2):
    response = signed_in(researcher).post(
        reverse("annotations:queue_detail", args=[queue.pk]),
        {"name": "Helpfulness v2", "kind": "likert", "labels_per_item": 5, "priority": "fifo",
         "gold_rate": 0, "lease_minutes": 10, "member_users": [annotator2.pk]},
    )  # fmt: skip
    assert response.status_code == 302
    queue.refresh_from_db()
    assert (queue.name, queue.kind, queue.labels_per_item) == ("Helpfulness v2", "pairwise", 5)
    assert list(QueueMember.objects.filter(queue=queue).values_list("user", flat=True)) == [
        annotator2.pk
    ]


def test_upload_imports_items(queue, researcher):
    upload = SimpleUploadedFile("items.jsonl", GOOD_ROW * 3)
    response = signed_in(researcher).post(
        reverse("annotations:queue_import", args=[queue.pk]), {"file": upload}
    )
    assert response.status_code == 302
    assert Item.objects.filter(queue=queue).count() == 5


def test_upload_with_a_bad_row_names_its_line_and_imports_nothing(queue, researcher):
    upload = SimpleUploadedFile("items.csv", b"prompt,response_a,response_b\np,a,b\np,,b\n")
    response = signed_in(researcher).post(
        reverse("annotations:queue_import", args=[queue.pk]), {"file": upload}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was imported" in html and "line 3: response_a: Field required" in html
    assert Item.objects.filter(queue=queue).count() == 2


def test_upload_format_must_be_known(queue, researcher):
    upload = SimpleUploadedFile("items.txt", GOOD_ROW)
    response = signed_in(researcher).post(
        reverse("annotations:queue_import", args=[queue.pk]), {"file": upload}
    )
    assert response.status_code == 400
    assert "ends in neither .jsonl nor .csv" in response.content.decode()
    upload = SimpleUploadedFile("items.txt", GOOD_ROW)
    response = signed_in(researcher).post(
        reverse("annotations:queue_import", args=[queue.pk]), {"file": upload, "format": "jsonl"}
    )
    assert response.status_code == 302


def test_oversize_upload_is_refused(queue, researcher):
    upload = SimpleUploadedFile("items.jsonl", b" " * (MAX_IMPORT_BYTES + 1))
    response = signed_in(researcher).post(
        reverse("annotations:queue_import", args=[queue.pk]), {"file": upload}
    )
    assert response.status_code == 400
    assert "the limit is 20,971,520" in response.content.decode()
    assert Item.objects.filter(queue=queue).count() == 2


def test_navigation_links_queues_by_role(users):
    annotator_html = signed_in(users["annotator"]).get(reverse("annotator_home")).content.decode()
    assert reverse("annotations:my_queues") in annotator_html
    assert reverse("annotations:queue_admin") not in annotator_html
    researcher_html = (
        signed_in(users["researcher"]).get(reverse("researcher_home")).content.decode()
    )
    assert reverse("annotations:queue_admin") in researcher_html
