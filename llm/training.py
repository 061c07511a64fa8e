"""A training run from claim to its new model config. Run by the worker only (llm/tasks.py):
it imports torch, transformers, TRL and peft.

  claim (QUEUED → RUNNING, conditional UPDATE, lease) → load the parent's local checkpoint
  → choose settings for this machine (dtype rule, LoRA above LLM_LORA_ABOVE_PARAMS) → eval
  loss before → the kind's TRL trainer, progress and losses recorded (and the lease renewed)
  as it steps → eval loss after → (policy runs) the report against the parent → save into a
  temp dir beside the final one, fsync, rename → one transaction: the new config and the
  run DONE (llm.services.training_run_finish). Any error: FAILED with the error and nothing
  kept. A killed worker: the lease runs out, training_runs_fail_stale fails the run; the
  temp dir never became a config.

The kinds share all of that (`_setup`, `trainer_arguments`, `_train_and_finish`) and differ
in their data and trainer:
  - SFT on a distillation set: SFTTrainer on prompt/completion rows;
  - DPO: DPOTrainer on preference pairs, the parent as the reference: its log-probs for every
    pair computed once before the first step, so no second copy of the model is held;
  - rejection sampling: n completions a prompt sampled from the parent (batched
    generate_batch), scored by the registered reward scorer (llm/rewarders.py), the best a
    prompt kept, then the SFT path on those rows.

Machine settings, following the project's dtype rule (settings.LLM_DTYPE through
compute_dtype): bfloat16 autocast only where the CPU (or GPU) multiplies bfloat16 natively;
activation (gradient) checkpointing only on a GPU. TRL 1.16's defaults turn both on, which
on a CPU without native bfloat16 made an SFT step about 13x slower (DESIGN.md). Memory:
fused AdamW (no full-size temporaries in the step) and the heap kept compact (llm/heap.py)
hold the worker under 4 GB on the bundled model (README, "Distillation SFT" and "DPO").
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from django.conf import settings
from django.utils import timezone

from llm.backends.bundled import resolve_model_path
from llm.backends.transformers_backend import compute_dtype
from llm.generation import chat_messages
from llm.heap import map_large_blocks, trim_callback
from llm.models import ModelConfig, TrainingKind, TrainingRun, TrainingStatus
from llm.schemas import (
    CurvePoint,
    Curves,
    DPOHyperparameters,
    MachineSettings,
    PreferenceRow,
    RejectionSamplingHyperparameters,
    SFTHyperparameters,
    TrainingRow,
)
from llm.services import (
    TRAINED_MARKER,
    training_rows_hash,
    training_run_checkpoints_remove,
    training_run_fail,
    training_run_finish,
    training_run_progress,
)
from llm.trainers import dpo_trainer_class, sft_trainer_class

# Progress is written at most this often (and always at the first and last step).
PROGRESS_EVERY_S = 1.0
# Rows in one generate_batch call of a rejection-sampling run (n siblings of a prompt or
# several prompts' siblings): batched, as DESIGN's "two generations at once" trap asks.
SAMPLE_BATCH_ROWS = 32


class RunLost(Exception):
    """The run is no longer this worker's (failed as lost): stop writing."""


def training_run_execute(*, run_id: int) -> None:
    """Run one queued training run to its end. Claimed with a conditional UPDATE, so a
    second delivery of the task finds nothing to claim and returns."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingStatus.QUEUED).update(
        status=TrainingStatus.RUNNING, started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.LLM_TRAINING_LEASE_SECONDS),
    )  # fmt: skip
    if not claimed:
        return
    run = TrainingRun.objects.select_related("parent").get(pk=run_id)
    started = time.monotonic()
    try:
        # One claim, lease, recorder, atomic save and finish for every kind.
        if run.kind == TrainingKind.SFT_DISTIL:
            _sft(run, started)
        elif run.kind == TrainingKind.DPO:
            _dpo(run, started)
        elif run.kind == TrainingKind.REJECTION_SAMPLING:
            _rejection_sampling(run, started)
        else:
            raise ValueError(f"no trainer for training runs of kind {run.kind!r}")
    except RunLost:
        return
    except Exception as error:
        training_run_fail(run_id=run_id, reason=f"{type(error).__name__}: {error}",
                          wall_time_s=time.monotonic() - started)  # fmt: skip
        training_run_checkpoints_remove(run_id)
        raise


def base_checkpoint(parent: ModelConfig) -> str:
    """The parent's local checkpoint (the bundled model converted on first use)."""
    return resolve_model_path(parent.model, models_dir=settings.LLM_MODELS_DIR,
                              config_name=parent.name)  # fmt: skip


