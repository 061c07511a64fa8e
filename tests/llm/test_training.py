"""Training runs on a real Celery worker: a distillation run on 40 rows lowers eval loss and
makes a config that generates; a DPO run on a few pairs makes a config that loads and
generates, with its lineage and its report against the parent; a worker killed mid-training
(SFT or DPO) leaves no config and the run ends failed with its reason."""

from __future__ import annotations

import json
import signal
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest

from llm.backends.base import ChatMessage
from llm.generation import backend_for
from llm.models import ModelConfig, TrainingKind, TrainingRun, TrainingStatus
from llm.schemas import DPOHyperparameters, PreferenceRow
from llm.services import dpo_run_start, training_run_start, training_runs_fail_stale
from llm.tasks import training_run_task
from llm.training import machine_settings, micro_batches
from tests.helpers import wait_for, worker_log
from tests.llm.training_data import bundled_config, learnable_rows, tiny_hyperparameters

# A worker's start, the model's load and a few steps: seconds alone, but a 2-core machine
# shared by several test runs once took 4 minutes a step.
RUN_TIMEOUT = 2400


@pytest.mark.worker
def test_a_distillation_run_lowers_eval_loss_and_its_config_generates(
    transactional_db, django_db_serialized_rollback, researcher, start_training_worker,
    trained_models_dir,
):  # fmt: skip
    parent = bundled_config()
    with mock.patch("llm.tasks.training_run_task.delay"):
        run = training_run_start(
            kind=TrainingKind.SFT_DISTIL, parent=parent, name="distilled",
            rows=learnable_rows(40), user=researcher, source="a test",
            hyperparameters=tiny_hyperparameters(max_steps=2, learning_rate=5e-4),
        )  # fmt: skip
    # Its own queue: the session's worker (started by other tests) also consumes `training`
    # and would write the checkpoint outside this test's folder.
    private = f"distil-{run.pk}"
    worker = start_training_worker(queues=private)
    training_run_task.apply_async((run.pk,), queue=private)
    run = wait_for(
        lambda: TrainingRun.objects.filter(pk=run.pk, status__in=["done", "failed"]).first(),
        timeout=RUN_TIMEOUT, what="the run to finish", log=worker_log(worker.log_name),
    )  # fmt: skip
    assert run.status == TrainingStatus.DONE, run.reason
    assert run.eval_loss_after < run.eval_loss_before
    curves = run.typed_curves
    assert [p.step for p in curves.eval] == [0, 2] and len(curves.train) == 2
    assert run.progress_step == run.progress_total == 2
    machine = run.typed_machine
    assert machine is not None and not machine.lora and not machine.activation_checkpointing
    assert machine.trainable_parameters == machine.parameters  # a full fine-tune

    config = run.result
    assert config is not None and config.name == "distilled"
    assert Path(config.model).parent == trained_models_dir
    assert Path(config.model, "arbiter-training.json").is_file()
    assert not list(trained_models_dir.glob(".run-*"))  # no temp dir left
    # Usable wherever a config is: the generation path loads it and it generates.
    completion = backend_for(config).generate_batch(
        [[ChatMessage(role="user", content="Question 99: what do you know about tides?")]],
        params=config.generation_params(max_new_tokens=4),
    )[0]
    assert completion.usage.completion_tokens and completion.text.strip()


def preference_rows(n: int) -> list[PreferenceRow]:
    """Pairs whose chosen answers share the learnable rows' pattern; the rejected ones do not."""
    return [PreferenceRow(prompt=row.prompt, chosen=row.completion, rejected="I will not say.")
            for row in learnable_rows(n)]  # fmt: skip


def _doomed_run(kind: str, parent: ModelConfig) -> TrainingRun:
    if kind == TrainingKind.DPO:
        return dpo_run_start(parent=parent, name="doomed", pairs=preference_rows(20),
                             hyperparameters=DPOHyperparameters(max_steps=500, batch_size=2,
                                                                max_length=128))  # fmt: skip
    return training_run_start(
        kind=TrainingKind.SFT_DISTIL, parent=parent, name="doomed", rows=learnable_rows(40),
        hyperparameters=tiny_hyperparameters(max_steps=500),
    )  # fmt: skip


