"""Training-run services: the rules that refuse bad input (and create nothing), the split,
the stale sweep and the finish that makes the new config."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from llm.models import ModelConfig, TrainingKind, TrainingRun, TrainingStatus
from llm.schemas import (
    DPOHyperparameters,
    PreferenceRow,
    RejectionSamplingHyperparameters,
    TrainingRow,
)
from llm.services import (
    dpo_run_start,
    rejection_sampling_run_start,
    training_rows_hash,
    training_rows_split,
    training_run_finish,
    training_run_retry,
    training_run_start,
    training_runs_fail_stale,
)
from tests.llm.training_data import (
    bundled_config,
    learnable_rows,
    openai_config,
    tiny_hyperparameters,
)


@pytest.fixture(autouse=True)
def trained_dir(settings: Any, tmp_path: Path) -> Path:
    settings.LLM_TRAINED_MODELS_DIR = tmp_path / "trained"
    return settings.LLM_TRAINED_MODELS_DIR


def start(**overrides: Any) -> TrainingRun:
    values: dict[str, Any] = {
        "kind": TrainingKind.SFT_DISTIL, "name": "distilled", "rows": learnable_rows(),
        "hyperparameters": tiny_hyperparameters(),
    }  # fmt: skip
    values.update(overrides)
    if "parent" not in values:
        values["parent"] = bundled_config()
    return training_run_start(**values)


def test_a_run_is_queued_with_its_lineage_and_sent_on_commit(
    db, researcher, django_capture_on_commit_callbacks
):
    parent = bundled_config()
    with (
        mock.patch("llm.tasks.training_run_task.delay") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        run = start(parent=parent, user=researcher, source="a test")
    enqueue.assert_called_once_with(run.pk)
    assert run.status == TrainingStatus.QUEUED and run.parent == parent
    assert run.row_count == 40 and run.train_rows + run.eval_rows == 40 and run.eval_rows >= 4
    assert run.dataset_hash == training_rows_hash(run.typed_rows)
    assert run.typed_hyperparameters.max_steps == 3
    assert not ModelConfig.objects.filter(name="distilled").exists()  # only when done


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rows": learnable_rows(19)}, "has 19 rows; a training run needs at least 20"),
        ({"name": "  "}, "Name the new model config"),
        ({"name": "bundled"}, "already called bundled"),
        ({"kind": TrainingKind.DPO}, "start through their own service"),
        ({"rows": [TrainingRow(prompt="Same?", completion=f"a{i}") for i in range(30)]},
         "at least two distinct questions"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_creates_nothing(db, overrides, message):
    parent = bundled_config()
    configs = ModelConfig.objects.count()
    with pytest.raises(ValidationError, match=message):
        start(parent=parent, **overrides)
    assert not TrainingRun.objects.exists()
    assert ModelConfig.objects.count() == configs


def test_a_server_model_cannot_be_trained(db):
    with pytest.raises(ValidationError, match="training needs a local transformers model"):
        start(parent=openai_config())
    assert not TrainingRun.objects.exists()


def test_a_missing_local_checkpoint_is_refused(db, tmp_path):
    parent = ModelConfig.objects.create(name="gone", model=str(tmp_path / "nowhere"))
    with pytest.raises(ValidationError, match="not available here"):
        start(parent=parent)
    assert not TrainingRun.objects.exists()


def test_an_eval_set_that_shares_a_question_is_refused(db):
    rows = learnable_rows()
    parent = bundled_config()
    overlapping = [TrainingRow(prompt=rows[3].prompt.upper() + "  ", completion="other")]
    with pytest.raises(ValidationError, match="shares 1 question with the training rows"):
        start(parent=parent, rows=rows, eval_rows=overlapping)
    assert not TrainingRun.objects.exists()
    run = start(
        parent=parent,
        rows=rows,
        eval_rows=[TrainingRow(prompt="A new question?", completion="Yes.")],
    )
    assert (run.train_rows, run.eval_rows) == (40, 1)


def test_the_split_keeps_each_question_on_one_side_and_is_repeatable():
    rows = learnable_rows(30) + [TrainingRow(prompt="Question 0: what do you know about "
                                             "TIDES?", completion="again")]  # fmt: skip
    split = training_rows_split(rows, eval_percent=20, seed=1)
    train = {r.prompt.casefold() for r in split.train}
    held = {r.prompt.casefold() for r in split.eval}
    assert not train & held
    assert len(held) == 6  # 20 % of 30 distinct questions
    assert training_rows_split(rows, eval_percent=20, seed=1) == split
    assert training_rows_split(rows, eval_percent=20, seed=2) != split


def test_a_run_whose_worker_went_silent_fails_with_a_reason_and_leaves_nothing(db, trained_dir):
    run = start()
    now = timezone.now()
    lease = now + timedelta(seconds=30)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingStatus.RUNNING, lease_expires_at=lease
    )
    half = trained_dir / f".run-{run.pk}-abcd1234.tmp"
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"half")
    assert training_runs_fail_stale(now=now) == []  # lease still running
    assert training_runs_fail_stale(now=now + timedelta(seconds=31)) == [run.pk]
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED and "lease expired" in run.reason
    assert run.result is None and not half.exists()
    assert not ModelConfig.objects.filter(name="distilled").exists()
    # A late finish from the lost worker changes nothing.
    assert training_run_finish(run_id=run.pk, checkpoint=trained_dir / "x") is None
    assert not ModelConfig.objects.filter(name="distilled").exists()


def test_finish_makes_one_config_with_the_parents_sampling_settings(db, trained_dir):
    parent = bundled_config()
    parent.system_prompt = "Be brief."
    parent.save()
    run = start(parent=parent)
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING)
    ModelConfig.objects.create(name="distilled", model="x")  # taken while it trained
    config = training_run_finish(run_id=run.pk, checkpoint=trained_dir / "run", wall_time_s=1.0)
    assert config is not None
    assert config.name == f"distilled (run {run.pk})" and config.system_prompt == "Be brief."
    assert config.model == str(trained_dir / "run") and config.max_new_tokens == 4
    run.refresh_from_db()
    assert run.status == TrainingStatus.DONE and run.result == config
    assert config.trained_by == run


def test_retry_starts_a_failed_run_again_and_refuses_others(db):
    run = start()
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING)
    with pytest.raises(ValidationError, match="Only a failed or queued"):
        training_run_retry(run_id=run.pk)
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.FAILED, reason="lost",
                                                 progress_step=3)  # fmt: skip
    retried = training_run_retry(run_id=run.pk)
    assert (retried.status, retried.reason, retried.progress_step, retried.attempt) == (
        TrainingStatus.QUEUED,
        "",
        0,
        2,
    )


# --- policy runs ----------------------------------------------------------------------------
def preference_rows(n: int) -> list[PreferenceRow]:
    return [PreferenceRow(prompt=row.prompt, chosen=row.completion, rejected="No idea.")
            for row in learnable_rows(n)]  # fmt: skip


def test_a_dpo_run_is_queued_with_its_pairs_split_by_prompt_and_hashed(db, researcher):
    with mock.patch("llm.tasks.training_run_task.delay"):
        run = dpo_run_start(
            parent=bundled_config(), name="dpo", pairs=preference_rows(24), user=researcher,
            hyperparameters=DPOHyperparameters(beta=0.2, max_steps=1), source="queue q",
        )  # fmt: skip
    assert run.kind == TrainingKind.DPO and run.row_count == 24 and run.eval_rows >= 1
    pairs = run.typed_pairs
    assert run.dataset_hash == training_rows_hash(pairs)
    held = {p.prompt for p in pairs[run.train_rows :]}
    assert held and not held & {p.prompt for p in pairs[: run.train_rows]}
    hp = run.typed_hyperparameters
    assert isinstance(hp, DPOHyperparameters) and hp.beta == 0.2 and hp.reward_version is None


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (preference_rows(5), "has 5 preference pairs; a training run needs at least 20"),
        ([PreferenceRow(prompt="Same?", chosen=f"a{i}", rejected="b") for i in range(25)],
         "at least two distinct questions"),
    ],
)  # fmt: skip
def test_bad_dpo_input_is_refused_and_creates_nothing(db, pairs, message):
    with pytest.raises(ValidationError, match=message):
        dpo_run_start(parent=bundled_config(), name="dpo", pairs=pairs,
                      hyperparameters=DPOHyperparameters())  # fmt: skip
    with pytest.raises(ValidationError, match="training needs a local transformers model"):
        dpo_run_start(parent=openai_config(), name="dpo", pairs=preference_rows(24),
                      hyperparameters=DPOHyperparameters())  # fmt: skip
    assert not TrainingRun.objects.exists()


def test_a_rejection_sampling_run_keeps_distinct_prompts_and_needs_a_scorer(db, monkeypatch):
    hp = RejectionSamplingHyperparameters(n=4, reward_version=7, reward_label="rm v1")
    prompts = [row.prompt for row in learnable_rows(24)]
    with mock.patch("llm.tasks.training_run_task.delay"):
        run = rejection_sampling_run_start(parent=bundled_config(), name="rs",
                                           prompts=[*prompts, prompts[0], "  "],
                                           hyperparameters=hp)  # fmt: skip
    assert run.kind == TrainingKind.REJECTION_SAMPLING and run.row_count == 24
    assert sorted(p.prompt for p in run.typed_prompts) == sorted(prompts)
    monkeypatch.setattr("llm.services.run_rewarder", lambda: None)
    with pytest.raises(ValidationError, match="No reward scorer"):
        rejection_sampling_run_start(parent=bundled_config("other"), name="rs2",
                                     prompts=prompts, hyperparameters=hp)  # fmt: skip
    assert TrainingRun.objects.count() == 1