# AdamW as one fused kernel a step: the same update as "adamw_torch" without its full-size
# temporaries (0.2 GiB less at the step on the bundled model, llm/heap.py's measurements).
OPTIMIZER = "adamw_torch_fused"


def machine_settings(*, parameters: int, on_gpu: bool) -> dict[str, Any]:
    """bf16 autocast where bfloat16 is native, checkpointing only on a GPU, LoRA above
    LLM_LORA_ABOVE_PARAMS parameters."""
    if on_gpu:
        native_bf16 = torch.cuda.is_bf16_supported()
    else:
        native_bf16 = compute_dtype(settings.LLM_DTYPE) == torch.bfloat16
    return {
        "dtype": "bfloat16" if native_bf16 else "float32",
        "bf16_autocast": native_bf16,
        "activation_checkpointing": on_gpu,
        "lora": parameters > settings.LLM_LORA_ABOVE_PARAMS,
    }


def micro_batches(batch_size: int, *, on_gpu: bool) -> tuple[int, int]:
    """(rows a forward pass, passes an optimiser step) for a batch: the largest divisor of the
    batch not above LLM_TRAINING_MICRO_BATCH, so every step still sees exactly the batch. By
    default one row a pass on a CPU, where padding a batch to its longest row costs time and
    each row's activations cost memory, and the whole batch on a GPU."""
    cap = settings.LLM_TRAINING_MICRO_BATCH or (batch_size if on_gpu else 1)
    rows = max(d for d in range(1, min(batch_size, cap) + 1) if batch_size % d == 0)
    return rows, batch_size // rows


def conversational(parent: ModelConfig, rows: list[TrainingRow], tokenizer: Any) -> list[dict]:
    """Rows as the model will see them when used: the parent's chat messages (its system
    prompt, the row's prompt as the user turn) through the chat template, the completion as
    the assistant's turn. A tokenizer with no template gets the backend's plain transcript."""
    if getattr(tokenizer, "chat_template", None):
        return [{"prompt": [dict(m) for m in chat_messages(parent, row.prompt)],
                 "completion": [{"role": "assistant", "content": row.completion}]}
                for row in rows]  # fmt: skip
    out = []
    for row in rows:
        lines = [f"{m['role']}: {m['content']}" for m in chat_messages(parent, row.prompt)]
        out.append({"prompt": "\n".join([*lines, "assistant:"]),
                    "completion": f" {row.completion}{tokenizer.eos_token or ''}"})  # fmt: skip
    return out


def checkpointing_argument(config_class: type, on: bool) -> dict[str, Any]:
    """transformers 5.25 renamed `gradient_checkpointing` to `activation_checkpointing` and
    warns on the old name; older versions know only the old one."""
    names = {field.name for field in dataclasses.fields(config_class)}
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    return {key: on}


