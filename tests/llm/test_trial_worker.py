import socket

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from llm.models import TrialStatus
from llm.trial_worker import model_trial_run, trial_group_name
from tests.factories import ModelConfigFactory, ModelTrialFactory


def listen(group: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def drain(channel: str) -> list[dict]:
    layer = get_channel_layer()
    events = []
    while True:
        event = async_to_sync(layer.receive)(channel)
        events.append(event)
        if event["type"] == "stream.end":
            return events


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_trial_streams_deltas_that_add_up_to_the_saved_text(researcher):
    trial = ModelTrialFactory(user=researcher, prompt="Count from one to ten in words.")
    channel = listen(trial_group_name(trial.pk))

    model_trial_run(trial_id=trial.pk)

    trial.refresh_from_db()
    events = drain(channel)
    deltas = [event for event in events if event["type"] == "stream.delta"]
    assert trial.status == TrialStatus.DONE, trial.error
    assert len(deltas) > 3  # streamed, not delivered at the end
    assert "".join(delta["text"] for delta in deltas) == trial.text
    offsets = [delta["offset"] for delta in deltas]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert 0 < trial.completion_tokens <= 24
    assert trial.prompt_tokens > 5 and trial.total_s > 0 and trial.time_to_first_token_s > 0


def test_a_second_delivery_does_nothing(researcher):
    trial = ModelTrialFactory(user=researcher, config=ModelConfigFactory(max_new_tokens=4))
    model_trial_run(trial_id=trial.pk)
    trial.refresh_from_db()
    finished_text, finished_at = trial.text, trial.finished_at

    model_trial_run(trial_id=trial.pk)

    trial.refresh_from_db()
    assert (trial.text, trial.finished_at) == (finished_text, finished_at)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model": "/no/such/checkpoint"}, "does not exist"),
        (
            {"backend": "openai", "model": "x", "base_url": f"http://127.0.0.1:{closed_port()}/v1"},
            "127.0.0.1",
        ),
    ],
)
def test_a_failing_config_marks_the_trial_failed_with_the_reason(researcher, config, message):
    trial = ModelTrialFactory(user=researcher, config=ModelConfigFactory(name="broken", **config))
    channel = listen(trial_group_name(trial.pk))

    model_trial_run(trial_id=trial.pk)

    trial.refresh_from_db()
    assert trial.status == TrialStatus.FAILED
    assert message in trial.error
    assert trial.error.startswith("[broken] ")  # names the config
    assert drain(channel)[-1]["type"] == "stream.end"


def test_a_trial_reports_its_phases_and_a_cut_at_the_token_cap(researcher):
    from django.urls import reverse

    from tests.helpers import signed_in

    config = ModelConfigFactory(max_new_tokens=4)
    trial = ModelTrialFactory(user=researcher, config=config, prompt="Tell a long story.")
    channel = listen(trial_group_name(trial.pk))
    page = reverse("llm:config_detail", kwargs={"pk": config.pk})
    assert 'data-phase="queued"' in signed_in(researcher).get(page).content.decode()

    model_trial_run(trial_id=trial.pk)

    events = drain(channel)
    kinds = [event["type"] for event in events]
    # The worker says when it has the trial (loading the model) and when generation starts.
    assert kinds[:2] == ["trial.changed", "trial.changed"] and kinds[-1] == "stream.end"
    assert "progress" in next(e for e in events if e["type"] == "stream.delta")
    trial.refresh_from_db()
    assert trial.started_at <= trial.generating_at <= trial.finished_at
    assert (trial.finish_reason, trial.completion_tokens) == ("length", 4)
    html = signed_in(researcher).get(page).content.decode()
    assert "… [cut at 4-token limit]</p>" in html
    assert "cut at" not in trial.text
