"""The reward-model API: scores for policy training, the checkpoint, retrain; bad input."""

from __future__ import annotations

import io
import zipfile
from unittest import mock

import pytest

from rewards.models import RewardModel, Status
from tests.helpers import Api
from tests.rewards.factories import run_now, trained_model

PAIRS = [
    {"prompt": "Explain the tides.", "response": "Happy to help! Here is how the tides work."},
    {"prompt": "Explain the tides.", "response": "Ugh. Look it up yourself."},
    {"prompt": "Explain fog. " * 200, "response": "A long prompt is truncated, not dropped."},
]


@pytest.fixture
def trained(annotator):
    reward_model = trained_model(annotator)
    version = run_now(reward_model)
    assert version.status == Status.ACTIVE
    return reward_model


def test_scores_match_the_downloaded_checkpoint_loaded_by_transformers(
    trained, researcher, tmp_path
):
    api = Api(researcher)
    response = api.post(f"/reward-models/{trained.pk}/score", {"items": PAIRS})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == 1 and len(body["rewards"]) == 3
    good, rude, _ = body["rewards"]
    assert good > rude  # the property the labels taught

    download = api.get(f"/reward-models/{trained.pk}/checkpoint")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    data = b"".join(download.streaming_content)
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path / "download")
    [folder] = list((tmp_path / "download").iterdir())

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.num_labels == 1
    model.eval()
    with torch.inference_mode():
        batch = tokenizer(
            [p["prompt"] for p in PAIRS],
            [p["response"] for p in PAIRS],
            truncation=True,
            max_length=128,
            padding=True,
            return_tensors="pt",
        )
        logits = model(**batch).logits[:, 0].tolist()
    assert logits == pytest.approx(body["rewards"], abs=1e-4)


def test_detail_lists_versions_with_metrics(trained, researcher):
    body = Api(researcher).get(f"/reward-models/{trained.pk}").json()
    assert body["active_version"] == 1
    assert body["readiness"] == {"ready": True, "labels_needed": 0, "train_pairs": 42,
                                 "heldout_pairs": 18, "min_train_pairs": 20,
                                 "min_heldout_pairs": 8}  # fmt: skip
    [version] = body["versions"]
    assert version["status"] == "active" and version["heldout_accuracy"] > 0.8
    heldout = version["heldout"]
    assert heldout["n"] == version["heldout_pairs"] == 18  # 30 % of 60 items
    assert heldout["k"] / heldout["n"] == pytest.approx(heldout["value"])
    assert 0.5 < heldout["low"] <= heldout["value"] <= heldout["high"] <= 1
    assert heldout["method"] == "Wilson 95 % interval" and version["baseline"] is None
    assert version["label_count"] == 60 and len(version["label_hash"]) == 64
    listed = Api(researcher).get("/reward-models/").json()
    assert [rm["id"] for rm in listed] == [trained.pk]


def test_no_active_version_is_409_and_unknown_is_404(db, researcher):
    reward_model = RewardModel.objects.create(name="empty")
    api = Api(researcher)
    response = api.post(f"/reward-models/{reward_model.pk}/score", {"items": PAIRS[:1]})
    assert response.status_code == 409 and "no active version" in response.json()["detail"]
    assert api.get(f"/reward-models/{reward_model.pk}/checkpoint").status_code == 409
    assert api.post("/reward-models/999999/score", {"items": PAIRS[:1]}).status_code == 404
    assert api.get("/reward-models/999999").status_code == 404


