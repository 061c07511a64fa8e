import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotations.kinds import PairwisePayload
from annotations.models import Assignment, Label, Outcome
from annotations.services import NewItem, label_submit, queue_item_claim
from tests.annotations.factories import make_queue, pairwise, pairwise_gold
from tests.helpers import signed_in

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def queue(annotator, admin_user):
    return make_queue(members=[annotator], items=pairwise(3), labels_per_item=1)


def lease_of(user):
    """The lease on the item the page shows (not the one it holds ahead)."""
    return Assignment.objects.get(annotator=user, outcome=Outcome.OPEN, ahead=False)


def post_label(client, queue, lease, key="1", request_id=None, **extra):
    data = {
        "assignment": lease.pk,
        "key": key,
        "request_id": request_id or uuid.uuid4(),
        "time_ms": 1500,
    }
    return client.post(reverse("annotations:submit", args=[queue.pk]), data, **extra)


# --- access -----------------------------------------------------------------------------------
def urls(queue):
    return {
        "get": [reverse("annotations:my_queues"), reverse("annotations:label", args=[queue.pk])],
        "post": [
            reverse("annotations:submit", args=[queue.pk]),
            reverse("annotations:skip", args=[queue.pk]),
            reverse("annotations:undo", args=[queue.pk]),
            reverse("annotations:release", args=[queue.pk]),
        ],
    }


def test_anonymous_is_sent_to_login(queue):
    for method, paths in urls(queue).items():
        for path in paths:
            response = getattr(Client(), method)(path)
            assert response.status_code == 302, path
            assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["researcher", "outsider"])
def test_other_roles_get_403(queue, users, who):
    client = signed_in(users[who])
    for method, paths in urls(queue).items():
        for path in paths:
            assert getattr(client, method)(path).status_code == 403, path


def test_wrong_methods_are_refused(queue, annotator):
    client = signed_in(annotator)
    for path in urls(queue)["get"]:
        assert client.post(path).status_code == 405
    for path in urls(queue)["post"]:
        assert client.get(path).status_code == 405


def test_a_queue_you_are_not_in_is_404(queue, annotator2):
    client = signed_in(annotator2)
    for method, paths in urls(queue).items():
        for path in paths[1:] if method == "get" else paths:
            assert getattr(client, method)(path).status_code == 404, path
    assert not Assignment.objects.filter(annotator=annotator2).exists()


# --- pages ------------------------------------------------------------------------------------
def test_my_queues_lists_only_mine_with_progress(queue, annotator, annotator2):
    make_queue(name="someone else's", members=[annotator2], items=pairwise(1))
    html = signed_in(annotator).get(reverse("annotations:my_queues")).content.decode()
    assert queue.name in html
    assert "someone else&#x27;s" not in html
    assert "3 left for you · 0 done" in html


def test_label_page_shows_the_first_item_and_the_keys(queue, annotator):
    html = signed_in(annotator).get(reverse("annotations:label", args=[queue.pk])).content.decode()
    assert "prompt 0" in html and "answer A0" in html and "answer B0" in html
    for key in ("1", "2", "t", "b", "s"):
        assert f'data-key="{key}"' in html
    assert 'data-key="u"' not in html  # nothing to undo yet: no Undo offered
    assert "3 left for you · 0 done" in html
    assert "<strong>better</strong>" in html  # the instructions, from Markdown
    assert "js/queue.js" in html


def test_model_text_is_escaped(annotator):
    evil = PairwisePayload(
        prompt="<script>alert(1)</script>",
        response_a="<b>A</b>",
        response_b="<img src=x onerror=alert(2)>",
    )
    queue = make_queue(
        members=[annotator], items=[NewItem(payload=evil)], instructions="<script>x()</script>"
    )
    html = signed_in(annotator).get(reverse("annotations:label", args=[queue.pk])).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>A</b>" not in html and "<img src=x" not in html
    assert "<script>x()" not in html


