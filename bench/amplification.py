"""Amplification-tree expansion benchmark on the bundled model.

Run: .venv/bin/python bench/amplification.py [--tokens 24] [--depth 2] [--children 3] [--question …]
     [--rounds 4] [--sampled [--seed 1]]
     (a few minutes alone; far longer on a busy machine)

Prints, each against a baseline measured in the same run:
  (1) expanding a tree (default depth 2, up to 3 children: 1 + 3 + 9 nodes) with
      amplification.expansion.tree_expand — one generate_batch per step, siblings and cousins
      together, repeated questions asked once — against a naive sequential expansion of the
      same tree, node by node, one generate call each: every decomposed node's decompose and
      compose prompts and every leaf's answer prompt, taken from the expanded tree's call
      records (a memo-hit leaf gets the answer prompt it would have been asked), so the same
      tree and the same token limits. Target: ratio <= 0.5. Also the ratio against only the
      calls the expansion made, one after another (what batching alone buys), nodes/s,
      tokens/s and memo hits.
  (2) editing one leaf's answer and recomposing: the model calls made, against the number of
      the leaf's ancestors (target: equal), and their wall time.

Runs in a temporary ARBITER_VAR_DIR with SQLite, migrated from scratch, removed at the end.
Websocket broadcasts are skipped (no Redis is started): this measures expansion, not fan-out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Why do leaves change colour in autumn?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=24, help="max new tokens per call")
    parser.add_argument(
        "--question", default=QUESTION,
        help="the root question (the bench needs a tree that decomposes: greedy decoding "
        "gives one tree per question and prompt)",
    )  # fmt: skip
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--children", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="ABBA rounds (2 cancels drift)")
    parser.add_argument(
        "--sampled", action="store_true",
        help="decode as the bundled config does (temperature 0.7, top-p 0.95, its penalties) "
        "with a fixed --seed, instead of greedy",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    var_dir = tempfile.mkdtemp(prefix="arbiter-bench-amp-")
    os.environ.update(
        ARBITER_VAR_DIR=var_dir, DJANGO_SETTINGS_MODULE="config.settings", HF_HUB_OFFLINE="1",
        DATABASE_URL=f"sqlite:///{var_dir}/bench.sqlite3", LOG_LEVEL="WARNING",
    )  # fmt: skip
    # The converted bundled checkpoint is shared, not rebuilt per run.
    os.environ.setdefault("LLM_MODELS_DIR", str(ROOT / "var" / "models"))
    sys.path.insert(0, str(ROOT))
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, check=True
        )
        run(args)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User

    from amplification import expansion
    from amplification.models import MemoEntry, Node, Tree
    from amplification.prompts import answer_prompt
    from amplification.services import node_edit, tree_create
    from llm.generation import backend_for, chat_messages
    from llm.models import ModelConfig

    print(f"models dir: {settings.LLM_MODELS_DIR}; load average at start "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")  # fmt: skip
    user = User.objects.create(username="bench")
    decoding = (
        {"temperature": 0.7, "top_p": 0.95, "frequency_penalty": 0.4, "presence_penalty": 0.2,
         "seed": args.seed}
        if args.sampled
        else {"temperature": 0.0}
    )  # fmt: skip
    config = ModelConfig.objects.create(
        name="bench", model="bundled:smollm2-135m-instruct", max_new_tokens=args.tokens,
        timeout_s=3600, **decoding,
    )  # fmt: skip
    backend = backend_for(config)
    params = config.generation_params()
    backend.generate_batch([chat_messages(config, "Say hello.")], params=params)  # warm-up

    calls: list[int] = []
    in_model: list[float] = []  # seconds inside each batched call
    real_generate = expansion._generate

    def counting(jobs):  # type: ignore[no-untyped-def]
        calls.append(len(jobs))
        started = time.perf_counter()
        try:
            return real_generate(jobs)
        finally:
            in_model.append(time.perf_counter() - started)

    with (
        mock.patch.object(expansion, "stream_send", lambda *a, **k: None),
        mock.patch.object(expansion, "_generate", counting),
        mock.patch("amplification.tasks.tree_expand_task.delay", lambda *a: None),
    ):

        def grow() -> tuple[Tree, float]:
            MemoEntry.objects.all().delete()  # each grown tree starts from an empty memo
            tree = tree_create(
                tree=Tree(question=args.question, decompose_config=config, answer_config=config,
                          compose_config=config, max_depth=args.depth,
                          max_children=args.children, max_nodes=200),
                created_by=user,
            )  # fmt: skip
            start = time.perf_counter()
            expansion.tree_expand(tree_id=tree.pk)
            return tree, time.perf_counter() - start

        def naive(prompts: list[str]) -> tuple[float, int]:
            """The same prompts, one call each, one after another."""
            start, produced = time.perf_counter(), 0
            for prompt in prompts:
                (done,) = backend.generate_batch([chat_messages(config, prompt)], params=params)
                produced += done.usage.completion_tokens
            return time.perf_counter() - start, produced

        # ABBA over rounds (expansion, naive, naive, expansion, …) so drift in a shared
        # machine's load weighs on both sides alike.
        tree, batched_s = grow()
        steps = list(calls)
        nodes = list(Node.objects.filter(tree=tree))
        prompts = [call["prompt"] for node in nodes for call in node.calls]
        # A naive expansion has no memo: a reused leaf is asked its own answer prompt.
        reused = [answer_prompt(tree, n.question) for n in nodes if n.resolution == "memo"]
        made_s, _ = naive(prompts)
        tokens = sum(call["completion_tokens"] for node in nodes for call in node.calls)
        by_depth = [sum(1 for n in nodes if n.depth == d) for d in range(args.depth + 1)]
        memo_hits = sum(1 for n in nodes if n.resolution == "memo")
        naive_s, naive_tokens = naive(prompts + reused)
        for extra in range(1, args.rounds):
            if extra % 2:
                more_s, more_tokens = naive(prompts + reused)
                tree, again_s = grow()
            else:
                tree, again_s = grow()
                more_s, more_tokens = naive(prompts + reused)
            batched_s, naive_s = batched_s + again_s, naive_s + more_s
            naive_tokens += more_tokens
            tokens += sum(c["completion_tokens"] for n in tree.nodes.all() for c in n.calls)
        rounds = args.rounds
        calls[:] = steps
        nodes = list(Node.objects.filter(tree=tree))

        shape = " + ".join(map(str, by_depth))
        print(f"\ntree: {shape} nodes, {len(prompts)} model calls in {len(calls)} batched "
              f"steps {calls}, max {args.tokens} new tokens a call; naive: "
              f"{len(prompts) + len(reused)} calls")  # fmt: skip
        print(f"{'':28}{'expansion':>12}{'naive':>12}{'ratio':>8}")
        print(f"{'wall time (s)':28}{batched_s:12.1f}{naive_s:12.1f}{batched_s / naive_s:8.2f}"
              f"   target <= 0.50 {'PASS' if batched_s / naive_s <= 0.5 else 'MISS'}")  # fmt: skip
        alone = batched_s / rounds / made_s
        print(f"{'only the calls made (s)':28}{'':12}{made_s:12.1f}{alone:8.2f}"
              f"   ({len(prompts)} calls one after another: batching alone)")  # fmt: skip
        print(f"{'of which in model calls (s)':28}{sum(in_model):12.1f}"
              f"   (the rest: the tree's reads, writes and locks between calls)")  # fmt: skip
        print(f"{'rounds (ABBA)':28}{rounds:12d}")
        print(f"{'nodes/s':28}{rounds * len(nodes) / batched_s:12.3f}"
              f"{rounds * len(nodes) / naive_s:12.3f}")  # fmt: skip
        print(f"{'completion tokens/s':28}{tokens / batched_s:12.2f}{naive_tokens / naive_s:12.2f}")
        print(f"{'memo hits':28}{memo_hits:12d}")

        # Editing one leaf's answer: exactly its ancestors' compose calls.
        leaf = max((n for n in nodes if n.resolution == "answered"), key=lambda n: (n.depth, -n.pk))
        ancestors = leaf.depth
        before = sum(len(n.calls) for n in Node.objects.filter(tree=tree))
        calls.clear()
        node_edit(tree_id=tree.pk, node_id=leaf.pk, user=user, answer="An edited answer.")
        start = time.perf_counter()
        expansion.tree_expand(tree_id=tree.pk)
        edit_s = time.perf_counter() - start
        after = list(Node.objects.filter(tree=tree))
        made = sum(len(n.calls) for n in after) - before
        composes = sum(1 for n in after for c in n.calls if c["step"] == "compose")
        print(f"\nedit a depth-{leaf.depth} leaf: {made} model calls (ancestors: {ancestors}) "
              f"{'PASS' if made == ancestors else 'MISS'}; {composes} compose calls in the "
              f"tree's record; {edit_s:.1f} s, vs {batched_s / rounds:.1f} s for the whole "
              f"tree (ratio {edit_s * rounds / batched_s:.2f})")  # fmt: skip
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
