import pytest
from django.test import Client
from django.urls import reverse

from annotations.models import Assignment, Label
from tests.annotations.factories import make_queue, pairwise
from tests.factories import PASSWORD


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def queue(annotator):
    return make_queue(name="Helpfulness", members=[annotator], items=pairwise(3))


def test_a_researcher_sees_each_item_as_annotators_do_and_nothing_is_stored(queue, researcher):
    client = signed_in(researcher)
    url = reverse("annotations:preview", args=[queue.pk])
    first = client.get(url)
    assert first.status_code == 200
    page = first.content.decode()
    assert "prompt 0" in page and "Nothing here is claimed or stored" in page
    items = list(queue.items.order_by("pk"))
    assert f'href="?item={items[1].pk}" rel="next"' in page
    second = client.get(url, {"item": items[2].pk}).content.decode()
    assert "prompt 2" in second and 'rel="next"' not in second
    assert f'href="?item={items[1].pk}" rel="prev"' in second
    assert "<form" not in second.split("<main")[1].split("</main>")[0]
    assert not Assignment.objects.exists() and not Label.objects.exists()


def test_model_text_is_escaped_in_the_preview(researcher, annotator):
    queue = make_queue(members=[annotator], items=pairwise(1, prefix="<script>x</script>"))
    page = signed_in(researcher).get(reverse("annotations:preview", args=[queue.pk]))
    assert b"<script>x</script>" not in page.content
    assert b"&lt;script&gt;x&lt;/script&gt;" in page.content


@pytest.mark.parametrize("item", ["abc", "0", str(2**63), "999999"])
def test_an_unknown_item_is_404(queue, researcher, item):
    response = signed_in(researcher).get(
        reverse("annotations:preview", args=[queue.pk]), {"item": item}
    )
    assert response.status_code == 404


def test_another_queues_item_is_404(queue, researcher, annotator):
    other = make_queue(members=[annotator], items=pairwise(1))
    response = signed_in(researcher).get(
        reverse("annotations:preview", args=[queue.pk]), {"item": other.items.get().pk}
    )
    assert response.status_code == 404


def test_annotators_get_403_and_posts_are_refused(queue, annotator, researcher):
    url = reverse("annotations:preview", args=[queue.pk])
    assert signed_in(annotator).get(url).status_code == 403
    assert signed_in(researcher).post(url).status_code == 405