def test_not_enough_labels_is_the_reward_models_state_in_the_api(annotator, researcher):
    from tests.rewards.factories import (
        add_items,
        label_all,
        preference_items,
        preference_queue,
        reward_model_for,
    )

    queue = preference_queue(members=[annotator])
    label_all(queue, annotator, add_items(queue, preference_items(10)))
    reward_model = reward_model_for(queue, heldout_percent=20)
    api = Api(researcher)
    body = api.get(f"/reward-models/{reward_model.pk}").json()
    assert body["readiness"] == {"ready": False, "labels_needed": 26, "train_pairs": 8,
                                 "heldout_pairs": 2, "min_train_pairs": 20,
                                 "min_heldout_pairs": 8}  # fmt: skip
    assert body["versions"] == []
    listed = api.get("/reward-models/").json()
    assert listed[0]["readiness"]["labels_needed"] == 26
    response = api.post(f"/reward-models/{reward_model.pk}/retrain", {"speed": "fast"})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Not enough labels yet: 26 more labels needed")
    assert not reward_model.versions.exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"items": []},
        {"items": [{"prompt": "x"}]},
        {"items": [{"prompt": "x", "response": 3}]},
        {"items": [{"prompt": "x", "response": "y"}] * 257},
        {"items": [{"prompt": "x" * 50_001, "response": "y"}]},
        {"items": [{"prompt": "x\u0000", "response": "y"}]},
        {"items": [{"prompt": "x", "response": "y", "extra": 1}]},
        {"items": [{"prompt": "x", "response": "y"}], "extra": 1},
    ],
)
def test_bad_score_requests_are_422_json(db, researcher, body):
    reward_model = RewardModel.objects.create(name="rm")
    response = Api(researcher).post(f"/reward-models/{reward_model.pk}/score", body)
    assert response.status_code == 422
    found = response.json()
    assert isinstance(found["detail"], str) and found["errors"]
    assert all(set(problem) == {"field", "message"} for problem in found["errors"])


@pytest.mark.parametrize("bad_id", ["0", "-1", str(2**63), "abc"])
def test_out_of_range_ids_are_4xx(db, researcher, bad_id):
    response = Api(researcher).get(f"/reward-models/{bad_id}")
    assert response.status_code in (404, 422)
    assert "detail" in response.json()


def test_roles_are_checked(db, users):
    reward_model = RewardModel.objects.create(name="rm")
    for who in ("annotator", "outsider"):
        api = Api(users[who])
        assert api.get("/reward-models/").status_code == 403
        response = api.post(f"/reward-models/{reward_model.pk}/score", {"items": PAIRS[:1]})
        assert response.status_code == 403
    assert Api().get("/reward-models/").status_code == 401