def test_htmx_submit_stores_the_label_and_swaps_in_the_next_item(queue, annotator):
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    lease = lease_of(annotator)
    response = post_label(client, queue, lease, key="t", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="work"')  # the fragment only, no page
    assert "prompt 1" in html and "2 left for you · 1 done" in html
    assert 'data-key="u"' in html  # a label to undo: Undo offered
    label = Label.objects.get()
    assert (label.value, label.time_spent_ms, label.item_id) == (
        {"choice": "tie"},
        1500,
        lease.item_id,
    )


def test_a_submit_without_a_time_stores_it_as_unknown_not_the_leases_age(queue, annotator):
    # A page without JavaScript sends time_ms empty; the lease's age is not time on the item.
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    lease = lease_of(annotator)
    Assignment.objects.filter(pk=lease.pk).update(created_at=timezone.now() - timedelta(minutes=4))
    data = {"assignment": lease.pk, "key": "1", "request_id": uuid.uuid4(), "time_ms": ""}
    response = client.post(reverse("annotations:submit", args=[queue.pk]), data)
    assert response.status_code == 302
    assert Label.objects.get().time_spent_ms is None


def test_plain_submit_redirects_back_to_the_page(queue, annotator):
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    response = post_label(client, queue, lease_of(annotator), key="2")
    assert response.status_code == 302
    assert response["Location"] == reverse("annotations:label", args=[queue.pk])
    assert Label.objects.get().value == {"choice": "b"}


def test_a_retried_submit_stores_one_label(queue, annotator):
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    lease, request_id = lease_of(annotator), uuid.uuid4()
    post_label(client, queue, lease, request_id=request_id, **HTMX)
    post_label(client, queue, lease, request_id=request_id, **HTMX)
    assert Label.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key": "7"}, "is not a label key in a pairwise queue"),
        ({"key": ""}, "This field is required"),
        ({"request_id": "not-a-uuid"}, "Enter a valid UUID"),
        ({"assignment": "x"}, "Enter a whole number"),
        ({"time_ms": "-5"}, "greater than or equal to 0"),
    ],
)
def test_bad_input_is_explained_and_changes_nothing(queue, annotator, data, message):
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    lease = lease_of(annotator)
    form = {"assignment": lease.pk, "key": "1", "request_id": uuid.uuid4(), "time_ms": 10} | data
    response = client.post(reverse("annotations:submit", args=[queue.pk]), form, **HTMX)
    assert message in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert not Label.objects.exists()
    assert lease_of(annotator).pk == lease.pk


def test_another_annotators_lease_is_refused(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(2), labels_per_item=1)
    theirs = queue_item_claim(queue=queue, annotator=annotator2)
    response = post_label(signed_in(annotator), queue, theirs, **HTMX)
    assert "not assigned to you" in response.content.decode()
    assert not Label.objects.exists()


def test_a_lease_from_another_queue_is_refused(queue, annotator):
    other = make_queue(members=[annotator], items=pairwise(1))
    lease = queue_item_claim(queue=other, annotator=annotator)
    post_label(signed_in(annotator), queue, lease, **HTMX)
    assert not Label.objects.exists()


def test_skip_then_undo_through_the_page(queue, annotator):
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    first = lease_of(annotator)
    html = client.post(
        reverse("annotations:skip", args=[queue.pk]), {"assignment": first.pk}, **HTMX
    ).content.decode()
    assert "Skipped." in html and "prompt 1" in html
    post_label(client, queue, lease_of(annotator), **HTMX)
    html = client.post(reverse("annotations:undo", args=[queue.pk]), **HTMX).content.decode()
    assert "Label undone." in html and "prompt 1" in html
    assert "2 left for you · 0 done · 1 skipped" in html
    assert not Label.objects.exists() and 'data-key="u"' not in html
    # A stale page's U (or a double press) is answered, not an error.
    html = client.post(reverse("annotations:undo", args=[queue.pk]), **HTMX).content.decode()
    assert "Nothing to undo" in html


