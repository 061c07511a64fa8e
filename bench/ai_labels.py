"""AI labels on the bundled model: a labelling run's model calls, batched against one at a
time, in the same run.

Run: .venv/bin/python bench/ai_labels.py [--items 1000] [--baseline-items 100] [--batch 64]
     [--threads N]

On a busy machine make --items smaller: each phase prints its figure as it ends.

Pairwise items of the demo's shape, each asked in both orders with the default comparison
prompt (feedback.prompts) under the demo constitution's first principle
(feedback.demo.PRINCIPLES[0], "Prefer the response that answers the question that was asked.":
a principle of the length a researcher writes, not a toy one), exactly the chats a labelling
run sends. *Batched*: `Backend.choose_batch` over `--batch` chats at a time (feedback.labelling
makes one call per principle and BATCH_ITEMS items, 2 orders each: 64 chats; --batch 64 matches
it). *One at a time*: the same chats, one per call. Probabilities come from the option tokens'
log-probabilities: one forward pass per chat, never sampling (the bench checks the method and
that each chat's two probabilities sum to 1). The baseline runs on the first --baseline-items
items only (one at a time is slow); the ratio compares items per second. Both on the same
process and model, ABBA order.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--baseline-items", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64, help="chats per choose_batch call")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    import django

    django.setup()
    from annotations.kinds import item_kind
    from feedback.demo import PRINCIPLES
    from feedback.prompts import kind_shape, orders_for
    from llm.backends.base import ChatMessage, GenerationParams
    from llm.backends.bundled import BUNDLED_MODEL_ID, resolve_model_path
    from llm.backends.cache import process_model_cache

    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in cpu]
    print(f"{os.cpu_count()} cores, flags {', '.join(flags) or 'none of avx2/avx512'}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    from django.conf import settings

    path = resolve_model_path(BUNDLED_MODEL_ID, models_dir=settings.LLM_MODELS_DIR,
                              config_name="bench")  # fmt: skip
    backend = process_model_cache(max_models=1, dtype=settings.LLM_DTYPE).get(
        path, config_name="bench"
    )
    kind = item_kind("pairwise")
    shape = kind_shape(kind)
    chats = []
    for i in range(args.items):
        payload = {
            "prompt": f"Question {i}: how long should I boil an egg for a runny yolk?",
            "response_a": f"About {4 + i % 5} minutes from boiling, then cool it in cold water.",
            "response_b": "Eggs are a good source of protein and can be cooked in many ways.",
            "system": "",
        }
        for order in orders_for(kind, shape, shape.default, payload, PRINCIPLES[0]):
            chats.append([ChatMessage(role="user", content=order.text)])
    params = GenerationParams(temperature=0.0, max_new_tokens=1)
    backend.choose_batch(chats[:2], shape.options, params=params)  # warm-up

    def batched(rows: list) -> float:
        start = time.perf_counter()
        out = []
        for s in range(0, len(rows), args.batch):
            out += backend.choose_batch(rows[s : s + args.batch], shape.options, params=params)
        elapsed = time.perf_counter() - start
        assert all(c.method == "logprobs" for c in out)
        assert all(abs(sum(c.probabilities) - 1) < 1e-6 for c in out if c.probabilities)
        return elapsed

    def single(rows: list) -> float:
        start = time.perf_counter()
        for row in rows:
            backend.choose_batch([row], shape.options, params=params)
        return time.perf_counter() - start

    base_rows = chats[: 2 * args.baseline_items]
    # ABBA on the baseline's items: drift (other work on the machine) cancels out.
    a1 = single(base_rows)
    print(f"one at a time (A1): {a1:.1f} s", flush=True)
    b1 = batched(base_rows)
    print(f"batched (B1): {b1:.1f} s", flush=True)
    b2 = batched(base_rows)
    print(f"batched (B2): {b2:.1f} s", flush=True)
    a2 = single(base_rows)
    print(f"one at a time (A2): {a2:.1f} s", flush=True)
    one_rate = 2 * args.baseline_items / (a1 + a2)
    same_rate = 2 * args.baseline_items / (b1 + b2)
    full = batched(chats)
    full_rate = args.items / full
    print(f"one at a time: {one_rate:.2f} items/s ({args.baseline_items} items, both orders, ×2)")
    print(f"batched ({args.batch} chats a call), same items: {same_rate:.2f} items/s "
          f"= {same_rate / one_rate:.1f}× one at a time")  # fmt: skip
    print(f"batched, all {args.items} items: {full_rate:.2f} items/s in {full:.1f} s "
          f"= {full_rate / one_rate:.1f}× one at a time")  # fmt: skip


if __name__ == "__main__":
    main()
