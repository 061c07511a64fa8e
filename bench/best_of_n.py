"""Best-of-n sampling benchmark: N completions for each of P prompts on the bundled model,
batched as a best-of-n experiment samples them (rewards/best_of_n.py: one generate_batch
call of 64 rows per prompt), against one completion at a time (generate_batch of one
row, the same code path), in the same run. Target: batched throughput >= 3x.

Run: .venv/bin/python bench/best_of_n.py [--prompts 32] [--n 64] [--tokens 16]
                                          [--sequential 64]

One-at-a-time takes P x N calls (2,048 by default: most of an hour on 2 cores), so it is
timed on the first `--sequential` of them (the same prompts and params) and compared as
throughput: completion tokens per second, and completions per second. Every row samples the
full token budget (no early end-of-turn counts against either side: see `stop`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "var" / "models"
TOPICS = ["the tides", "rainbows", "rust", "fog", "volcanoes", "magnets", "bread rising",
          "thunder", "snowflakes", "the seasons", "echoes", "bees", "compost", "bicycles",
          "glaciers", "fireflies"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=64, help="completions per prompt (N)")
    parser.add_argument("--tokens", type=int, default=16, help="max new tokens a completion")
    parser.add_argument("--sequential", type=int, default=64,
                        help="one-at-a-time calls timed (the first of the P x N)")  # fmt: skip
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR,
                        help="checkpoint cache (default var/models)")  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()  # rewards.best_of_n (the experiment's batching) reads the models

    from llm.backends.base import ChatMessage, GenerationParams
    from llm.backends.bundled import bundled_checkpoint
    from llm.backends.transformers_backend import TransformersBackend
    from rewards.best_of_n import prompt_batches

    backend = TransformersBackend(str(bundled_checkpoint(args.models_dir)), config_name="bench")
    prompts = [f"Explain {TOPICS[i % len(TOPICS)]} (case {i}) in two sentences."
               for i in range(args.prompts)]  # fmt: skip
    chats = [[ChatMessage(role="user", content=p)] for p in prompts]

    def params(seed: int) -> GenerationParams:
        # No timeout to speak of: a shared machine may be slow, and the ratio is what counts.
        return GenerationParams(temperature=1.0, top_p=0.95, max_new_tokens=args.tokens,
                                seed=seed, timeout_s=3600.0)  # fmt: skip

    backend.generate_batch(chats[:1], params=params(0))  # warm up

    # Batched: exactly the experiment's calls.
    start = time.perf_counter()
    batched_tokens = batched_rows = 0
    for call, indices in enumerate(prompt_batches(len(chats), args.n)):
        rows = [chats[i] for i in indices for _ in range(args.n)]
        out = backend.generate_batch(rows, params=params(call))
        batched_tokens += sum(c.usage.completion_tokens for c in out)
        batched_rows += len(out)
    batched_s = time.perf_counter() - start

    # One at a time: the first `--sequential` of the same rows, each its own call.
    start = time.perf_counter()
    seq_tokens = seq_rows = 0
    for k in range(min(args.sequential, len(chats) * args.n)):
        out = backend.generate_batch([chats[k // args.n]], params=params(k))
        seq_tokens += out[0].usage.completion_tokens
        seq_rows += 1
    seq_s = time.perf_counter() - start

    b_tps, s_tps = batched_tokens / batched_s, seq_tokens / seq_s
    b_cps, s_cps = batched_rows / batched_s, seq_rows / seq_s
    flags = _cpu_flags()
    print(f"bundled SmolLM2-135M, {args.prompts} prompts x N={args.n}, <= {args.tokens} tokens "
          f"each, temperature 1.0; CPU: {os.cpu_count()} cores, {flags}")  # fmt: skip
    print(f"{'measure':<44} {'value':>14}  ratio / target")
    print(f"{'batched: completions':<44} {batched_rows:>14}  {batched_s:.1f} s")
    print(f"{'one at a time: completions timed':<44} {seq_rows:>14}  {seq_s:.1f} s")
    print(f"{'batched tokens/s':<44} {b_tps:>14.1f}")
    print(f"{'one-at-a-time tokens/s':<44} {s_tps:>14.1f}")
    print(f"{'batched / one-at-a-time (tokens/s)':<44} {b_tps / s_tps:>13.2f}x  target >= 3x")
    print(f"{'batched / one-at-a-time (completions/s)':<44} {b_cps / s_cps:>13.2f}x")
    print(f"{'one at a time, all P x N (extrapolated)':<44} "
          f"{len(chats) * args.n / s_cps:>12.0f} s")  # fmt: skip


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "flags unknown"
    names = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    found = [n for n in names if f" {n}" in text]
    return "flags: " + (", ".join(found) or "no AVX2/AVX-512")


if __name__ == "__main__":
    main()