@pytest.mark.worker
def test_a_dpo_run_makes_a_config_that_generates_with_its_lineage_and_report(
    transactional_db, django_db_serialized_rollback, researcher, start_training_worker,
    trained_models_dir, settings,
):  # fmt: skip
    settings.LLM_TRAINING_MIN_ROWS = 4
    parent = bundled_config()
    hp = DPOHyperparameters(max_steps=1, batch_size=2, max_length=128, beta=0.2,
                            eval_percent=20, learning_rate=1e-5)  # fmt: skip
    with mock.patch("llm.tasks.training_run_task.delay"):
        run = dpo_run_start(parent=parent, name="preferred", pairs=preference_rows(6),
                            hyperparameters=hp, user=researcher, source="queue q (#1)")  # fmt: skip
    private = f"dpo-{run.pk}"
    worker = start_training_worker(queues=private)
    training_run_task.apply_async((run.pk,), queue=private)
    run = wait_for(
        lambda: TrainingRun.objects.filter(pk=run.pk, status__in=["done", "failed"]).first(),
        timeout=RUN_TIMEOUT, what="the DPO run to finish", log=worker_log(worker.log_name),
    )  # fmt: skip
    assert run.status == TrainingStatus.DONE, run.reason
    assert run.progress_step == run.progress_total == 1
    assert run.eval_loss_before is not None and run.eval_loss_after is not None
    machine = run.typed_machine
    # The machine's dtype rule, not TRL's defaults: no checkpointing on a CPU, bfloat16
    # autocast only where this CPU has it natively.
    assert machine is not None and not machine.activation_checkpointing
    rule = machine_settings(parameters=machine.parameters, on_gpu=False)
    assert machine.bf16_autocast == rule["bf16_autocast"]
    report = run.typed_report
    assert report is not None and report.prompts == run.eval_rows and report.samples_per_prompt == 4
    assert report.proxy_new is None  # no reward model given: no proxy reward
    assert report.kl_method and report.kl_mean == report.kl_mean  # a number, not NaN

    config = run.result
    assert config is not None and config.name == "preferred"
    lineage = json.loads(Path(config.model, "arbiter-training.json").read_text())
    assert lineage["kind"] == "dpo" and lineage["parent"] == parent.name
    assert lineage["dataset_hash"] == run.dataset_hash and lineage["source"] == "queue q (#1)"
    assert lineage["hyperparameters"]["beta"] == 0.2 and lineage["report"]["prompts"] >= 1
    assert not list(trained_models_dir.glob(".run-*"))
    completion = backend_for(config).generate_batch(
        [[ChatMessage(role="user", content="Question 99: what do you know about tides?")]],
        params=config.generation_params(max_new_tokens=4),
    )[0]
    assert completion.usage.completion_tokens and completion.text.strip()


@pytest.mark.worker
@pytest.mark.parametrize("kind", [TrainingKind.SFT_DISTIL, TrainingKind.DPO])
def test_a_worker_killed_mid_training_leaves_no_config_and_the_run_fails_with_a_reason(
    transactional_db, django_db_serialized_rollback, start_training_worker, trained_models_dir,
    kind, settings,
):  # fmt: skip
    settings.LLM_TRAINING_MIN_ROWS = 4
    parent = bundled_config()
    configs = ModelConfig.objects.count()
    with mock.patch("llm.tasks.training_run_task.delay"):
        run = _doomed_run(kind, parent)
    private = f"kill-{run.pk}"
    doomed = start_training_worker(queues=private)
    training_run_task.apply_async((run.pk,), queue=private)
    # Killed once training has begun: the eval loss before it is recorded, then trainer.train().
    wait_for(
        lambda: TrainingRun.objects.filter(pk=run.pk, eval_loss_before__isnull=False).exists(),
        timeout=RUN_TIMEOUT, what="the run to start training", log=worker_log(doomed.log_name),
    )  # fmt: skip
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)

    run.refresh_from_db()
    assert run.status == TrainingStatus.RUNNING  # nobody knows yet
    assert ModelConfig.objects.count() == configs
    assert not list(trained_models_dir.glob("run-*"))  # nothing renamed into place

    # A redelivery of the task (acks_late) finds nothing to claim.
    worker = start_training_worker()
    training_run_task.delay(run.pk)
    assert training_runs_fail_stale() == []  # its lease has not run out yet
    [failed] = training_runs_fail_stale(now=run.lease_expires_at + timedelta(seconds=1))
    assert failed == run.pk
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED and "lease expired" in run.reason
    assert run.result is None and ModelConfig.objects.count() == configs
    assert not list(trained_models_dir.iterdir())  # the half-written temp dir is gone
    assert worker.poll() is None


def test_settings_follow_the_machine(settings):
    settings.LLM_LORA_ABOVE_PARAMS = 500_000_000
    settings.LLM_DTYPE = "float32"
    cpu = machine_settings(parameters=135_000_000, on_gpu=False)
    assert cpu == {"dtype": "float32", "bf16_autocast": False,
                   "activation_checkpointing": False, "lora": False}  # fmt: skip
    settings.LLM_DTYPE = "bfloat16"
    assert machine_settings(parameters=135_000_000, on_gpu=False)["bf16_autocast"] is True
    assert machine_settings(parameters=1_700_000_000, on_gpu=False)["lora"] is True


