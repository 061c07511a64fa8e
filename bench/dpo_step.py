"""DPO benchmark: TRL's DPOTrainer as the worker configures it (llm/training.py) against a
plain PyTorch loop doing the same work on the very same batches, in the same run.

Run: .venv/bin/python bench/dpo_step.py [--steps 4] [--batch 4] [--pairs 500] [--defaults]

On the bundled SmolLM2-135M (full fine-tune; the reference the parent, its log-probs
computed once before the first step as the worker does: llm.training.dpo_arguments), with
`--pairs` synthetic short preference pairs:
  (1) seconds per step, TRL (the worker's DPOConfig: bf16 autocast only where bfloat16 is
      native, activation checkpointing off on a CPU) against the plain loop with the same
      precision — the policy's forward and backward on chosen and rejected, the reference's
      forward, the sigmoid DPO loss and an AdamW step — on the batches TRL's own dataloader
      made; ratio (target <= 1.2). TRL's step has no reference forward (it was done before
      training, for all `--pairs`), so its time is the step plus the precompute's time
      shared over an epoch's steps. The first step of each is a warm-up and not counted;
      the plain loop runs before and after TRL and the two are averaged (a shared machine);
  (2) peak resident memory of a process shaped as the worker (the policy, its trainer with
      the reference log-probs computed, 2 steps and an eval, the heap kept as llm/heap.py
      keeps it), measured in a subprocess (target <= 4 GB). It trains on the pairs its two
      steps use: the pairs it never reaches would add 8 bytes each;
  (3) with --defaults: one step of TRL's own DPOTrainer with TRL 1.16's defaults (bf16
      autocast and gradient checkpointing on), the figure issue 23 measured at 28.6 s a step.
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
os.environ.setdefault("ARBITER_VAR_DIR", tempfile.mkdtemp(prefix="arbiter-bench-dpo-"))

# The rest of the environment and django.setup() are sft_step's, imported with its clock.
from bench.sft_step import WORDS, StepClock, cpu_flags, peak_resident_gib  # noqa: E402, I001

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from django.conf import settings  # noqa: E402

from llm.backends.bundled import BUNDLED_MODEL_ID  # noqa: E402
from llm.heap import map_large_blocks, trim_callback  # noqa: E402
from llm.models import ModelConfig  # noqa: E402
from llm.schemas import DPOHyperparameters, PreferenceRow  # noqa: E402
from llm.trainers import dpo_trainer_class  # noqa: E402
from llm.training import (  # noqa: E402
    checkpointing_argument,
    dpo_arguments,
    machine_settings,
    micro_batches,
    preference_dataset,
)

PAIR_WORDS = WORDS[:18]  # the words of the pairs the README's figures were measured on
BETA = 0.1
LR = 5e-6


def pairs(n: int, seed: int = 0) -> list[PreferenceRow]:
    """Short pairs: a prompt of 10-30 words, answers of 10-40 words."""
    import random

    rng = random.Random(seed)

    def words(low: int, high: int) -> str:
        return " ".join(rng.choice(PAIR_WORDS) for _ in range(rng.randint(low, high)))

    return [PreferenceRow(prompt=f"Question {i}: {words(10, 30)}?", chosen=words(10, 40) + ".",
                          rejected=words(10, 40) + ".") for i in range(n)]  # fmt: skip


def trainer_for(
    model: Any, tokenizer: Any, data: list[dict], args: dict[str, Any],
    eval_data: list[dict] | None = None, *, stock: bool = False,
) -> Any:  # fmt: skip
    """A DPOTrainer with these arguments (the worker's: worker_arguments), its reference
    precompute timed (PrecomputeClock); `stock`: TRL's own DPOTrainer, untouched."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(**args)
    held = Dataset.from_list(eval_data) if eval_data else None
    trainer_class = DPOTrainer if stock else PrecomputeClock.trainer_class()
    return trainer_class(
        model=model, args=config, processing_class=tokenizer,
        train_dataset=Dataset.from_list(data), eval_dataset=held, callbacks=[trim_callback()],
    )  # fmt: skip


class PrecomputeClock:
    """Seconds spent computing the reference's log-probs before training. TRL does it in
    the trainer's constructor through `_precompute_ref_logps` (private; TRL 1.16). The
    trainer is the worker's (llm.trainers.dpo_trainer_class)."""

    seconds = 0.0

    @classmethod
    def trainer_class(cls) -> type:
        class Timed(dpo_trainer_class()):  # type: ignore[misc]
            def _precompute_ref_logps(self, *args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return super()._precompute_ref_logps(*args, **kwargs)
                finally:
                    cls.seconds += time.perf_counter() - started

        return Timed


def worker_arguments(batch: int, steps: int, chosen: dict[str, Any], *, split: bool) -> dict:
    """The worker's arguments; `split` as the worker splits a batch into passes, else the
    whole batch in one pass (what the plain loop does)."""
    hp = DPOHyperparameters(learning_rate=LR, batch_size=batch, max_steps=steps,
                            max_length=256, beta=BETA)  # fmt: skip
    rows_a_pass, passes = micro_batches(batch, on_gpu=False) if split else (batch, 1)
    output_dir = tempfile.mkdtemp(prefix="dpo-bench-")
    return dpo_arguments(hp, chosen, on_gpu=False, rows_a_pass=rows_a_pass, passes=passes,
                         output_dir=output_dir)  # fmt: skip


def completion_logps(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each row's summed log-probability of its completion tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   use_cache=False).logits  # fmt: skip
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token = logps.gather(2, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token * batch["completion_mask"][:, 1:]).sum(dim=1)


def plain_steps(policy: Any, reference: Any, batches: list[dict], autocast: bool) -> list[float]:
    """DPO by hand on each batch ([chosen rows; rejected rows], as TRL's collator makes it):
    policy forward and backward, reference forward, sigmoid loss, AdamW; seconds a step."""
    optimizer = torch.optim.AdamW(policy.parameters(), lr=LR, fused=True)  # as the worker's
    policy.train()
    reference.eval()
    times = []
    for batch in batches:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            chosen, rejected = completion_logps(policy, batch).chunk(2)
            with torch.no_grad():
                ref_chosen, ref_rejected = completion_logps(reference, batch).chunk(2)
        margin = (chosen - ref_chosen) - (rejected - ref_rejected)
        loss = -F.logsigmoid(BETA * margin).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=500)
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
    data = preference_dataset(parent, pairs(options.pairs))
    print(f"CPU flags: {cpu_flags()}; torch threads {torch.get_num_threads()}; "
          f"{params / 1e6:.0f}M parameters, full fine-tune, reference log-probs computed first; "
          f"precision: {'bfloat16 autocast' if autocast else 'float32'} "
          f"(LLM_DTYPE={settings.LLM_DTYPE}); checkpointing off; "
          f"pairs {options.pairs}, batch {options.batch}")  # fmt: skip

    if options.peak_only:
        # The worker's shape (llm.training._dpo): the policy, reference log-probs computed,
        # an eval and steps, the batch split into passes as the worker splits it.
        held = max(1, math.ceil(options.pairs * 0.1))
        worker = trainer_for(base, tokenizer, data[held : held + 2 * options.batch],
                             worker_arguments(options.batch, 2, chosen, split=True),
                             eval_data=data[:held])  # fmt: skip
        worker.evaluate()
        worker.train()
        print(peak_resident_gib())
        return

    ours = worker_arguments(options.batch, options.steps + 1, chosen, split=False)
    # The reference's log-probs for all the pairs, as a run on them computes them: its
    # fixed costs (hashing the model, caching the column) shared over an epoch's steps.
    trainer = trainer_for(copy.deepcopy(base), tokenizer, data, ours)
    reference_share = PrecomputeClock.seconds / math.ceil(len(data) / options.batch)
    batches = []
    for batch in trainer.get_train_dataloader():
        batches.append({k: v for k, v in batch.items() if isinstance(v, torch.Tensor)})
        if len(batches) == options.steps + 1:
            break
    longest = max(int(b["attention_mask"].sum(dim=1).max()) for b in batches)
    print(f"tokens a sequence in the measured batches: at most {longest}")

    reference = copy.deepcopy(base)
    plain_before = plain_steps(copy.deepcopy(base), reference, batches, autocast)[1:]
    clock = StepClock()
    trainer.add_callback(clock.callback())
    trainer.train()
    trl_times = clock.times[1:]
    plain_after = plain_steps(copy.deepcopy(base), reference, batches, autocast)[1:]
    plain = statistics.mean(plain_before + plain_after)
    step = statistics.mean(trl_times)
    trl = step + reference_share
    before, after = statistics.mean(plain_before), statistics.mean(plain_after)
    print(f"(1) DPO step, batch {options.batch}: TRL {trl:.2f} s ({step:.2f} s a step + "
          f"{reference_share:.2f} s of reference log-probs computed first), plain PyTorch "
          f"{plain:.2f} s (before {before:.2f}, after {after:.2f}); ratio {trl / plain:.2f}x "
          f"(target <= 1.2) over {len(trl_times)} steps each")  # fmt: skip

    # This process holds the base, TRL's policy and the plain loop's policy and reference.
    worker_shape = subprocess.run(
        [sys.executable, __file__, "--peak-only", "--batch", str(options.batch),
         "--pairs", str(options.pairs)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak_gb = float(worker_shape.stdout.strip().splitlines()[-1])
    rows_a_pass, passes = micro_batches(options.batch, on_gpu=False)
    print(f"(2) peak resident memory of a process that trains as the worker does (the policy, "
          f"reference log-probs computed first, 2 steps of batch {options.batch} in {passes} "
          f"passes of {rows_a_pass} pairs (LLM_TRAINING_MICRO_BATCH), an eval): {peak_gb:.2f} GiB "
          "(target <= 4)")  # fmt: skip

    if options.defaults:
        from trl import DPOConfig

        defaults = {
            "output_dir": tempfile.mkdtemp(prefix="dpo-bench-"),
            "per_device_train_batch_size": options.batch,
            "max_length": 256,
            "learning_rate": LR,
            "max_steps": 2,
            "use_cpu": True,
            "report_to": [],
            "disable_tqdm": True,
            "save_strategy": "no",
            "beta": BETA,
        }  # TRL's bf16 and checkpointing
        slow = trainer_for(copy.deepcopy(base), tokenizer, data, defaults, stock=True)
        slow_clock = StepClock()
        slow.add_callback(slow_clock.callback())
        slow.train()
        step = slow_clock.times[-1]
        on = checkpointing_argument(DPOConfig, True)
        name = next(iter(on))
        print(f"(3) TRL 1.16's defaults (bf16={slow.args.bf16}, {name}="
              f"{getattr(slow.args, name)}): {step:.2f} s a step, "
              f"{step / trl:.1f}x the worker's settings")  # fmt: skip


if __name__ == "__main__":
    main()
