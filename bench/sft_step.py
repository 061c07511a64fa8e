"""SFT benchmark: TRL's SFTTrainer as the worker configures it (llm/training.py) against a
plain PyTorch loop (forward, backward, AdamW) on the very same batches, in the same run.

Run: .venv/bin/python bench/sft_step.py [--steps 4] [--batch 8] [--rows 500] [--defaults]

On the bundled SmolLM2-135M (full fine-tune, as the worker trains a model of its size), with
`--rows` synthetic prompt/completion rows of at most 256 tokens:
  (1) seconds per step, TRL (the worker's SFTConfig: bf16 autocast only where bfloat16 is
      native, activation checkpointing off on a CPU) against the plain loop with the same
      precision, on the batches TRL's own dataloader made; ratio (target <= 1.2). The first
      step of each is a warm-up and not counted; the plain loop runs before and after TRL
      and the two are averaged, since this machine is shared;
  (2) the wall time to distil `--rows` rows into the bundled model (one epoch, 10 % held
      out, eval loss before and after), extrapolated from the measured TRL step and eval
      times: a full run on a shared 2-core machine takes too long to repeat for a bench;
  (3) peak resident memory of the process (target <= 4 GB);
  (4) with --defaults: one TRL step with TRL 1.16's own defaults (bf16 autocast and
      activation checkpointing on), the figure issue 24 measured at 23.4 s a step.
Prints the CPU flags that decide the precision beside the figures.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ARBITER_VAR_DIR", tempfile.mkdtemp(prefix="arbiter-bench-sft-"))
os.environ.setdefault("LLM_MODELS_DIR", str(ROOT / "var" / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import torch  # noqa: E402
from django.conf import settings  # noqa: E402

from llm.backends.bundled import BUNDLED_MODEL_ID  # noqa: E402
from llm.heap import map_large_blocks, trim_callback  # noqa: E402
from llm.models import ModelConfig  # noqa: E402
from llm.schemas import TrainingRow  # noqa: E402
from llm.trainers import sft_trainer_class  # noqa: E402
from llm.training import (  # noqa: E402
    OPTIMIZER,
    conversational,
    machine_settings,
    micro_batches,
)

WORDS = ["tide", "moon", "water", "shore", "pull", "gravity", "ocean", "wave", "coast",
         "sand", "harbour", "current", "storm", "reef", "island", "delta", "river", "valley",
         "glacier", "summit", "ridge", "canyon", "desert", "dune"]  # fmt: skip


def rows(n: int, seed: int = 0) -> list[TrainingRow]:
    """Prompt/completion rows of 60-200 words: under 256 tokens with the chat template."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60)))
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 140)))
        out.append(TrainingRow(prompt=f"Question {i}: {question}?", completion=answer + "."))
    return out


def peak_resident_gib() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux carries
    the forking parent's high-water mark into a child across exec, so a worker-shaped child of
    this bench, which holds several models, would report the bench's peak, not its own."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024 / 1024


def cpu_flags() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(flag for flag in wanted if f" {flag}" in flags) or "none of avx2/avx512/amx"