def test_a_batch_is_split_into_passes_that_divide_it(settings):
    settings.LLM_TRAINING_MICRO_BATCH = 0
    assert micro_batches(8, on_gpu=False) == (1, 8)  # no padding, least memory on a CPU
    assert micro_batches(8, on_gpu=True) == (8, 1)
    settings.LLM_TRAINING_MICRO_BATCH = 3
    assert micro_batches(8, on_gpu=False) == (2, 4)  # every step still sees the batch of 8
    assert micro_batches(6, on_gpu=True) == (3, 2)
    settings.LLM_TRAINING_MICRO_BATCH = 16
    assert micro_batches(8, on_gpu=False) == (8, 1)


def test_the_recorder_keeps_one_eval_point_a_step_and_stops_once_the_run_is_lost(db):
    from types import SimpleNamespace

    from llm.training import RunLost, _callback, _Recorder

    with mock.patch("llm.tasks.training_run_task.delay"):
        run = training_run_start(
            kind=TrainingKind.SFT_DISTIL, parent=bundled_config(), name="r",
            rows=learnable_rows(), hyperparameters=tiny_hyperparameters(),
        )  # fmt: skip
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING)
    recorder = _Recorder(run.pk, total=2)
    callback = _callback(recorder)
    state = SimpleNamespace(global_step=0)
    callback.on_log(None, state, None, logs={"eval_loss": 3.0})
    callback.on_log(None, state, None, logs={"eval_loss": 3.0})  # evaluate() logs it once more
    state.global_step = 1
    callback.on_log(None, state, None, logs={"loss": 2.5})
    recorder.last = 0.0  # past the write throttle (PROGRESS_EVERY_S)
    callback.on_step_end(None, state, None)
    run.refresh_from_db()
    assert [p.step for p in run.typed_curves.eval] == [0] and run.progress_step == 1
    assert [p.loss for p in recorder.curves.train] == [2.5]
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.FAILED)
    state.global_step = 2
    recorder.last = 0.0
    with pytest.raises(RunLost):
        callback.on_step_end(None, state, None)


def test_rejection_sampling_keeps_each_prompts_best_sample_by_the_scorer(db, monkeypatch, settings):
    # The sampling and ranking, in process: a fake policy, a scorer that prefers longer text,
    # and the SFT step captured instead of run.
    from llm import training
    from llm.backends.base import Completion, Usage
    from llm.schemas import RejectionSamplingHyperparameters
    from llm.services import rejection_sampling_run_start

    settings.LLM_TRAINING_MIN_ROWS = 4
    hp = RejectionSamplingHyperparameters(n=3, reward_version=5, max_steps=1)
    prompts = [row.prompt for row in learnable_rows(6)]
    with mock.patch("llm.tasks.training_run_task.delay"):
        run = rejection_sampling_run_start(parent=bundled_config(), name="rs", prompts=prompts,
                                           hyperparameters=hp)  # fmt: skip
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING)
    run.refresh_from_db()
    calls = []

    class Policy:
        def generate_batch(self, chats, *, params):
            calls.append((len(chats), params.temperature, params.seed))
            usage = Usage(prompt_tokens=1, completion_tokens=1, time_to_first_token_s=None,
                          total_s=0.0)  # fmt: skip
            # Sample k of each prompt: k words ("" for the first, which must never win).
            return [Completion(text=" ".join(["w"] * (i % 3)), usage=usage, finish_reason="stop")
                    for i in range(len(chats))]  # fmt: skip

    scored = []

    def length_reward(version_id, pairs):
        scored.append(version_id)
        return [float(len(text)) for _, text in pairs]

    captured = {}

    def sft(run, started, rows=None, report=False, lineage=None):
        captured.update(rows=rows, report=report, lineage=lineage, train=run.train_rows)

    monkeypatch.setattr("llm.generation.backend_for", lambda config: Policy())
    monkeypatch.setattr("llm.rewarders.run_rewards", length_reward)
    monkeypatch.setattr(training, "_sft", sft)
    training._rejection_sampling(run, 0.0)

    assert calls == [(18, 1.0, 0)]  # 6 prompts x 3 samples in one batched call
    assert scored == [5]
    rows = captured["rows"]
    assert [row.completion for row in rows] == ["w w"] * 6
    stored = [p.prompt for p in run.typed_prompts]
    assert [row.prompt for row in rows] == stored  # train prompts first, then held out
    assert captured["train"] == run.train_rows and captured["report"] is True
    assert len(captured["lineage"]["sampled_rows_hash"]) == 64
    run.refresh_from_db()
    assert run.progress_step == 1 and run.train_rows + run.eval_rows == 6
