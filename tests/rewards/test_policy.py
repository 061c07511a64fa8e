"""Policy training from a queue (rewards/policy.py): DPO on a queue's preference pairs and
rejection sampling on its prompts under a reward model; each refusal creates nothing; the
form; and a rejection-sampling run with a real worker and a real reward-model version."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from llm.models import ModelConfig, TrainingKind, TrainingRun, TrainingStatus
from llm.schemas import RejectionSamplingHyperparameters
from llm.tasks import training_run_task
from rewards.models import PolicyRun
from rewards.policy import PolicySettings, policy_run_start
from tests.annotations.factories import make_queue
from tests.helpers import signed_in, wait_for, worker_log
from tests.llm.training_data import bundled_config, openai_config
from tests.rewards.factories import (
    add_items,
    label_all,
    preference_items,
    preference_queue,
    reward_model_for,
    run_now,
    scorable,
)

RUN_TIMEOUT = 2400


@pytest.fixture(autouse=True)
def few_rows(settings: Any, tmp_path: Path) -> None:
    settings.LLM_TRAINING_MIN_ROWS = 4
    settings.LLM_TRAINED_MODELS_DIR = tmp_path / "trained"


@pytest.fixture
def no_worker() -> Any:
    with mock.patch("llm.tasks.training_run_task.delay") as enqueue:
        yield enqueue


def labelled(annotator: Any, n: int = 6, name: str = "prefs") -> Any:
    queue = preference_queue(members=[annotator], name=name)
    label_all(queue, annotator, add_items(queue, preference_items(n, seed=1)))
    return queue


def start(**overrides: Any) -> TrainingRun:
    values: dict[str, Any] = {"kind": TrainingKind.DPO, "name": "policy", "reward_model": None,
                              "settings": PolicySettings(max_steps=1)}  # fmt: skip
    values.update(overrides)
    return policy_run_start(**values)


def test_dpo_trains_on_the_queues_majority_pairs_with_its_lineage(
    db, annotator, researcher, tmp_path, no_worker, django_capture_on_commit_callbacks
):
    queue = labelled(annotator)
    reward_model = scorable(queue, tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        run = start(parent=bundled_config(), queue=queue, reward_model=reward_model,
                    settings=PolicySettings(beta=0.3, max_steps=1), user=researcher)  # fmt: skip
    no_worker.assert_called_once_with(run.pk)
    assert run.kind == TrainingKind.DPO and run.row_count == 6
    assert f"queue {queue.name} (#{queue.pk}): 6 preference pairs" in run.source
    # Chosen is the kind answer the annotator picked, on whichever side it was.
    assert all(pair.chosen.startswith(("Happy", "Great", "Thanks")) for pair in run.typed_pairs)
    hp = run.typed_hyperparameters
    version = reward_model.active_version
    assert hp.beta == 0.3 and hp.reward_version == version.pk and hp.learning_rate == 5e-6
    lineage = PolicyRun.objects.get(run=run)
    assert lineage.queue == queue and lineage.reward_version == version
    assert lineage.gold_version is None and hp.gold_version is None


def test_a_gold_reward_model_is_recorded_beside_the_proxy(db, annotator, tmp_path, no_worker):
    queue = labelled(annotator)
    proxy, gold = scorable(queue, tmp_path), scorable(queue, tmp_path, name="gold")
    parent = bundled_config()
    for kind in (TrainingKind.DPO, TrainingKind.REJECTION_SAMPLING):
        run = start(kind=kind, parent=parent, queue=queue, reward_model=proxy,
                    gold_model=gold, name=f"policy {kind}")  # fmt: skip
        hp = run.typed_hyperparameters
        assert (hp.gold_version, hp.gold_label) == (gold.active_version_id, "gold v1")
        assert hp.reward_version == proxy.active_version_id
        assert PolicyRun.objects.get(run=run).gold_version_id == gold.active_version_id


def test_rejection_sampling_takes_the_queues_prompts_and_the_active_version(
    db, annotator, tmp_path, no_worker
):
    queue = labelled(annotator)
    reward_model = scorable(queue, tmp_path)
    run = start(kind=TrainingKind.REJECTION_SAMPLING, parent=bundled_config(), queue=queue,
                reward_model=reward_model, settings=PolicySettings(n=8))  # fmt: skip
    hp = run.typed_hyperparameters
    assert isinstance(hp, RejectionSamplingHyperparameters)
    assert hp.n == 8 and hp.reward_version == reward_model.active_version_id
    assert hp.reward_label == f"{reward_model.name} v1" and run.row_count == 6
    assert PolicyRun.objects.get(run=run).reward_version_id == reward_model.active_version_id


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("server parent", "training needs a local transformers model"),
        ("no pairs", "has no preference pairs"),
        ("too few pairs", "has 3 preference pairs; a training run needs at least 4"),
        ("likert queue", "compare two responses"),
        ("rs without reward model", "choose one with an active version"),
        ("rs without active version", "choose one with an active version"),
        ("n too small", "between 2 and 64"),
        ("n too large", "between 2 and 64"),
        ("name taken", "already called bundled"),
        ("gold is the proxy", "The gold reward model is the proxy itself"),
        ("gold without active version", "has no active version to score with"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_created(
    db, annotator, tmp_path, no_worker, case, message
):
    parent = bundled_config()
    queue = labelled(annotator)
    fields: dict[str, Any] = {"parent": parent, "queue": queue}
    rs = {"kind": TrainingKind.REJECTION_SAMPLING, "reward_model": scorable(queue, tmp_path)}
    if case == "server parent":
        fields["parent"] = openai_config()
    elif case == "no pairs":
        fields["queue"] = preference_queue(members=[annotator], name="unlabelled")
        add_items(fields["queue"], preference_items(5, seed=2))
    elif case == "too few pairs":
        fields["queue"] = labelled(annotator, n=3, name="three")
    elif case == "likert queue":
        fields["queue"] = make_queue(kind="likert", name="ratings")
    elif case == "rs without reward model":
        fields |= rs | {"reward_model": None}
    elif case == "rs without active version":
        fields |= rs | {"reward_model": reward_model_for(queue, name="untrained")}
    elif case.startswith("n too"):
        n = 1 if case == "n too small" else 65
        fields |= rs | {"settings": PolicySettings(n=n)}
    elif case == "name taken":
        fields["name"] = "bundled"
    elif case == "gold is the proxy":
        fields |= rs | {"gold_model": rs["reward_model"]}
    elif case == "gold without active version":
        fields["gold_model"] = reward_model_for(queue, name="untrained")
    configs = ModelConfig.objects.count()
    with pytest.raises(ValidationError, match=message):
        start(**fields)
    assert not TrainingRun.objects.exists() and not PolicyRun.objects.exists()
    assert ModelConfig.objects.count() == configs
    no_worker.assert_not_called()


def test_the_form_starts_a_run_for_researchers_only(db, annotator, researcher, tmp_path, no_worker):
    queue = labelled(annotator)
    parent = bundled_config()
    url = reverse("rewards:policy_run_create")
    assert signed_in(annotator).get(url).status_code == 403
    client = signed_in(researcher)
    assert client.get(url).status_code == 200
    assert client.delete(url).status_code == 405
    gold = scorable(queue, tmp_path, name="gold")
    data = {"kind": "dpo", "parent": parent.pk, "name": "preferred", "queue": queue.pk,
            "max_length": 128, "max_steps": 1, "gold_model": gold.pk}  # fmt: skip
    response = client.post(url, data)
    run = TrainingRun.objects.get()
    assert run.typed_hyperparameters.gold_version == gold.active_version_id
    assert response.status_code == 302
    assert response["Location"] == reverse("llm:training_run_detail", kwargs={"pk": run.pk})
    assert run.name == "preferred" and run.created_by == researcher


def test_the_form_shows_why_nothing_started(db, annotator, researcher, tmp_path, no_worker):
    queue = labelled(annotator)
    client = signed_in(researcher)
    data = {"kind": "rejection-sampling", "parent": bundled_config().pk, "name": "rs",
            "queue": queue.pk, "max_length": 128, "n": 4}  # fmt: skip
    response = client.post(reverse("rewards:policy_run_create"), data)
    assert response.status_code == 400
    assert "choose one with an active version" in response.content.decode()
    response = client.post(reverse("rewards:policy_run_create"), data | {"n": 65})
    assert response.status_code == 400 and "less than or equal to 64" in response.content.decode()
    reward_model = scorable(queue, tmp_path)
    same = data | {"reward_model": reward_model.pk, "gold_model": reward_model.pk}
    response = client.post(reverse("rewards:policy_run_create"), same)
    assert response.status_code == 400
    assert "The gold reward model is the proxy itself" in response.content.decode()
    assert not TrainingRun.objects.exists()


# --- a real worker --------------------------------------------------------------------------
@pytest.mark.worker
def test_rejection_sampling_with_a_real_worker_and_reward_model(
    transactional_db, django_db_serialized_rollback, annotator, researcher, start_worker,
    tmp_path,
):  # fmt: skip
    trained = preference_queue(members=[annotator], name="rm labels")
    label_all(trained, annotator, add_items(trained, preference_items(40, seed=3)))
    reward_model = reward_model_for(trained, name="kindness")
    version = run_now(reward_model)
    assert version.artifact_path, version.reason
    reward_model.refresh_from_db()
    # The gold: another reward model, trained on other labels.
    other = preference_queue(members=[annotator], name="gold labels")
    label_all(other, annotator, add_items(other, preference_items(40, seed=6, start=1000)))
    gold_model = reward_model_for(other, name="kindness gold")
    gold = run_now(gold_model)
    assert gold.artifact_path, gold.reason
    gold_model.refresh_from_db()
    prompts = preference_queue(members=[annotator], name="prompts")
    add_items(prompts, preference_items(5, seed=4, start=500))
    parent = bundled_config()
    parent.timeout_s = 1800  # 2 cores shared with other test runs
    parent.save(update_fields=["timeout_s"])
    tiny = PolicySettings(n=2, max_steps=1, batch_size=2, max_length=128, learning_rate=1e-5,
                          sample_max_new_tokens=8)  # fmt: skip
    with mock.patch("llm.tasks.training_run_task.delay"):
        run = start(kind=TrainingKind.REJECTION_SAMPLING, parent=parent, name="best of 2",
                    queue=prompts, reward_model=reward_model, gold_model=gold_model,
                    user=researcher, settings=tiny)  # fmt: skip
    private = f"rs-{run.pk}"
    trained_dir = tmp_path / "trained"
    worker: subprocess.Popen[bytes] = start_worker(
        queues=private, LLM_TRAINED_MODELS_DIR=str(trained_dir)
    )
    training_run_task.apply_async((run.pk,), queue=private)
    run = wait_for(
        lambda: TrainingRun.objects.filter(pk=run.pk, status__in=["done", "failed"]).first(),
        timeout=RUN_TIMEOUT, what="the rejection-sampling run",
        log=worker_log(worker.log_name),  # type: ignore[attr-defined]
    )  # fmt: skip
    assert run.status == TrainingStatus.DONE, run.reason
    # One row a prompt (a prompt whose samples all came back empty has none).
    assert run.train_rows >= 1 and run.eval_rows >= 1 and run.train_rows + run.eval_rows <= 5
    report = run.typed_report
    assert report is not None and report.proxy_reward_version == version.pk
    assert report.proxy_new is not None and report.proxy_parent is not None
    assert report.gold_reward_version == gold.pk and report.gold_reward_label == "kindness gold v1"
    assert report.gold_new is not None and report.gold_parent is not None
    assert report.gold_new != report.proxy_new  # scored by the other model
    config = run.result
    assert config is not None and Path(config.model).parent == trained_dir
    lineage = json.loads(Path(config.model, "arbiter-training.json").read_text())
    assert lineage["kind"] == "rejection-sampling"
    assert lineage["hyperparameters"]["n"] == 2
    assert lineage["hyperparameters"]["reward_version"] == version.pk
    assert PolicyRun.objects.get(run=run).reward_version == version
    assert PolicyRun.objects.get(run=run).gold_version == gold
    page = signed_in(researcher).get(reverse("llm:training_run_detail", kwargs={"pk": run.pk}))
    html = page.content.decode()
    assert f"new {report.gold_new:.3f} against parent {report.gold_parent:.3f}" in html
    assert 'Gold reward model</dt><dd id="run-gold-version">kindness gold v1' in html


# --- blind evaluation -----------------------------------------------------------------------
def finished_policy_run(samples: int = 6, name: str = "kinder") -> TrainingRun:
    from llm.schemas import PolicyReport, ReportSample

    parent = bundled_config(f"parent of {name}")
    result = ModelConfig.objects.create(name=name, model=f"/tmp/run-{name}")
    report = PolicyReport(
        prompts=samples, samples_per_prompt=1, kl_mean=0.5, kl_method="m",
        samples=[ReportSample(prompt=f"Explain thing {i}.", new=f"Happy to help with {i}!",
                              parent=f"Whatever, {i}.") for i in range(samples)],
    )  # fmt: skip
    return TrainingRun.objects.create(
        kind=TrainingKind.DPO, name=name, parent=parent, status=TrainingStatus.DONE,
        row_count=8, train_rows=6, eval_rows=2, dataset_hash="ab" * 32, hyperparameters={},
        result=result, report=report.model_dump(mode="json"),
    )  # fmt: skip


def test_a_blind_evaluation_hides_the_sides_and_counts_the_new_policys_wins(
    db, annotator, researcher
):
    from annotations.models import Item
    from rewards.policy import policy_eval_result, policy_eval_start

    run = finished_policy_run()
    evaluation = policy_eval_start(run=run, members=[annotator], user=researcher)
    items = list(Item.objects.filter(queue=evaluation.queue).order_by("external_id"))
    assert len(items) == 6 and evaluation.queue.kind == "pairwise"
    for item in items:
        new_side = evaluation.typed_sides.new[item.pk]
        new = item.payload[f"response_{new_side}"]
        other = item.payload["response_b" if new_side == "a" else "response_a"]
        assert new.startswith("Happy") and other.startswith("Whatever")
        assert set(item.payload) >= {"prompt", "response_a", "response_b"}
        assert "new" not in item.external_id and "parent" not in json.dumps(item.payload)
    # Label: the new policy's response on all but one, which gets a tie.
    answers = {item.external_id: evaluation.typed_sides.new[item.pk] for item in items}
    answers[items[0].external_id] = "tie"
    label_all(evaluation.queue, annotator, answers)
    result = policy_eval_result(evaluation)
    assert (result.wins.k, result.wins.n, result.ties) == (5, 5, 1)
    assert result.wins.low is not None and result.wins.low > 0.5


def test_the_judge_of_a_blind_evaluation_sees_neither_model_nor_which_side_is_new(
    client, db, annotator, researcher
):
    from rewards.policy import policy_eval_start

    run = finished_policy_run()
    evaluation = policy_eval_start(run=run, members=[annotator], user=researcher)
    client.force_login(annotator)
    response = client.get(reverse("annotations:label", args=[evaluation.queue.pk]))
    assert response.status_code == 200
    lowered = response.content.decode().lower()
    assert "happy to help" in lowered and "whatever" in lowered  # the pair is there
    for hidden in (run.name.lower(), run.parent.name.lower(), "new policy", "parent", "dpo"):
        assert hidden not in lowered, hidden


def test_a_blind_evaluation_is_refused_for_unfinished_runs_and_made_once(db, annotator):
    from annotations.models import Queue
    from rewards.models import PolicyEval
    from rewards.policy import policy_eval_start

    run = finished_policy_run()
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING)
    run.refresh_from_db()
    with pytest.raises(ValidationError, match="Only a finished"):
        policy_eval_start(run=run, members=[annotator])
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.DONE, report={})
    run.refresh_from_db()
    with pytest.raises(ValidationError, match="no samples"):
        policy_eval_start(run=run, members=[annotator])
    assert not Queue.objects.exists()
    other = finished_policy_run(name="other")
    policy_eval_start(run=other, members=[annotator])
    with pytest.raises(ValidationError, match="already"):
        policy_eval_start(run=other, members=[annotator])
    assert PolicyEval.objects.count() == Queue.objects.count() == 1


def test_the_evaluation_page_creates_the_queue_and_shows_the_win_rate(db, annotator, researcher):
    run = finished_policy_run()
    url = reverse("rewards:policy_eval", kwargs={"run_pk": run.pk})
    assert signed_in(annotator).get(url).status_code == 403
    client = signed_in(researcher)
    assert client.put(url).status_code == 405
    page = client.get(url).content.decode()
    assert 'id="policy-eval-form"' in page
    assert client.post(url, {}).status_code == 400  # no annotators chosen
    response = client.post(url, {"members": [annotator.pk]})
    assert response.status_code == 302 and response["Location"] == url
    page = client.get(url).content.decode()
    assert 'id="eval-win-rate"' in page and "– (n = 0)" in page and "Wilson" in page
    run_page = client.get(reverse("llm:training_run_detail", kwargs={"pk": run.pk}))
    assert url in run_page.content.decode()
    missing = reverse("rewards:policy_eval", kwargs={"run_pk": run.pk + 99})
    assert client.get(missing).status_code == 404