def trainer_for(
    model: Any, tokenizer: Any, data: list[dict], args: dict[str, Any], *, stock: bool = False
) -> Any:
    """The worker's trainer (llm.trainers.sft_trainer_class), or TRL's own with `stock`."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(output_dir=tempfile.mkdtemp(prefix="sft-bench-"), report_to=[],
                       disable_tqdm=True, save_strategy="no", logging_steps=1, use_cpu=True,
                       dataloader_num_workers=0, optim=OPTIMIZER, seed=0, data_seed=0,
                       **args)  # fmt: skip
    if stock:
        return SFTTrainer(model=model, args=config, processing_class=tokenizer,
                          train_dataset=Dataset.from_list(data))  # fmt: skip
    return sft_trainer_class()(model=model, args=config, processing_class=tokenizer,
                               train_dataset=Dataset.from_list(data),
                               callbacks=[trim_callback()])  # fmt: skip


class StepClock:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.started = 0.0

    def callback(self) -> Any:
        from transformers import TrainerCallback

        clock = self

        class Clock(TrainerCallback):  # type: ignore[misc]
            def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
                clock.started = time.perf_counter()

            def on_step_end(self, *args: Any, **kwargs: Any) -> None:
                clock.times.append(time.perf_counter() - clock.started)

        return Clock()


def plain_steps(model: Any, batches: list[dict], lr: float, autocast: bool) -> list[float]:
    """Forward, backward and AdamW on each batch; seconds per step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=True)  # as the worker's
    model.train()
    times = []
    for batch in batches:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                        labels=batch["labels"])  # fmt: skip
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--defaults", action="store_true")
    parser.add_argument("--peak-only", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm.training import base_checkpoint

    torch.manual_seed(0)
    map_large_blocks()  # as the worker's setup does, for the whole process
    threads = settings.LLM_TRAINING_TORCH_THREADS
    if threads > 0:
        torch.set_num_threads(threads)
    parent = ModelConfig(name="bench", model=BUNDLED_MODEL_ID)
    path = base_checkpoint(parent)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    params = sum(p.numel() for p in base.parameters())
    chosen = machine_settings(parameters=params, on_gpu=False)
    autocast = chosen["bf16_autocast"]
    data = conversational(parent, rows(options.rows), tokenizer)
    lengths = [
        len(tokenizer(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=False),
                      add_special_tokens=False)["input_ids"])
        for r in data
    ]  # fmt: skip
    print(f"CPU flags: {cpu_flags()}; torch threads {torch.get_num_threads()}; "
          f"{params / 1e6:.0f}M parameters, {'LoRA' if chosen['lora'] else 'full fine-tune'}; "
          f"precision: {'bfloat16 autocast' if autocast else 'float32'} "
          f"(LLM_DTYPE={settings.LLM_DTYPE}); checkpointing off")  # fmt: skip
    print(f"rows: {options.rows}, tokens per row max {max(lengths)}, "
          f"mean {statistics.mean(lengths):.0f}; batch {options.batch}")  # fmt: skip

    if options.peak_only:
        # The worker's shape (llm.training._sft): one model, its trainer, steps and an eval.
        held = max(1, math.ceil(options.rows * 0.1))
        rows_a_pass, passes = micro_batches(options.batch, on_gpu=False)
        worker = trainer_for(base, tokenizer, data[held:], {
            "per_device_train_batch_size": rows_a_pass, "gradient_accumulation_steps": passes,
            "per_device_eval_batch_size": rows_a_pass, "max_length": 256,
            "learning_rate": 5e-5, "bf16": autocast, "activation_checkpointing": False,
            "max_steps": 2})  # fmt: skip
        worker.evaluate(eval_dataset=worker.train_dataset.select(range(held)))
        worker.train()
        print(peak_resident_gib())
        return

    ours = {"per_device_train_batch_size": options.batch, "max_length": 256,
            "learning_rate": 5e-5, "bf16": autocast, "activation_checkpointing": False,
            "max_steps": options.steps + 1}  # fmt: skip
    trainer = trainer_for(copy.deepcopy(base), tokenizer, data, ours)
    loader = trainer.get_train_dataloader()
    batches = []
    for batch in loader:
        batches.append({k: v for k, v in batch.items() if isinstance(v, torch.Tensor)})
        if len(batches) == options.steps + 1:
            break

    plain_before = plain_steps(copy.deepcopy(base), batches, 5e-5, autocast)[1:]
    clock = StepClock()
    trainer.add_callback(clock.callback())
    trainer.train()
    trl_times = clock.times[1:]
    plain_after = plain_steps(copy.deepcopy(base), batches, 5e-5, autocast)[1:]
    plain = statistics.mean(plain_before + plain_after)
    trl = statistics.mean(trl_times)
    before, after = statistics.mean(plain_before), statistics.mean(plain_after)
    print(f"(1) SFT step, batch {options.batch}: TRL {trl:.2f} s, plain PyTorch {plain:.2f} s "
          f"(before {before:.2f}, after {after:.2f}); ratio {trl / plain:.2f}x "
          f"(target <= 1.2) over {len(trl_times)} steps each")  # fmt: skip

    held = max(1, math.ceil(options.rows * 0.1))
    train_steps = math.ceil((options.rows - held) / options.batch)
    eval_started = time.perf_counter()
    evaluator = trainer_for(trainer.model, tokenizer, data[:held], ours)
    evaluator.evaluate(eval_dataset=evaluator.train_dataset)
    eval_s = time.perf_counter() - eval_started
    total = train_steps * trl + 2 * eval_s
    print(f"(2) distil {options.rows} rows (<= 256 tokens, one epoch, {held} held out): "
          f"{train_steps} steps x {trl:.2f} s + 2 evals x {eval_s:.1f} s = {total / 60:.1f} min "
          "(extrapolated from the measured steps, not a full run)")  # fmt: skip
    # This process holds the base, TRL's copy and the plain loop's: the worker holds one model.
    worker_shape = subprocess.run(
        [sys.executable, __file__, "--peak-only", "--batch", str(options.batch),
         "--rows", str(options.rows)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak_gb = float(worker_shape.stdout.strip().splitlines()[-1])
    rows_a_pass, passes = micro_batches(options.batch, on_gpu=False)
    print(f"(3) peak resident memory of a process that trains as the worker does (one model, "
          f"2 steps of batch {options.batch} in {passes} passes of {rows_a_pass} rows "
          f"(LLM_TRAINING_MICRO_BATCH), an eval): {peak_gb:.2f} GiB "
          "(target <= 4)")  # fmt: skip

    if options.defaults:
        defaults = {
            "per_device_train_batch_size": options.batch,
            "max_length": 256,
            "learning_rate": 5e-5,
            "max_steps": 2,
        }  # TRL's bf16 and checkpointing
        slow = trainer_for(copy.deepcopy(base), tokenizer, data, defaults, stock=True)
        slow_clock = StepClock()
        slow.add_callback(slow_clock.callback())
        slow.train()
        step = slow_clock.times[-1]
        print(f"(4) TRL 1.16's defaults (bf16={slow.args.bf16}, checkpointing="
              f"{slow.args.activation_checkpointing}): {step:.2f} s a step, "
              f"{step / trl:.1f}x the worker's settings")  # fmt: skip


if __name__ == "__main__":
    main()
