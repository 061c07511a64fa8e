"""Do the bundled model's debaters stay on topic? Share of speeches that argue for their own
answer and repeat no line three times, for the shipped debater prompts and sampling (the
small-model prompts of debate/prompting.py, the bundled config's frequency penalty 0.4 and
presence penalty 0.2 — what migrations debate 0005 and llm 0005 install) against a baseline
measured in the same run (the first default prompts of debate 0002, no penalty).

Run: .venv/bin/python bench/debater_focus.py [--debates 20] [--tokens 96]

Each debate is one simultaneous opening round (two speeches, one per answer) on one of the
five short questions below, taken in turn (the first is the demo debate's); all speeches of a
variant are sampled as the bundled config samples (temperature 0.7, top-p 0.95, 96 new
tokens) in one seeded generate_batch call on the bundled SmolLM2-135M-Instruct.

Definitions (the README quotes them):
- A speech *argues for its own answer* when it names at least one word that only its own
  answer has — four letters or more, not a common word, compared case-insensitively — and
  names such words at least as often as words that only the other answer has.
- A speech *rambles* when some non-empty line (stripped) appears three or more times.
- A speech is *on topic* when it argues for its own answer and does not ramble.
- It *echoes* when it repeats the prompt's scaffolding ("Transcript so far", "Round 1 of",
  "characters"); reported, not counted against it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

QUESTIONS = [
    (
        "Why did the keeper paint the lighthouse door green every spring?",
        "So that boats could see the door through the fog",
        "Because green paint resists the salt wind",
        "Every spring, before the first supply boat came, Ansel Marr scraped the lighthouse door "
        "down to the wood and painted it green. The salt wind peeled the paint by autumn, and a "
        "green door could be seen from the channel long after the white tower had vanished into "
        "the fog. The boat shed beside it he left red, because nobody steered by the boat shed.",
    ),
    (
        "Why did Mira stop taking the bus to school?",
        "Her new bicycle was faster than the bus",
        "The bus route was cancelled",
        "In March the city cut the number 12 bus, the only one that passed Mira's street. Her "
        "grandfather fixed up his old bicycle for her, though it squeaked and was slow on hills. "
        "Mira rode it every morning, arriving sweaty and late, and said she missed the bus.",
    ),
    (
        "What did the baker use instead of sugar?",
        "Honey from his own hives",
        "Sweet apples from the orchard",
        "When the sugar ship was late, Tomas Bell would not close his bakery. He kept bees behind "
        "the shop, and that week every loaf and tart was sweetened with their honey. Customers "
        "said the bread tasted of clover. The orchard apples were still green and sour.",
    ),
    (
        "Why was the concert moved indoors?",
        "A storm was forecast for the evening",
        "Too many tickets were sold for the park",
        "The orchestra had planned to play in Willow Park, which holds two thousand people. Only "
        "nine hundred tickets were sold. On the morning of the concert the radio warned of "
        "thunder and hail by six o'clock, so the players carried their chairs into the town hall.",
    ),
    (
        "Who found the missing key?",
        "The neighbour's dog",
        "The youngest daughter",
        "For two days the family searched the house for the key to the shed. On the third "
        "morning the neighbour's dog trotted into the garden with something shiny in its mouth "
        "and dropped it at the door. It was the key, wet but unbroken. The youngest daughter had "
        "been looking under the sofa the whole time.",
    ),
]

STOPWORDS = {
    "that", "this", "with", "from", "because", "their", "they", "them", "there", "were",
    "what", "when", "which", "while", "would", "could", "should", "about", "after", "before",
    "into", "than", "then", "have", "been", "also", "only", "more", "most", "other", "some",
    "such", "very", "your", "does",
}  # fmt: skip
ECHOES = ("transcript so far", "round 1 of", "characters", "speech_char_limit")


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4 and w not in STOPWORDS}


def argues_own(speech: str, own: str, other: str) -> bool:
    mine, theirs = words(own) - words(other), words(other) - words(own)
    said = Counter(re.findall(r"[a-z]+", speech.lower()))
    own_hits = sum(said[w] for w in mine)
    other_hits = sum(said[w] for w in theirs)
    return own_hits > 0 and own_hits >= other_hits


def rambles(speech: str) -> bool:
    lines = Counter(line.strip() for line in speech.splitlines() if line.strip())
    return any(count >= 3 for count in lines.values())


def echoes(speech: str) -> bool:
    return any(marker in speech.lower() for marker in ECHOES)


def first_prompts() -> dict[str, str]:
    module = importlib.import_module("debate.migrations.0002_fill_protocol_prompts")
    return dict(module.PROMPTS["debate"])


def shipped_prompts() -> dict[str, str]:
    from debate.prompting import DEFAULT_PROMPTS

    return DEFAULT_PROMPTS["debate"]


def shipped_penalties() -> tuple[float, float]:
    """(frequency, presence) penalties the bundled config gets from its migration."""
    penalties = importlib.import_module("llm.migrations.0005_fill_bundled_penalties").PENALTIES
    return penalties["frequency_penalty"], penalties["presence_penalty"]


def chats(prompts: dict[str, str], debates: int) -> list[tuple[list, str, str]]:
    from debate.prompting import debater_messages

    out = []
    for n in range(debates):
        question, answer_a, answer_b, passage = QUESTIONS[n % len(QUESTIONS)]
        for mine, other in ((answer_a, answer_b), (answer_b, answer_a)):
            values = {
                "question": question, "answer_a": answer_a, "answer_b": answer_b,
                "my_answer": mine, "other_answer": other, "passage": passage,
                "speech_char_limit": 750, "quote_char_limit": 250, "round": 1, "max_rounds": 2,
            }  # fmt: skip
            messages = debater_messages(
                system_template=prompts["debater_system"],
                turn_template=prompts["debater_turn"],
                values=values,
                transcript=[],
            )
            out.append((messages, mine, other))
    return out


def run(backend, label: str, prompts: dict[str, str], params, debates: int) -> dict[str, float]:
    batch = chats(prompts, debates)
    start = time.perf_counter()
    done = backend.generate_batch([messages for messages, _, _ in batch], params=params)
    texts = [completion.text for completion in done]
    seconds = time.perf_counter() - start
    own = [argues_own(t, mine, other) for t, (_, mine, other) in zip(texts, batch, strict=True)]
    ramble = [rambles(t) for t in texts]
    echo = [echoes(t) for t in texts]
    good = [o and not r for o, r in zip(own, ramble, strict=True)]
    n = len(texts)
    print(f"\n== {label}: {n} speeches in {seconds:.0f} s")
    for text in texts[:4]:
        print("  ·", text.replace("\n", " ⏎ ")[:220])
    return {
        "on topic": sum(good) / n,
        "argues own answer": sum(own) / n,
        "line repeated 3×": sum(ramble) / n,
        "echoes the prompt": sum(echo) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--debates", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()

    import django

    django.setup()
    from llm.backends.base import GenerationParams
    from llm.backends.bundled import bundled_checkpoint
    from llm.backends.transformers_backend import TransformersBackend

    print(f"load average at the start: {os.getloadavg()}, {os.cpu_count()} CPUs")
    backend = TransformersBackend(
        str(bundled_checkpoint(ROOT / "var" / "models")), config_name="bench"
    )
    sampling = GenerationParams(
        temperature=0.7, top_p=0.95, max_new_tokens=args.tokens, seed=0, timeout_s=3600
    )
    from dataclasses import replace

    before = run(backend, "before: first prompts, no penalty", first_prompts(), sampling,
                 args.debates)  # fmt: skip
    frequency, presence = shipped_penalties()
    after = run(
        backend,
        f"after: shipped prompts, frequency penalty {frequency}, presence penalty {presence}",
        shipped_prompts(),
        replace(sampling, frequency_penalty=frequency, presence_penalty=presence),
        args.debates,
    )
    print(f"\nload average at the end: {os.getloadavg()}")
    print(f"\n{'share of speeches':<22} {'before':>8} {'after':>8}")
    for key in before:
        print(f"{key:<22} {before[key]:>8.0%} {after[key]:>8.0%}")


if __name__ == "__main__":
    main()
