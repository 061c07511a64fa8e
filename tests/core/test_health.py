import json

import pytest
from django.test import Client
from django.urls import reverse


@pytest.mark.django_db
def test_healthz_is_503_without_a_worker(redis_server):
    response = Client().get(reverse("healthz"))
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["ok"] is False
    assert body["database"]["ok"] is True
    assert body["redis"]["ok"] is True
    assert body["workers"]["ok"] is False
    assert "no Celery worker answered" in body["workers"]["detail"]


@pytest.mark.worker
@pytest.mark.django_db
def test_healthz_is_200_with_everything_up(celery_worker_process):
    response = Client().get(reverse("healthz"))
    body = json.loads(response.content)
    assert response.status_code == 200, body
    assert body["ok"] is True and body["workers"]["ok"] is True


@pytest.mark.django_db
def test_healthz_reports_redis_down(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get(reverse("healthz"))
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["redis"]["ok"] is False
    assert body["database"]["ok"] is True


@pytest.mark.django_db
def test_healthz_refuses_post():
    assert Client().post(reverse("healthz")).status_code == 405
