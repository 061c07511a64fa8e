import pytest
from django.test import Client
from django.urls import reverse

from llm.models import ModelConfig, ModelTrial, TrialStatus
from tests.factories import ModelConfigFactory, ModelTrialFactory
from tests.helpers import signed_in


@pytest.fixture
def config(db):
    return ModelConfigFactory(name="greedy smol")


def pages(config) -> dict[str, str]:
    return {
        "list": reverse("llm:config_list"),
        "new": reverse("llm:config_create"),
        "detail": reverse("llm:config_detail", args=[config.pk]),
    }


@pytest.mark.parametrize("page", ["list", "new", "detail"])
@pytest.mark.parametrize(
    ("who", "status"), [("annotator", 403), ("outsider", 403), ("researcher", 200), ("admin", 200)]
)
def test_model_pages_are_for_researchers(page, who, status, users, config):
    assert signed_in(users[who]).get(pages(config)[page]).status_code == status


@pytest.mark.parametrize("page", ["list", "new", "detail"])
def test_anonymous_goes_to_login(page, config):
    response = Client().get(pages(config)[page])
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_list_refuses_post(researcher, config):
    assert signed_in(researcher).post(reverse("llm:config_list")).status_code == 405


def test_bundled_config_exists_after_migrate(db):
    bundled = ModelConfig.objects.get(name="SmolLM2-135M-Instruct (bundled)")
    assert bundled.model == "bundled:smollm2-135m-instruct"


def test_create_a_config(researcher):
    response = signed_in(researcher).post(
        reverse("llm:config_create"),
        {
            "name": "smol greedy",
            "backend": "transformers",
            "model": "bundled:smollm2-135m-instruct",
            "temperature": "0",
            "top_p": "1",
            "max_new_tokens": "32",
            "frequency_penalty": "0.5",
            "presence_penalty": "0",
            "timeout_s": "60",
            "stop_sequences": "\\n\\n\nEND",
        },
    )
    config = ModelConfig.objects.get(name="smol greedy")
    assert response.status_code == 302
    assert config.created_by == researcher
    assert config.stop_sequences == ["\n\n", "END"]
    assert config.generation_params().stop == ("\n\n", "END")
    assert config.generation_params().frequency_penalty == 0.5


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model", "/nowhere/model", "does not exist"),
        ("model", "bundled:gpt-17", "unknown bundled model"),
        ("model", "someone/not-downloaded", "offline Hugging Face cache"),
        ("temperature", "7", "less than or equal to 2.0"),
        ("max_new_tokens", "0", "greater than or equal to 1"),
        ("base_url", "http://127.0.0.1:9/v1", "Only the openai backend"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(researcher, field, value, message):
    data = {
        "name": "bad",
        "backend": "transformers",
        "model": "bundled:smollm2-135m-instruct",
        "temperature": "0.7",
        "top_p": "0.9",
        "max_new_tokens": "16",
        "timeout_s": "60",
        field: value,
    }
    response = signed_in(researcher).post(reverse("llm:config_create"), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ModelConfig.objects.filter(name="bad").exists()


def test_unreachable_server_is_refused(researcher):
    data = {
        "name": "remote",
        "backend": "openai",
        "model": "whatever",
        "base_url": "http://127.0.0.1:9/v1",
        "temperature": "0.7",
        "top_p": "0.9",
        "max_new_tokens": "16",
        "timeout_s": "60",
    }
    response = signed_in(researcher).post(reverse("llm:config_create"), data)
    assert "Cannot reach an OpenAI-compatible server at http://127.0.0.1:9/v1" in (
        response.content.decode()
    )
    assert not ModelConfig.objects.filter(name="remote").exists()


def test_try_it_queues_a_trial_after_commit(researcher, config, django_capture_on_commit_callbacks):
    client = signed_in(researcher)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("llm:config_try", args=[config.pk]),
            {"prompt": "Say <b>hi</b>"},
            headers={"HX-Request": "true"},
        )
    trial = ModelTrial.objects.get()
    assert response.status_code == 200
    assert len(callbacks) == 1  # the generation task, sent only once the row is committed
    assert trial.status == TrialStatus.QUEUED and trial.user == researcher
    html = response.content.decode()
    assert f'ws-connect="/ws/llm/trials/{trial.pk}/"' in html
    assert "Say &lt;b&gt;hi&lt;/b&gt;" in html


def test_try_it_refuses_an_empty_prompt(researcher, config):
    response = signed_in(researcher).post(
        reverse("llm:config_try", args=[config.pk]),
        {"prompt": "   "},
        headers={"HX-Request": "true"},
    )
    assert "Write a prompt first." in response.content.decode()
    assert response["HX-Retarget"] == "#try-form"
    assert not ModelTrial.objects.exists()


def test_try_it_refuses_get_and_annotators(users, config):
    url = reverse("llm:config_try", args=[config.pk])
    assert signed_in(users["researcher"]).get(url).status_code == 405
    assert signed_in(users["annotator"]).post(url, {"prompt": "hi"}).status_code == 403
    assert not ModelTrial.objects.exists()


def test_detail_lists_only_my_trials(users, config):
    ModelTrialFactory(config=config, user=users["admin"], prompt="admin's secret prompt")
    ModelTrialFactory(config=config, user=users["researcher"], prompt="my prompt")
    html = signed_in(users["researcher"]).get(reverse("llm:config_detail", args=[config.pk]))
    assert "my prompt" in html.content.decode()
    assert "admin&#x27;s secret prompt" not in html.content.decode()
