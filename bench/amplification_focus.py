"""Do the bundled model's trees decompose the question they were given, and do composed
answers use what the children found? The shipped method (amplification/prompts.py: worked
examples from a bank, the copy guard and its one resample, short numbered sub-answers right
before the answer slot) against a baseline measured in the same run: the first prompts of
migration amplification 0001 (one fixed photosynthesis example; sub-answers as
"n. question / Answer: …" pairs) with the parser alone, as main had them.

Run: .venv/bin/python bench/amplification_focus.py [--questions 20] [--tokens 48]
     [--only after] [--seeds 0 1 2] [--arms "name the subject"]

Each of the demo questions below grows one level, every step batched over all questions as
tree_expand batches a level: one decompose call per question (plus, shipped method only, one
resample call for those the guard left too few sub-questions), one answer call per kept
sub-question, one compose call per decomposed question; every arm (before, after and any
--arms variant) rides in the same batches. Sampling is the bundled config's (temperature 0.7,
top-p 0.95, frequency penalty 0.4, presence penalty 0.2), seed 0 (--seeds: one run per seed, and
the shares pooled), at most --tokens new tokens a decomposition, 24 an answer and 32 a
composed answer, on the bundled SmolLM2-135M-Instruct.

Definitions (the README quotes them):
- content words: letters only, three or more, not a stop word (amplification.prompts).
- A sub-question is *on the question* when it shares a content word with its parent and
  copies no example sub-question: its words (case and punctuation aside) are not those of a
  sub-question from the bank or from the 0001 template, nor the same content words.
- A composed answer *uses a child* when it contains a content word of some child's answer;
  *uses a child's news* when that word is also not in the question (stricter; reported too).
- Shares carry n and a 95 % Wilson interval (core.stats.Share).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Twenty questions, none from the example bank, across domains; the first three are the
# ones a new user met (issue 24).
QUESTIONS = [
    "Why should a town build a seawall?",
    "Why do lithium batteries sometimes catch fire?",
    "Why did the French Revolution begin?",
    "How does a heat pump warm a house in winter?",
    "Why do cities have traffic jams at rush hour?",
    "How do earthquakes cause tsunamis?",
    "Why do some people get allergies to pollen?",
    "How does a refrigerator keep food cold?",
    "Why did the printing press change Europe?",
    "How do bees make honey?",
    "Why is the sky blue during the day?",
    "How does a bank decide to give someone a loan?",
    "Why do rivers flood in spring?",
    "How does a solar panel turn sunlight into electricity?",
    "Why did the Titanic sink?",
    "How do antibiotics kill bacteria?",
    "Why do volcanoes erupt?",
    "How does a jury reach a verdict?",
    "Why do cats purr?",
    "How does recycling plastic save energy?",
]


@dataclass
class Grown:
    question: str
    subquestions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    composed: str = ""
    resampled: bool = False
    raw: str = ""


def first_templates() -> dict[str, str]:
    """The tree's prompt templates as migration 0001 made them (main before issue 24)."""
    module = importlib.import_module("amplification.migrations.0001_initial")
    for operation in module.Migration.operations:
        if getattr(operation, "name", "") == "Tree":
            fields = dict(operation.fields)
            return {name: fields[name].default for name in
                    ("decompose_prompt", "answer_prompt", "compose_prompt")}  # fmt: skip
    raise LookupError("no Tree in amplification 0001")


def first_subanswers_block(pairs: list[tuple[str, str]]) -> str:
    """How main wrote the children into a compose prompt (PROMPT_VERSION 1)."""
    return "\n".join(
        f"{number}. {question}\n   Answer: {answer}"
        for number, (question, answer) in enumerate(pairs, start=1)
    )


# Leaves' and composed answers are one or two sentences: fewer tokens than a decomposition
# (--tokens) on a shared CPU.
ANSWER_TOKENS = 24
COMPOSE_TOKENS = 32


@dataclass(frozen=True)
class Arm:
    """One way of growing: `shipped` (bank examples, the guard, the new sub-answers block)
    or main's, and the tree templates it uses ({} for the defaults)."""

    label: str
    shipped: bool
    templates: dict[str, str] = field(default_factory=dict)


