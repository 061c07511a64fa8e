"""Generation benchmark: model loading, streaming overhead, batching gain.

Run: .venv/bin/python bench/generation.py [--tokens 64] [--batch-tokens 32] [--rounds 3]

Each figure is printed next to a baseline measured in the same run, as a ratio:
  (a) bundled model: GGUF conversion (first run on a machine) and load of the cached
      checkpoint (target <= 5 s);
  (b) streaming through TransformersBackend.stream_chat vs bare model.generate, greedy,
      same prompt, same number of new tokens (target >= 0.9x);
  (c) 8 sibling prompts through generate_batch vs 8 sequential stream_chat calls
      (target >= 3x throughput).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "var" / "models"

STORY = "Write a long story about a dragon who learns to cook."
SIBLINGS = [
    "Argue that the answer is 'the butler'. Explain in a few sentences.",
    "Argue that the answer is 'the gardener'. Explain in a few sentences.",
    "Argue that the answer is 'the cook'. Explain in a few sentences.",
    "Argue that the answer is 'the driver'. Explain in a few sentences.",
    "Argue that the answer is 'the maid'. Explain in a few sentences.",
    "Argue that the answer is 'the guest'. Explain in a few sentences.",
    "Argue that the answer is 'the doctor'. Explain in a few sentences.",
    "Argue that the answer is 'the heir'. Explain in a few sentences.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=64, help="new tokens for (b)")
    parser.add_argument("--batch-tokens", type=int, default=32, help="new tokens for (c)")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions for (b)")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=MODELS_DIR,
        help="checkpoint cache (default var/models); an empty dir re-measures the conversion",
    )
    args = parser.parse_args()

    # Never reach for the hub; and make `llm` importable when run as a script.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))

    rows: list[tuple[str, str, str]] = []
    backend = bench_loading(rows, models_dir=args.models_dir)
    bench_streaming(rows, backend, tokens=args.tokens, rounds=args.rounds)
    bench_batching(rows, backend, tokens=args.batch_tokens)

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure'.ljust(width)}  {'value':>16}  ratio / target")
    print(f"{'-' * width}  {'-' * 16}  {'-' * 28}")
    for name, value, ratio in rows:
        print(f"{name.ljust(width)}  {value:>16}  {ratio}")


def bench_loading(rows: list[tuple[str, str, str]], *, models_dir: Path) -> Any:
    start = time.perf_counter()
    import torch  # noqa: F401  (timed on purpose: the worker pays it once)
    import transformers  # noqa: F401

    rows.append(("import torch + transformers", f"{time.perf_counter() - start:.2f} s", ""))

    from llm.backends.bundled import BUNDLED_DIR_NAME, bundled_checkpoint
    from llm.backends.transformers_backend import TransformersBackend

    was_cached = (models_dir / BUNDLED_DIR_NAME).is_dir()
    start = time.perf_counter()
    path = bundled_checkpoint(models_dir)
    convert_s = time.perf_counter() - start
    if was_cached:
        rows.append(("(a) GGUF -> checkpoint conversion", "cached", f"already in {path}"))
    else:
        rows.append(("(a) GGUF -> checkpoint conversion", f"{convert_s:.1f} s", "once per machine"))

    start = time.perf_counter()
    backend = TransformersBackend(str(path), config_name="bench")
    load_s = time.perf_counter() - start
    rows.append(("(a) load cached checkpoint", f"{load_s:.2f} s", _verdict(load_s <= 5, "<= 5 s")))
    return backend


def bench_streaming(
    rows: list[tuple[str, str, str]], backend: Any, *, tokens: int, rounds: int
) -> None:
    import torch

    from llm.backends.base import ChatMessage, GenerationParams

    chat: list[ChatMessage] = [{"role": "user", "content": STORY}]
    params = GenerationParams(temperature=0.0, max_new_tokens=tokens)
    prompt_ids = torch.tensor([backend.encode_prompt(chat)])
    attention = torch.ones_like(prompt_ids)

    def bare() -> tuple[int, float]:
        start = time.perf_counter()
        with torch.inference_mode():
            out = backend.model.generate(
                input_ids=prompt_ids,
                attention_mask=attention,
                max_new_tokens=tokens,
                min_new_tokens=tokens,  # same token count as the stream, EOS or not
                do_sample=False,
                pad_token_id=backend.tokenizer.pad_token_id,
            )
        return out.shape[1] - prompt_ids.shape[1], time.perf_counter() - start

    def streamed() -> tuple[int, float, float]:
        start = time.perf_counter()
        usage = None
        for chunk in backend.stream_chat(chat, params=params):
            usage = chunk.usage or usage
        assert usage is not None
        return usage.completion_tokens, time.perf_counter() - start, usage.time_to_first_token_s

    # Warm-up: the first forward passes on CPU pay one-off allocation and kernel selection.
    backend.model.generate(
        input_ids=prompt_ids, attention_mask=attention, max_new_tokens=4, do_sample=False
    )
    list(backend.stream_chat(chat, params=GenerationParams(temperature=0.0, max_new_tokens=4)))

    bare_rates: list[float] = []
    stream_rates: list[float] = []
    ttfts: list[float] = []
    counts: set[tuple[int, int]] = set()
    for _ in range(rounds):  # interleaved, so drift in machine load hits both sides alike
        n_bare, t_bare = bare()
        n_stream, t_stream, ttft = streamed()
        bare_rates.append(n_bare / t_bare)
        stream_rates.append(n_stream / t_stream)
        ttfts.append(ttft)
        counts.add((n_bare, n_stream))
    bare_rate = statistics.median(bare_rates)
    stream_rate = statistics.median(stream_rates)
    ratio = stream_rate / bare_rate
    n_bare, n_stream = sorted(counts)[0]
    note = "" if n_bare == n_stream else f" (stream stopped at {n_stream} tokens: EOS)"
    rows.append(("(b) bare model.generate", f"{bare_rate:.1f} tok/s", f"baseline, {n_bare} tok"))
    rows.append(
        (
            "(b) stream_chat",
            f"{stream_rate:.1f} tok/s",
            f"{ratio:.2f}x  " + _verdict(ratio >= 0.9, ">= 0.9x") + note,
        )
    )
    rows.append(("(b) stream_chat time to first text", f"{statistics.median(ttfts):.3f} s", ""))


def bench_batching(rows: list[tuple[str, str, str]], backend: Any, *, tokens: int) -> None:
    from llm.backends.base import ChatMessage, GenerationParams

    chats: list[list[ChatMessage]] = [[{"role": "user", "content": p}] for p in SIBLINGS]
    params = GenerationParams(temperature=0.0, max_new_tokens=tokens)

    backend.generate_batch(chats, params=GenerationParams(temperature=0.0, max_new_tokens=2))

    start = time.perf_counter()
    sequential_tokens = 0
    for chat in chats:
        for chunk in backend.stream_chat(chat, params=params):
            if chunk.usage is not None:
                sequential_tokens += chunk.usage.completion_tokens
    sequential_s = time.perf_counter() - start

    start = time.perf_counter()
    completions = backend.generate_batch(chats, params=params)
    batch_s = time.perf_counter() - start
    batch_tokens = sum(c.usage.completion_tokens for c in completions)

    seq_rate = sequential_tokens / sequential_s
    batch_rate = batch_tokens / batch_s
    ratio = batch_rate / seq_rate
    rows.append(
        (
            f"(c) {len(chats)} sequential stream_chat",
            f"{seq_rate:.1f} tok/s",
            f"baseline, {sequential_tokens} tok in {sequential_s:.1f} s",
        )
    )
    rows.append(
        (
            f"(c) generate_batch of {len(chats)}",
            f"{batch_rate:.1f} tok/s",
            f"{ratio:.2f}x  {_verdict(ratio >= 3, '>= 3x')}, {batch_tokens} tok in {batch_s:.1f} s",
        )
    )


def _verdict(ok: bool, target: str) -> str:
    return f"{'meets' if ok else 'MISSES'} {target}"


if __name__ == "__main__":
    main()