def test_only_skipped_items_left_ends_with_revisit_skipped(annotator):
    queue = make_queue(members=[annotator], items=pairwise(2), labels_per_item=1)
    client = signed_in(annotator)
    page = reverse("annotations:label", args=[queue.pk])
    client.get(page)
    client.post(
        reverse("annotations:skip", args=[queue.pk]), {"assignment": lease_of(annotator).pk}
    )
    html = post_label(client, queue, lease_of(annotator), **HTMX).content.decode()
    assert "Only the 1 item you skipped is left for you." in html
    assert "0 left for you · 1 done · 1 skipped" in html and 'data-key="r"' in html
    # R asks for the work area again with revisit=1 (a plain GET without JavaScript).
    html = client.get(page, {"revisit": "1"}, **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="work"') and "prompt 0" in html
    assert 'name="revisit" value="1"' in html
    response = client.post(
        reverse("annotations:submit", args=[queue.pk]),
        {"assignment": lease_of(annotator).pk, "key": "2", "request_id": uuid.uuid4(),
         "time_ms": 900, "revisit": "1"},
    )  # fmt: skip
    assert response["Location"] == page + "?revisit=1"  # still revisiting after the redirect
    html = client.get(response["Location"]).content.decode()
    assert "Nothing left for you in this queue" in html and "0 left for you · 2 done" in html


def test_a_queue_finished_by_others_says_nothing_is_left_for_you(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(3), labels_per_item=1)
    while (lease := queue_item_claim(queue=queue, annotator=annotator2)) is not None:
        label_submit(assignment_id=lease.pk, annotator=annotator2, value={"choice": "a"},
                     time_spent_ms=1, client_request_id=uuid.uuid4())  # fmt: skip
    html = signed_in(annotator).get(reverse("annotations:label", args=[queue.pk])).content
    assert "0 left for you · 0 done" in html.decode() and "of 3" not in html.decode()


def test_items_held_by_others_are_explained(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(1), labels_per_item=1)
    queue_item_claim(queue=queue, annotator=annotator2)
    html = signed_in(annotator).get(reverse("annotations:label", args=[queue.pk])).content
    assert "the 1 item left is held by other annotators" in html.decode()


def test_the_end_of_the_queue_says_so(annotator):
    queue = make_queue(members=[annotator], items=pairwise(1))
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    html = post_label(client, queue, lease_of(annotator), **HTMX).content.decode()
    assert "Nothing left for you in this queue" in html


def test_annotators_never_see_gold_flags_or_other_labels(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise_gold(1), gold_rate=0.5)
    # Gold only comes mixed in, so give the queue one real item for the first claim.
    from annotations.services import queue_items_create

    queue_items_create(queue=queue, items=pairwise(2))
    lease = queue_item_claim(queue=queue, annotator=annotator2)
    label_submit(
        assignment_id=lease.pk,
        annotator=annotator2,
        value={"choice": "both_bad"},
        time_spent_ms=1,
        client_request_id=uuid.uuid4(),
    )
    client = signed_in(annotator)
    pages = []
    pages.append(client.get(reverse("annotations:label", args=[queue.pk])).content.decode())
    lease = lease_of(annotator)
    pages.append(post_label(client, queue, lease, **HTMX).content.decode())
    assert lease_of(annotator).item.is_gold
    for html in pages:
        assert "gold" not in html.lower()
        assert "annotator2" not in html
        assert "both_bad" not in html


# --- the next item held ahead -----------------------------------------------------------------
def ahead_of(user):
    return Assignment.objects.get(annotator=user, outcome=Outcome.OPEN, ahead=True)


def test_the_page_holds_the_next_item_in_a_template(queue, annotator):
    html = signed_in(annotator).get(reverse("annotations:label", args=[queue.pk])).content.decode()
    current, ahead = lease_of(annotator), ahead_of(annotator)
    assert f'data-lease="{current.pk}"' in html and f'data-lease="{ahead.pk}"' in html
    template = html[html.index('<template class="ahead">') :]
    assert "prompt 1" in template and "prompt 0" not in template
    assert f'name="assignment" value="{ahead.pk}"' in template
    # Each held item carries its own request id.
    assert len(set(re.findall(r'name="request_id" value="([^"]+)"', html))) == 2


def test_the_submit_answers_with_the_held_item_current_and_the_next_ahead(queue, annotator):
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    current, ahead = lease_of(annotator), ahead_of(annotator)
    html = post_label(client, queue, current, **HTMX).content.decode()
    assert lease_of(annotator).pk == ahead.pk  # what the page swapped in is now current
    assert '<div id="work" class="card work"' in html and f'data-lease="{ahead.pk}"' in html
    assert "prompt 2" in html[html.index('<template class="ahead">') :]


def test_a_refused_submit_says_not_stored_and_keeps_the_place(queue, annotator):
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    current, ahead = lease_of(annotator), ahead_of(annotator)
    Assignment.objects.filter(pk=current.pk).update(outcome=Outcome.EXPIRED)  # the hold ended
    html = post_label(client, queue, current, **HTMX).content.decode()
    assert "not stored: Your hold on that item ended" in html and 'class="error refused"' in html
    assert f'data-lease="{ahead.pk}"' in html  # the item the page went on to is still theirs
    assert not Label.objects.exists()


def test_release_gives_back_the_lease_ahead(queue, annotator, annotator2):
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    current, ahead = lease_of(annotator), ahead_of(annotator)
    release = reverse("annotations:release", args=[queue.pk])
    assert client.post(release, {"assignment": current.pk}).status_code == 409  # not ahead
    assert client.post(release, {"assignment": "x"}).status_code == 400
    queue.members.add(annotator2)
    assert signed_in(annotator2).post(release, {"assignment": ahead.pk}).status_code == 409
    assert client.post(release, {"assignment": ahead.pk}).status_code == 204
    assert Assignment.objects.get(pk=ahead.pk).outcome == Outcome.RELEASED
    assert Assignment.objects.get(pk=current.pk).outcome == Outcome.OPEN
    assert client.post(release, {"assignment": ahead.pk}).status_code == 409  # once


def test_a_reload_renews_the_lease_ahead(queue, annotator):
    client = signed_in(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    current, ahead = lease_of(annotator), ahead_of(annotator)
    client.get(reverse("annotations:label", args=[queue.pk]))
    assert lease_of(annotator).pk == current.pk
    assert ahead_of(annotator).pk != ahead.pk
    assert Assignment.objects.get(pk=ahead.pk).outcome == Outcome.RELEASED