# Variants tried while iterating (--arms): tree templates a researcher could set.
VARIANTS: dict[str, dict[str, str]] = {
    "facts last": {
        "compose_prompt": "{context}Answer the question in one or two sentences, using the "
        "facts.\n\nQuestion: {question}\nFacts:\n{subanswers}",
    },
    "name the subject": {
        "decompose_prompt": "Split the last question into at most {max_children} simpler "
        "sub-questions. Each sub-question names what the question is about.\n\n{examples}"
        "{context}Question: {question}\nSub-questions:",
    },
}


def grow(
    backend, config, params, *, arms: list[Arm], questions: list[str]
) -> dict[str, list[Grown]]:
    """Every arm's trees, each step one batched call over all arms and questions."""
    from amplification.models import Tree
    from amplification.parsing import context_block, decomposition_parse, prompt_render
    from amplification.prompts import (
        answer_prompt,
        compose_prompt,
        decompose_prompt,
        decomposition_check,
    )
    from llm.generation import chat_messages

    rows = [(arm, Tree(question=q, max_children=3, **arm.templates), Grown(q))
            for arm in arms for q in questions]  # fmt: skip

    def batch(prompts: list[str], tokens: int) -> list[str]:
        if not prompts:
            return []
        chats = [chat_messages(config, p) for p in prompts]
        done = backend.generate_batch(chats, params=replace(params, max_new_tokens=tokens))
        return [completion.text for completion in done]

    built = [decompose_prompt(tree, tree.question) for _, tree, _ in rows]
    raws = batch([b.text for b in built], params.max_new_tokens)
    checked = {}
    for i, ((arm, tree, grown), raw) in enumerate(zip(rows, raws, strict=True)):
        grown.raw = raw
        if arm.shipped:
            checked[i] = decomposition_check(
                raw, parent_question=tree.question, examples=built[i].example_subquestions,
                limit=3,
            )  # fmt: skip
        else:
            grown.subquestions = decomposition_parse(raw, parent_question=tree.question, limit=3)
    again = [i for i, c in checked.items() if c.needs_resample]
    rebuilt = {i: decompose_prompt(rows[i][1], rows[i][1].question, attempt=1) for i in again}
    for i, raw in zip(
        again, batch([rebuilt[i].text for i in again], params.max_new_tokens), strict=True
    ):
        second = decomposition_check(
            raw, parent_question=rows[i][1].question,
            examples=rebuilt[i].example_subquestions, limit=3,
        )  # fmt: skip
        rows[i][2].resampled = True
        checked[i] = second if not second.needs_resample else replace(second, kept=[])
    for i, c in checked.items():
        rows[i][2].subquestions = c.kept
    leaves = [(i, sub) for i, (_, _, g) in enumerate(rows) for sub in g.subquestions]
    answers = batch([answer_prompt(rows[i][1], sub) for i, sub in leaves], ANSWER_TOKENS)
    for (i, _), answer in zip(leaves, answers, strict=True):
        rows[i][2].answers.append(answer.strip())
    decomposed = [i for i, (_, _, g) in enumerate(rows) if g.subquestions]
    prompts = []
    for i in decomposed:
        arm, tree, grown = rows[i]
        pairs = list(zip(grown.subquestions, grown.answers, strict=True))
        if arm.shipped:
            prompts.append(compose_prompt(tree, tree.question, pairs))
        else:
            prompts.append(prompt_render(
                tree.compose_prompt, question=tree.question,
                context=context_block(""), subanswers=first_subanswers_block(pairs),
            ))  # fmt: skip
    for i, text in zip(decomposed, batch(prompts, COMPOSE_TOKENS), strict=True):
        rows[i][2].composed = text.strip()
    return {arm.label: [g for a, _, g in rows if a is arm] for arm in arms}


def example_keys() -> tuple[set[str], list[set[str]]]:
    """Every example sub-question there is (bank and 0001 template): words and content words."""
    from amplification.parsing import LIST_ITEM, words_key
    from amplification.prompts import EXAMPLE_BANK, content_words

    subs = [s for example in EXAMPLE_BANK for s in example.subquestions]
    subs += [m.group("text") for line in first_templates()["decompose_prompt"].splitlines()
             if (m := LIST_ITEM.match(line))]  # fmt: skip
    return {words_key(s) for s in subs}, [content_words(s) for s in subs]


