"""The webhooks API (core/api.py): the page's services behind a bearer token."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from core.models import WebhookDelivery, WebhookEndpoint
from tests.helpers import Api


def test_a_researcher_registers_reads_disables_and_redelivers(
    db: None, researcher: User, django_capture_on_commit_callbacks: Any
) -> None:
    api = Api(researcher)
    made = api.post(
        "/webhooks/", {"url": "https://receiver.example.org/h", "events": ["tree.done"]}
    )
    assert made.status_code == 201, made.content
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == ["tree.done"]
    assert [e["id"] for e in api.get("/webhooks/").json()] == [endpoint["id"]]
    delivery = WebhookDelivery.objects.create(
        endpoint_id=endpoint["id"], event="tree.done", body="{}", status="failed", attempts=6
    )
    off = api.post(f"/webhooks/{endpoint['id']}/enabled", {"enabled": False})
    assert off.json()["enabled"] is False
    path = f"/webhooks/{endpoint['id']}/deliveries/{delivery.pk}/redeliver"
    refused = api.post(path)
    assert refused.status_code == 409 and "Enable the endpoint first" in refused.json()["detail"]
    api.post(f"/webhooks/{endpoint['id']}/enabled", {"enabled": True})
    with django_capture_on_commit_callbacks(execute=False):
        again = api.post(path)
    assert again.status_code == 202
    assert again.json()["status"] == "pending" and again.json()["attempts"] == 0
    log = api.get(f"/webhooks/{endpoint['id']}/deliveries").json()
    assert [d["idempotency_key"] for d in log] == [str(delivery.idempotency_key)]


def test_a_loop_or_another_scheme_is_refused_with_a_problem(db: None, researcher: User) -> None:
    api = Api(researcher)
    for url, why in (("http://testserver/api/", "in a loop"), ("ftp://x.org/", "pattern")):
        refused = api.post("/webhooks/", {"url": url, "events": ["tree.done"]})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "url"
        assert why in refused.json()["errors"][0]["message"]
    assert not WebhookEndpoint.objects.exists()


def test_annotators_and_other_researchers_are_refused(
    db: None, researcher: User, annotator: User
) -> None:
    endpoint = WebhookEndpoint.objects.create(
        owner=researcher, name="x", url="https://r.example.org/", events=["tree.done"], secret="s"
    )
    assert Api(annotator).get("/webhooks/").status_code == 403
    other = User.objects.create_user("researcher2")
    other.groups.add(*researcher.groups.all())
    assert Api(other).get(f"/webhooks/{endpoint.pk}").status_code == 404
    assert Api(other).get("/webhooks/").json() == []
