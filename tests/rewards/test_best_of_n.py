"""Best-of-n experiments: bad input refused with nothing started, the run's rows and analysis
(synthetic scorers, in process), the pages, the export; and an end-to-end run on the bundled
policy and real reward-model checkpoints with a real worker."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from unittest import mock

import pytest
from django.urls import reverse

from llm.backends.base import Completion, Usage
from rewards.best_of_n import (
    ExperimentInvalid,
    best_of_n_run,
    best_of_n_start,
    experiment_analysis,
    jsonl_prompts,
    prompt_batches,
    queue_prompts,
)
from rewards.models import BestOfNExperiment, BestOfNSample, BestOfNScore, ExperimentStatus
from rewards.services import MARKER
from tests.factories import ModelConfigFactory
from tests.helpers import wait_for
from tests.rewards.factories import (
    active_version,
    add_items,
    label_all,
    preference_items,
    preference_queue,
    reward_model_for,
    run_now,
)

PROMPTS = ["Explain the tides.", "Explain rainbows.", "Explain rust.", "Explain fog."]


def _version_with_checkpoint(queue, tmp_path: Path, name: str, number: int = 1):
    reward_model = reward_model_for(queue, name=name)
    version = active_version(reward_model, number)
    folder = tmp_path / f"{name}-v{number}"
    folder.mkdir()
    (folder / MARKER).write_text("{}")
    version.artifact_path = str(folder)
    version.save(update_fields=["artifact_path"])
    return version


@pytest.fixture
def setup(db, annotator, tmp_path):
    queue = preference_queue(members=[annotator])
    add_items(queue, preference_items(6, seed=1))
    proxy = _version_with_checkpoint(queue, tmp_path, "proxy")
    gold = _version_with_checkpoint(queue, tmp_path, "gold")
    return {"queue": queue, "proxy": proxy, "gold": gold, "policy": ModelConfigFactory()}


def _start(setup, researcher, **overrides):
    fields = {
        "name": "bon", "policy": setup["policy"], "prompts": PROMPTS, "prompt_source": "test",
        "samples_per_prompt": 8, "temperature": 1.0, "seed": 3, "max_new_tokens": 8,
        "proxies": [setup["proxy"]], "gold": setup["gold"], "user": researcher,
    }  # fmt: skip
    fields.update(overrides)
    return best_of_n_start(**fields)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"samples_per_prompt": 65}, "between 2 and 64"),
        ({"samples_per_prompt": 1}, "between 2 and 64"),
        ({"prompts": []}, "no prompts"),
        ({"prompts": ["  ", ""]}, "no prompts"),
        ({"proxies": []}, "at least one proxy"),
    ],
)
def test_bad_input_is_refused_and_nothing_starts(setup, researcher, overrides, message):
    with (
        mock.patch("rewards.best_of_n._enqueue") as enqueue,
        pytest.raises(ExperimentInvalid, match=message),
    ):
        _start(setup, researcher, **overrides)
    assert not enqueue.called
    assert not BestOfNExperiment.objects.exists()


def test_a_gold_that_is_also_a_proxy_is_refused(setup, researcher):
    with (
        mock.patch("rewards.best_of_n._enqueue") as enqueue,
        pytest.raises(ExperimentInvalid, match="also a proxy"),
    ):
        _start(setup, researcher, proxies=[setup["proxy"], setup["gold"]])
    assert not enqueue.called and not BestOfNExperiment.objects.exists()


def test_a_version_without_its_checkpoint_is_refused(setup, researcher):
    (Path(setup["gold"].artifact_path) / MARKER).unlink()
    with pytest.raises(ExperimentInvalid, match="no checkpoint"):
        _start(setup, researcher)
    assert not BestOfNExperiment.objects.exists()


def test_prompt_sets_from_a_queue_and_a_jsonl_file(setup):
    prompts = queue_prompts(queue=setup["queue"])
    assert len(prompts) == 6 and prompts[0].startswith("Explain ")
    good = b'{"prompt": "One?"}\n\n{"prompt": "Two?"}\n'
    assert jsonl_prompts(good) == ["One?", "Two?"]
    with pytest.raises(ExperimentInvalid, match="Line 2"):
        jsonl_prompts(b'{"prompt": "One?"}\n{"text": "no prompt"}\n')
    with pytest.raises(ExperimentInvalid, match="Line 1: not JSON"):
        jsonl_prompts(b"prompt: hi\n")


def test_batches_fill_64_rows():
    assert prompt_batches(32, 64) == [[i] for i in range(32)]
    assert prompt_batches(10, 16) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


class FakeBackend:
    """Completions of a seeded random length (the policy's spread), one generate_batch per
    call: what the run asks of a real backend."""

    calls: list[int] = []

    def generate_batch(self, chats, *, params):
        FakeBackend.calls.append(len(chats))
        rng = random.Random(params.seed)
        out = []
        for _ in chats:
            text = "x" * rng.randint(1, 40)
            out.append(Completion(text, Usage(3, len(text), None, 0.1), "stop"))
        return out


def test_a_run_samples_scores_and_fits_with_synthetic_scorers(setup, researcher, monkeypatch):
    """Proxy = length; gold = length up to 20 characters, then less: the gold peaks inside."""
    with mock.patch("rewards.best_of_n._enqueue"):
        experiment = _start(setup, researcher)
    proxy_id = setup["proxy"].pk

    def rewards(*, version, pairs):
        lengths = [len(text) for _, text in pairs]
        if version.pk == proxy_id:
            return [float(n) for n in lengths]
        return [float(n) - 0.05 * max(0, n - 20) ** 2 for n in lengths]

    FakeBackend.calls = []
    monkeypatch.setattr("llm.generation.backend_for", lambda config: FakeBackend())
    monkeypatch.setattr("rewards.scoring.version_rewards", rewards)
    best_of_n_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DONE, experiment.error
    assert FakeBackend.calls == [32]  # 4 prompts × 8 samples in one call
    assert BestOfNSample.objects.filter(experiment=experiment).count() == 32
    assert BestOfNScore.objects.filter(sample__experiment=experiment).count() == 64
    (record,) = experiment_analysis(experiment)
    analysis = record.analysis
    assert [p.n for p in analysis.points] == [1, 2, 4, 8]
    proxy_curve = [p.proxy.value for p in analysis.points]
    assert proxy_curve == sorted(proxy_curve) and proxy_curve[-1] > 0
    assert analysis.fit.alpha_proxy.value > 0
    assert experiment.percent == 100
    # A second delivery of the task finds nothing to claim.
    best_of_n_run(experiment_id=experiment.pk)
    assert BestOfNSample.objects.filter(experiment=experiment).count() == 32


def test_a_failing_policy_fails_the_experiment_with_its_message(setup, researcher, monkeypatch):
    from llm.backends.base import ModelUnavailableError

    with mock.patch("rewards.best_of_n._enqueue"):
        experiment = _start(setup, researcher)

    def unavailable(config):
        raise ModelUnavailableError("no such checkpoint", config_name=config.name)

    monkeypatch.setattr("llm.generation.backend_for", unavailable)
    best_of_n_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FAILED
    assert "no such checkpoint" in experiment.error and experiment.analysis == []


# --- pages ----------------------------------------------------------------------------------
def test_pages_are_for_researchers_only(client, setup, annotator):
    client.force_login(annotator)
    for name in ("rewards:experiments", "rewards:experiment_create"):
        assert client.get(reverse(name)).status_code in (302, 403)


def test_the_form_refuses_n_above_the_cap_and_gold_equal_to_proxy(client, setup, researcher):
    client.force_login(researcher)
    url = reverse("rewards:experiment_create")
    assert client.get(url).status_code == 200
    data = {"name": "x", "policy": setup["policy"].pk, "queue": setup["queue"].pk,
            "samples_per_prompt": 65, "temperature": 1, "seed": 0, "max_new_tokens": 8,
            "proxies": [setup["proxy"].pk], "gold": setup["proxy"].pk}  # fmt: skip
    with mock.patch("rewards.best_of_n._enqueue") as enqueue:
        response = client.post(url, data)
    assert response.status_code == 400
    body = response.content.decode()
    assert "less than or equal to 64" in body and "must not be one of the proxies" in body
    assert not enqueue.called and not BestOfNExperiment.objects.exists()
    assert client.put(url).status_code == 405


def test_the_form_starts_an_experiment_from_a_jsonl_file(
    client, setup, researcher, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(researcher)
    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "<b>Why?</b>"}\n', "application/json")
    data = {"name": "file run", "policy": setup["policy"].pk, "prompts_file": upload,
            "samples_per_prompt": 4, "temperature": 1, "seed": 0, "max_new_tokens": 8,
            "proxies": [setup["proxy"].pk], "gold": setup["gold"].pk}  # fmt: skip
    with (
        mock.patch("rewards.best_of_n._enqueue") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(reverse("rewards:experiment_create"), data)
    experiment = BestOfNExperiment.objects.get()
    assert response.status_code == 302 and enqueue.called
    assert experiment.prompts == ["<b>Why?</b>"] and experiment.prompt_source == "file p.jsonl"
    page = client.get(reverse("rewards:experiment", args=[experiment.pk])).content.decode()
    assert "queued" in page
    empty = SimpleUploadedFile("e.jsonl", b"\n\n", "application/json")
    data["prompts_file"] = empty
    response = client.post(reverse("rewards:experiment_create"), data)
    assert response.status_code == 400 and "no prompts" in response.content.decode()


# --- end to end -----------------------------------------------------------------------------
def _trained(annotator, name, n, seed):
    queue = preference_queue(members=[annotator], name=f"queue {name}")
    label_all(queue, annotator, add_items(queue, preference_items(n, seed=seed, start=seed * 1000)))
    version = run_now(reward_model_for(queue, name=name))
    assert version.artifact_path, version.reason
    return version


@pytest.mark.worker
def test_end_to_end_on_the_bundled_models_with_a_real_worker(
    transactional_db, django_db_serialized_rollback, client, researcher, annotator, start_worker
):
    proxy = _trained(annotator, "proxy 40", 40, seed=1)
    gold = _trained(annotator, "gold 100", 100, seed=2)
    policy = ModelConfigFactory(timeout_s=900)  # 2 cores shared with other test runs
    worker = start_worker(queues="generation")
    experiment = best_of_n_start(
        name="e2e", policy=policy, prompts=PROMPTS[:3], prompt_source="test",
        samples_per_prompt=4, temperature=1.0, seed=1, max_new_tokens=6, proxies=[proxy],
        gold=gold, user=researcher,
    )  # fmt: skip
    from tests.helpers import worker_log

    wait_for(
        lambda: BestOfNExperiment.objects.filter(pk=experiment.pk, status__in=["done", "failed"])
        .first(), timeout=600, what="the experiment", log=worker_log(worker.log_name),
    )  # fmt: skip
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DONE, experiment.error
    samples = BestOfNSample.objects.filter(experiment=experiment)
    assert samples.count() == 12 and all(s.completion_tokens >= 1 for s in samples)
    # Sampled, not repeated: the 4 samples of a prompt differ.
    assert len({s.text for s in samples.filter(prompt_index=0)}) > 1
    (record,) = experiment_analysis(experiment)
    assert [p.n for p in record.analysis.points] == [1, 2, 4]
    client.force_login(researcher)
    page = client.get(reverse("rewards:experiment", args=[experiment.pk])).content.decode()
    assert 'id="bon-plot"' in page and "polyline" in page and "bootstrap over prompts" in page
    export = client.get(reverse("rewards:experiment_export", args=[experiment.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][0] == "prompt_index" and len(rows) == 1 + 12 * 2
    assert {row[7] for row in rows[1:]} == {"proxy", "gold"}
    json.dumps(experiment.analysis)  # stored as plain JSON


def test_a_lost_worker_leaves_a_retryable_experiment_and_a_live_one_is_not_retried(
    setup, researcher, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from rewards.best_of_n import STALE_AFTER, best_of_n_retry

    with mock.patch("rewards.best_of_n._enqueue"):
        experiment = _start(setup, researcher)
    now = timezone.now()
    BestOfNExperiment.objects.filter(pk=experiment.pk).update(
        status=ExperimentStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    with pytest.raises(ExperimentInvalid, match="worker is gone"):
        best_of_n_retry(experiment_id=experiment.pk)
    BestOfNSample.objects.create(experiment=experiment, prompt_index=0, sample_index=0, text="x")
    BestOfNExperiment.objects.filter(pk=experiment.pk).update(
        heartbeat_at=now - STALE_AFTER - timedelta(seconds=1)
    )
    with (
        mock.patch("rewards.best_of_n._enqueue") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        best_of_n_retry(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.QUEUED and enqueue.called
    assert not BestOfNSample.objects.filter(experiment=experiment).exists()