class _Recorder:
    """Records steps and losses on the run row (renewing its lease) as the trainer goes."""

    def __init__(self, run_id: int, total: int) -> None:
        self.run_id = run_id
        self.total = total
        self.curves = Curves()
        self.step = 0
        self.last = 0.0

    def write(self, *, force: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        if not force and self.step < self.total and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        if not training_run_progress(
            run_id=self.run_id, progress_step=self.step, progress_total=self.total,
            curves=self.curves.model_dump(mode="json"), **fields,
        ):  # fmt: skip
            raise RunLost()

    def eval_loss(self, loss: float) -> None:
        self.curves.eval.append(CurvePoint(step=self.step, loss=round(loss, 5)))
        self.write(force=True)


def _callback(recorder: _Recorder) -> Any:
    from transformers import TrainerCallback

    class Recording(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            recorder.step = state.global_step
            recorder.write()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs and math.isfinite(logs["loss"]):
                point = CurvePoint(step=state.global_step, loss=round(float(logs["loss"]), 5))
                recorder.curves.train.append(point)
            eval_steps = [p.step for p in recorder.curves.eval]
            if logs and "eval_loss" in logs and state.global_step not in eval_steps:
                recorder.step = state.global_step
                recorder.eval_loss(float(logs["eval_loss"]))

    return Recording()


@dataclass
class _Setup:
    """What every kind of run prepares the same way before its trainer starts."""

    path: str
    tokenizer: Any
    model: Any
    on_gpu: bool
    parameters: int
    chosen: dict[str, Any]
    peft_config: Any
    output: Path
    token: str
    temp: Path
    rows_a_pass: int
    passes: int


def _setup(run: TrainingRun, hp: SFTHyperparameters) -> _Setup:
    """Threads, the parent's tokenizer and float32 weights, the machine's settings, LoRA
    where the base is large, and the temp dir beside the final one."""
    from datasets.utils.logging import disable_progress_bar
    from transformers import AutoModelForCausalLM, AutoTokenizer

    disable_progress_bar()  # per-row bars would flood the worker's log
    map_large_blocks()
    threads = settings.LLM_TRAINING_TORCH_THREADS
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    path = base_checkpoint(run.parent)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Master weights in float32 whatever the machine: bfloat16 only as autocast.
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    on_gpu = torch.cuda.is_available()
    parameters = sum(p.numel() for p in model.parameters())
    chosen = machine_settings(parameters=parameters, on_gpu=on_gpu)
    peft_config = None
    if chosen["lora"]:
        from peft import LoraConfig

        peft_config = LoraConfig(r=hp.lora_rank, lora_alpha=2 * hp.lora_rank, lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")  # fmt: skip
    output = Path(settings.LLM_TRAINED_MODELS_DIR)
    output.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    rows_a_pass, passes = micro_batches(hp.batch_size, on_gpu=on_gpu)
    return _Setup(path=path, tokenizer=tokenizer, model=model, on_gpu=on_gpu,
                  parameters=parameters, chosen=chosen, peft_config=peft_config, output=output,
                  token=token, temp=output / f".run-{run.pk}-{token}.tmp",
                  rows_a_pass=rows_a_pass, passes=passes)  # fmt: skip


def trainer_arguments(
    config_class: type, hp: SFTHyperparameters, chosen: dict[str, Any], *, on_gpu: bool,
    rows_a_pass: int, passes: int, output_dir: str,
) -> dict[str, Any]:  # fmt: skip
    """The arguments SFTConfig and DPOConfig share: the batch split into passes, the
    machine's dtype and checkpointing (not TRL's defaults), logging every step, no saves."""
    return dict(
        output_dir=output_dir, per_device_train_batch_size=rows_a_pass,
        gradient_accumulation_steps=passes, per_device_eval_batch_size=rows_a_pass,
        learning_rate=hp.learning_rate,
        num_train_epochs=hp.epochs, max_steps=hp.max_steps or -1, max_length=hp.max_length,
        bf16=chosen["bf16_autocast"], use_cpu=not on_gpu,
        **checkpointing_argument(config_class, chosen["activation_checkpointing"]),
        eval_strategy="steps" if hp.eval_every_steps else "no",
        eval_steps=hp.eval_every_steps or None, logging_steps=1, save_strategy="no",
        report_to=[], disable_tqdm=True, seed=hp.seed, data_seed=hp.seed,
        dataloader_num_workers=0, optim=OPTIMIZER, lr_scheduler_type="linear",
    )  # fmt: skip


def dpo_arguments(
    hp: DPOHyperparameters, chosen: dict[str, Any], *, on_gpu: bool, rows_a_pass: int,
    passes: int, output_dir: str,
) -> dict[str, Any]:  # fmt: skip
    """DPOConfig's arguments: the shared ones, β, and the reference's log-probs for every
    train and held-out pair computed once, by the parent before the first step, instead of
    a frozen copy of it kept beside the policy for a forward each step. The same work in
    one epoch; 0.5 GiB less for the bundled model (4.21 to 3.74 GiB, bench/dpo_step.py)."""
    from trl import DPOConfig

    return {**trainer_arguments(DPOConfig, hp, chosen, on_gpu=on_gpu, rows_a_pass=rows_a_pass,
                                passes=passes, output_dir=output_dir),
            "beta": hp.beta, "precompute_ref_log_probs": True}  # fmt: skip


def _sft(run: TrainingRun, started: float, rows: list[TrainingRow] | None = None,
         report: bool = False, lineage: dict[str, Any] | None = None) -> None:  # fmt: skip
    """SFT on the run's rows (or on `rows`, train first then held out, as a rejection-
    sampling run makes them; `report`: a policy report on the held-out prompts after;
    `lineage`: more to record beside the checkpoint)."""
    from datasets import Dataset
    from trl import SFTConfig

    hp = run.typed_hyperparameters
    rows = run.typed_rows if rows is None else rows
    # Rows were stored train first, then held out (llm.services.training_run_start).
    train_rows, eval_rows = rows[: run.train_rows], rows[run.train_rows :]
    setup = _setup(run, hp)
    total = hp.max_steps or math.ceil(len(train_rows) / hp.batch_size) * hp.epochs
    config = SFTConfig(**trainer_arguments(
        SFTConfig, hp, setup.chosen, on_gpu=setup.on_gpu, rows_a_pass=setup.rows_a_pass,
        passes=setup.passes, output_dir=str(setup.temp / "trainer"),
    ))  # fmt: skip
    recorder = _Recorder(run.pk, total)
    tokenizer = setup.tokenizer
    trainer = sft_trainer_class()(
        model=setup.model, args=config, processing_class=tokenizer,
        peft_config=setup.peft_config,
        train_dataset=Dataset.from_list(conversational(run.parent, train_rows, tokenizer)),
        eval_dataset=Dataset.from_list(conversational(run.parent, eval_rows, tokenizer)),
        callbacks=[_callback(recorder), trim_callback()],
    )  # fmt: skip
    held_out = [row.prompt for row in eval_rows] if report else None
    _train_and_finish(run, setup, trainer, recorder, started, held_out=held_out,
                      lineage=lineage)  # fmt: skip


def _dpo(run: TrainingRun, started: float) -> None:
    """DPO (TRL's DPOTrainer, sigmoid loss) on the run's preference pairs; the reference is
    the parent, as log-probs computed before training (dpo_arguments). Eval loss is DPO's
    loss on the held-out pairs."""
    from datasets import Dataset
    from trl import DPOConfig

    hp = run.typed_hyperparameters
    assert isinstance(hp, DPOHyperparameters)
    pairs = run.typed_pairs
    train_pairs, eval_pairs = pairs[: run.train_rows], pairs[run.train_rows :]
    setup = _setup(run, hp)
    total = hp.max_steps or math.ceil(len(train_pairs) / hp.batch_size) * hp.epochs
    config = DPOConfig(**dpo_arguments(
        hp, setup.chosen, on_gpu=setup.on_gpu, rows_a_pass=setup.rows_a_pass,
        passes=setup.passes, output_dir=str(setup.temp / "trainer"),
    ))  # fmt: skip
    recorder = _Recorder(run.pk, total)
    trainer = dpo_trainer_class()(
        model=setup.model, args=config, processing_class=setup.tokenizer,
        peft_config=setup.peft_config,
        train_dataset=Dataset.from_list(preference_dataset(run.parent, train_pairs)),
        eval_dataset=Dataset.from_list(preference_dataset(run.parent, eval_pairs)),
        callbacks=[_callback(recorder), trim_callback()],
    )  # fmt: skip
    _train_and_finish(run, setup, trainer, recorder, started,
                      held_out=[pair.prompt for pair in eval_pairs])  # fmt: skip


def preference_dataset(parent: ModelConfig, pairs: list[PreferenceRow]) -> list[dict]:
    """Pairs as the model will see them when used: the parent's chat messages (its system
    prompt, the pair's prompt as the user turn), chosen and rejected as assistant turns
    (TRL's conversational preference format, rendered by the tokenizer's chat template)."""
    return [{"prompt": [dict(m) for m in chat_messages(parent, pair.prompt)],
             "chosen": [{"role": "assistant", "content": pair.chosen}],
             "rejected": [{"role": "assistant", "content": pair.rejected}]}
            for pair in pairs]  # fmt: skip


def _rejection_sampling(run: TrainingRun, started: float) -> None:
    """Best-of-n under the reward model, then the SFT path: `n` completions a prompt
    sampled from the parent (batched generate_batch, one seeded generator a call), scored
    through the registered batched scorer, the best a prompt kept (ties: the first)."""
    from llm.generation import backend_for
    from llm.rewarders import run_rewards

    hp = run.typed_hyperparameters
    assert isinstance(hp, RejectionSamplingHyperparameters)
    prompts = [row.prompt for row in run.typed_prompts]
    n = hp.n
    calls = [prompts[i : i + max(1, SAMPLE_BATCH_ROWS // n)]
             for i in range(0, len(prompts), max(1, SAMPLE_BATCH_ROWS // n))]  # fmt: skip
    recorder = _Recorder(run.pk, len(calls))
    backend = backend_for(run.parent)
    best: list[TrainingRow] = []
    for call, chunk in enumerate(calls):
        chats = [chat_messages(run.parent, prompt) for prompt in chunk for _ in range(n)]
        params = run.parent.generation_params(
            temperature=hp.sample_temperature, max_new_tokens=hp.sample_max_new_tokens,
            seed=hp.seed + call,
        )  # fmt: skip
        texts = [c.text.strip() for c in backend.generate_batch(chats, params=params)]
        rewards = run_rewards(hp.reward_version,
                              [(chunk[i // n], text) for i, text in enumerate(texts)])  # fmt: skip
        for j, prompt in enumerate(chunk):
            scored = [(rewards[j * n + k], texts[j * n + k]) for k in range(n)
                      if texts[j * n + k]]  # fmt: skip
            if scored:  # the first of the highest rewards
                best.append(TrainingRow(prompt=prompt,
                                        completion=max(scored, key=lambda s: s[0])[1]))  # fmt: skip
        recorder.step = call + 1
        recorder.write(force=True)
    # The split stays the prompts' (stored train first, then held out); a prompt whose every
    # sample came back empty has no row.
    held = set(prompts[run.train_rows :])
    rows = [r for r in best if r.prompt not in held] + [r for r in best if r.prompt in held]
    train_count = sum(1 for r in best if r.prompt not in held)
    if not train_count or train_count == len(rows):
        raise ValueError("every sample of a side came back empty: nothing to train or evaluate")
    run.train_rows, run.eval_rows = train_count, len(rows) - train_count
    recorder.write(force=True, train_rows=run.train_rows, eval_rows=run.eval_rows)
    sampled = {"sampled_rows": len(rows), "sampled_rows_hash": training_rows_hash(rows)}
    _sft(run, started, rows=rows, report=True, lineage=sampled)


def _train_and_finish(
    run: TrainingRun, setup: _Setup, trainer: Any, recorder: _Recorder, started: float,
    *, held_out: list[str] | None, lineage: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Eval loss before, train (recorded), eval loss after, the policy report on the
    `held_out` prompts (policy runs; None: none), then the checkpoint saved whole and the
    config made in one transaction."""
    hp = run.typed_hyperparameters
    wrapped: Any = trainer.model  # the model, or its peft wrapper under LoRA
    trainable = sum(int(p.numel()) for p in wrapped.parameters() if p.requires_grad)
    machine = MachineSettings(**setup.chosen, parameters=setup.parameters,
                              trainable_parameters=trainable,
                              torch_threads=torch.get_num_threads())  # fmt: skip
    # Each evaluate() logs its eval_loss, which the callback puts on the eval curve.
    before = float(trainer.evaluate()["eval_loss"])
    recorder.write(force=True, eval_loss_before=before, machine=machine.model_dump(mode="json"))
    trainer.train()
    recorder.step = trainer.state.global_step
    after = float(trainer.evaluate()["eval_loss"])
    recorder.total = recorder.step
    recorder.write(force=True, eval_loss_after=after)

    trained: Any = trainer.model
    if setup.peft_config is not None:
        trained = trained.merge_and_unload()  # a plain checkpoint any backend loads
    record: dict[str, Any] = {
        "run": run.pk, "kind": run.kind, "parent": run.parent.name,
        "parent_model": run.parent.model, "dataset_hash": run.dataset_hash,
        "rows": run.row_count, "source": run.source,
        "hyperparameters": hp.model_dump(mode="json"),
        "machine": machine.model_dump(mode="json"), "eval_loss_before": before,
        "eval_loss_after": after, **(lineage or {}),
    }  # fmt: skip
    if held_out is not None:
        from llm.policy_report import policy_report

        made = policy_report(
            parent=run.parent, parent_path=setup.path, new_model=trained,
            tokenizer=setup.tokenizer, prompts=list(dict.fromkeys(held_out)), seed=hp.seed,
            reward_version=getattr(hp, "reward_version", None),
            reward_label=getattr(hp, "reward_label", ""),
            gold_version=getattr(hp, "gold_version", None),
            gold_label=getattr(hp, "gold_label", ""),
            renew=lambda: recorder.write(force=True),
        )  # fmt: skip
        record["report"] = made.model_dump(mode="json")
    final = _save(trained, setup.tokenizer, setup.temp,
                  setup.output / f"run-{run.pk}-{setup.token}", record)  # fmt: skip
    # The report lands with DONE and the config, in the finish's one transaction.
    config_made = training_run_finish(run_id=run.pk, checkpoint=final,
                                      wall_time_s=round(time.monotonic() - started, 3),
                                      report=record.get("report", {}))  # fmt: skip
    if config_made is None:  # failed as lost while it saved: keep nothing
        shutil.rmtree(final, ignore_errors=True)
        raise RunLost()


def _save(model: Any, tokenizer: Any, temp: Path, final: Path, lineage: dict[str, Any]) -> Path:
    """Write the checkpoint whole in `temp`, fsync it, and rename it to `final`: a reader
    (or a config) never sees a half-written checkpoint."""
    shutil.rmtree(temp / "trainer", ignore_errors=True)
    temp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(temp))
    tokenizer.save_pretrained(str(temp))
    (temp / TRAINED_MARKER).write_text(json.dumps(lineage, indent=2))
    for path in temp.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    temp.chmod(0o755)
    os.rename(temp, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return final