def score(label: str, grown: list[Grown], seconds: float) -> dict[str, object]:
    from amplification.parsing import words_key
    from amplification.prompts import content_words
    from core.stats import Share

    keys, word_sets = example_keys()
    on, subs = 0, 0
    for g in grown:
        parent = content_words(g.question)
        for sub in g.subquestions:
            subs += 1
            words = content_words(sub)
            copy = words_key(sub) in keys or (bool(words) and words in word_sets)
            on += bool(words & parent) and not copy
    uses = news = composed = 0
    for g in grown:
        if not g.composed:
            continue
        composed += 1
        said = content_words(g.composed)
        found = set().union(*(content_words(a) for a in g.answers))
        uses += bool(said & found)
        news += bool(said & (found - content_words(g.question)))
    print(f"\n== {label}: {len(grown)} questions (all arms together: {seconds:.0f} s)")
    for g in grown[:3]:
        print(f"  Q: {g.question}")
        for sub, answer in zip(g.subquestions, g.answers, strict=True):
            print(f"    - {sub}  →  {answer[:90]!r}")
        if not g.subquestions:
            print(f"    (raw) {g.raw[:160]!r}")
        print(f"    composed: {g.composed[:200]!r}")
    return {
        "sub-questions on the question": Share(on, subs),
        "composed answers using a child": Share(uses, composed),
        "… using a child's news": Share(news, composed),
        "questions decomposed": Share(sum(1 for g in grown if g.subquestions), len(grown)),
        "resampled": Share(sum(1 for g in grown if g.resampled), len(grown)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--only", choices=["before", "after"], default=None)
    # One batched call over every arm and question: on a loaded 2-core machine, 80 rows of
    # 40 tokens took over an hour (the run with --arms of 7 December 2026 timed out).
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds a call may take")
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0],
        help="grow every arm once per seed; shares are given per seed and pooled",
    )  # fmt: skip
    parser.add_argument(
        "--arms",
        nargs="*",
        default=[],
        choices=sorted(VARIANTS),
        help="variants to grow beside (in the same batches)",
    )
    args = parser.parse_args()

    import django

    django.setup()
    from llm.backends.base import GenerationParams
    from llm.backends.bundled import bundled_checkpoint
    from llm.backends.transformers_backend import TransformersBackend
    from llm.models import ModelConfig

    penalties = importlib.import_module("llm.migrations.0005_fill_bundled_penalties")
    print(f"load average at the start: {os.getloadavg()}, {os.cpu_count()} CPUs")
    backend = TransformersBackend(
        str(bundled_checkpoint(ROOT / "var" / "models")), config_name="bench"
    )
    # The bundled config as its migrations make it (not saved: only its system prompt is read).
    config = ModelConfig(name="bench", system_prompt=penalties.FIRST["system_prompt"])
    params = GenerationParams(
        temperature=0.7, top_p=0.95, max_new_tokens=args.tokens, timeout_s=args.timeout,
        **penalties.PENALTIES,
    )  # fmt: skip
    questions = QUESTIONS[: args.questions]
    arms = [Arm("before", False, first_templates()), Arm("after", True)]
    if args.only:
        arms = [arm for arm in arms if arm.label == args.only]
    arms += [Arm(name, True, VARIANTS[name]) for name in args.arms]
    pooled: dict[str, list[Grown]] = {arm.label: [] for arm in arms}
    for seed in args.seeds:
        start = time.perf_counter()
        grown = grow(backend, config, replace(params, seed=seed), arms=arms, questions=questions)
        seconds = time.perf_counter() - start
        for label, trees in grown.items():
            pooled[label] += trees
        table(
            f"seed {seed}", {label: score(label, trees, seconds) for label, trees in grown.items()}
        )
    if len(args.seeds) > 1:
        # Pooled over seeds: the same questions again, so the Wilson interval (which takes the
        # sub-questions as independent) is narrower than the questions alone would justify.
        table(
            f"pooled over seeds {args.seeds}",
            {label: score(label, trees, 0.0) for label, trees in pooled.items()},
        )
    print(f"\nload average at the end: {os.getloadavg()}")


def table(title: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}\n{'share':<34}" + "".join(f"{label:>46}" for label in results))
    for key in next(iter(results.values())):
        print(f"{key:<34}" + "".join(f"{r[key].text:>46}" for r in results.values()))


if __name__ == "__main__":
    main()