def test_retrain_queues_once(db, researcher, django_capture_on_commit_callbacks, settings):
    # No minimums: this is about queueing (not enough labels: below).
    settings.REWARD_MIN_TRAIN_PAIRS, settings.REWARD_MIN_HELDOUT_PAIRS = 0, 0
    reward_model = RewardModel.objects.create(name="rm")
    api = Api(researcher)
    with (
        mock.patch("rewards.tasks.reward_training_task.delay") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        first = api.post(f"/reward-models/{reward_model.pk}/retrain", {"speed": "fast"})
        again = api.post(f"/reward-models/{reward_model.pk}/retrain", {"speed": "full"})
    assert first.status_code == 202 and first.json()["status"] == "queued"
    assert again.status_code == 409
    assert enqueue.call_count == 1
    bad = api.post(f"/reward-models/{reward_model.pk}/retrain", {"speed": "medium"})
    assert bad.status_code == 422
    assert reward_model.versions.count() == 1


def test_malformed_json_is_400_and_changes_nothing(db, researcher):
    reward_model = RewardModel.objects.create(name="rm")
    api = Api(researcher)
    for path in ("score", "retrain"):
        response = api.client.post(
            f"/api/reward-models/{reward_model.pk}/{path}", "{not json",
            content_type="application/json", **api._headers(),
        )  # fmt: skip
        assert response.status_code == 400 and isinstance(response.json()["detail"], str)
    assert not reward_model.versions.exists()


# --- policy runs (/api/policy-runs/) --------------------------------------------------------
@pytest.fixture
def policy_world(annotator, settings, tmp_path):
    from tests.llm.training_data import bundled_config
    from tests.rewards.factories import add_items, label_all, preference_items, preference_queue

    settings.LLM_TRAINING_MIN_ROWS = 4
    settings.LLM_TRAINED_MODELS_DIR = tmp_path / "trained"
    queue = preference_queue(members=[annotator], name="prefs")
    label_all(queue, annotator, add_items(queue, preference_items(6, seed=1)))
    with mock.patch("llm.tasks.training_run_task.delay"):
        yield {"queue": queue, "parent": bundled_config()}


def policy_body(world, **overrides):
    body = {"kind": "dpo", "parent_config": world["parent"].pk, "name": "preferred",
            "queue": world["queue"].pk, "max_steps": 1, "beta": 0.2}  # fmt: skip
    body.update(overrides)
    return body


def test_a_researcher_starts_a_dpo_run_through_the_api(policy_world, researcher):
    api = Api(researcher)
    response = api.post("/policy-runs/", policy_body(policy_world))
    assert response.status_code == 202, response.content
    run = response.json()
    assert run["kind"] == "dpo" and run["status"] == "queued" and run["row_count"] == 6
    assert run["hyperparameters"]["beta"] == 0.2 and run["report"] is None
    assert run["parent_config"] == policy_world["parent"].pk
    assert api.get(f"/training-runs/{run['id']}").json()["dataset_hash"] == run["dataset_hash"]


def test_a_gold_reward_model_that_is_the_proxy_or_untrained_is_refused(policy_world, researcher):
    from llm.models import TrainingRun
    from tests.rewards.factories import reward_model_for

    untrained = reward_model_for(policy_world["queue"], name="untrained")
    api = Api(researcher)
    body = policy_body(policy_world, reward_model=untrained.pk, gold_model=untrained.pk)
    response = api.post("/policy-runs/", body)
    assert response.status_code == 400 and "is the proxy itself" in response.json()["detail"]
    response = api.post("/policy-runs/", policy_body(policy_world, gold_model=untrained.pk))
    assert response.status_code == 400
    assert "has no active version to score with" in response.json()["detail"]
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        ({"kind": "rejection-sampling"}, 400, "choose one with an active version"),
        ({"kind": "sft-distil"}, 422, ""),
        ({"n": 65}, 422, ""),
        ({"n": 1}, 422, ""),
        ({"n": "4"}, 422, ""),
        ({"queue": 999_999}, 404, "No such queue"),
        ({"parent_config": 999_999}, 404, "No such model config"),
        ({"reward_model": 999_999}, 404, "No such reward model"),
        ({"gold_model": 999_999}, 404, "No such gold reward model"),
        ({"gold_model": 0}, 422, ""),
        ({"extra": 1}, 422, ""),
    ],
)
def test_bad_policy_runs_are_refused_with_a_problem_body(
    policy_world, researcher, change, status, detail
):
    from llm.models import TrainingRun

    response = Api(researcher).post("/policy-runs/", policy_body(policy_world, **change))
    assert response.status_code == status, response.content
    problem = response.json()
    assert detail in problem["detail"] and isinstance(problem["errors"], list)
    assert not TrainingRun.objects.exists()


def test_a_server_parent_and_a_queue_without_pairs_are_refused(policy_world, researcher):
    from llm.models import TrainingRun
    from tests.llm.training_data import openai_config
    from tests.rewards.factories import preference_queue

    api = Api(researcher)
    server = openai_config()
    response = api.post("/policy-runs/", policy_body(policy_world, parent_config=server.pk))
    assert response.status_code == 400
    assert "training needs a local transformers model" in response.json()["detail"]
    empty = preference_queue(members=[], name="empty")
    response = api.post("/policy-runs/", policy_body(policy_world, queue=empty.pk))
    assert response.status_code == 400 and "no preference pairs" in response.json()["detail"]
    assert not TrainingRun.objects.exists()


def test_annotators_may_not_start_policy_runs(policy_world, annotator):
    from llm.models import TrainingRun

    assert Api(annotator).post("/policy-runs/", policy_body(policy_world)).status_code == 403
    assert not TrainingRun.objects.exists()
