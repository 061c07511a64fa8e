"""Demo objects for `manage.py seed_demo`: a debate waiting for annotator1 to judge it, the NYU
2023 metadata and a handful of its sample rooms (real human and AI debates for the viewer and
numbers for the analytics page), and a small question bank for batches."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth.models import User

from debate.models import Debate, QuestionBank
from debate.research.imports import debate_files_import, question_bank_import
from debate.services import debate_create
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

QUESTION = "Why did the keeper paint the lighthouse door green every spring?"
PASSAGE = (
    "Every spring, before the first supply boat came, Ansel Marr scraped the lighthouse door "
    "down to the wood and painted it green. The salt wind peeled the paint by autumn, and a "
    "green door could be seen from the channel long after the white tower had vanished into "
    "the fog. The boat shed beside it he left red, because nobody steered by the boat shed."
)
# Two rooms of each setting the paper includes (human/AI × debate/consultancy).
DEMO_ROOMS = (
    "call-him-nemesis-5", "doorway-to-kal-jmar-1",  # human debate
    "atom-mystery-young-atom-detective-2", "call-him-nemesis-7",  # human consultancy
    "captain-chaos-0", "captain-chaos-4",  # AI debate
    "captain-chaos-2", "castaways-of-eros-4",  # AI consultancy
)  # fmt: skip
DEMO_BANK = "Demo: lighthouse questions"


# The NYU 2023 sample (CC-BY 4.0, see its README), shipped with the app so a fresh clone's demo
# has real debates in the viewer and numbers on the analytics page.
NYU_DIR = Path(__file__).resolve().parent / "data" / "nyu-debate-2023"


def nyu_dataset_dir() -> Path | None:
    return NYU_DIR if (NYU_DIR / "debates-metadata.jsonl").exists() else None


def seed() -> list[str]:
    return _seed_debate() + _seed_nyu() + _seed_bank()


def _seed_debate() -> list[str]:
    if Debate.objects.filter(question=QUESTION).exists():
        return []
    judge = User.objects.filter(username="annotator1").first()
    researcher = User.objects.filter(username="researcher").first()
    config = ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).first()
    if judge is None or researcher is None or config is None:
        return []
    debate = Debate(
        question=QUESTION,
        answer_a="So that boats could see the door through the fog",
        answer_b="Because green paint resists the salt wind",
        correct_side="a",
        passage=PASSAGE,
        debater_a_config=config,
        judge=judge,
        max_rounds=2,
    )
    debate_create(debate=debate, created_by=researcher)
    return [f"demo debate {debate.pk} waiting for annotator1"]


def _seed_nyu() -> list[str]:
    folder = nyu_dataset_dir()
    if folder is None or Debate.objects.filter(room_name=DEMO_ROOMS[0]).exists():
        return []
    files = [("debates-metadata.jsonl", (folder / "debates-metadata.jsonl").read_bytes())]
    files += [
        (f"{room}.json", (folder / "debates" / f"{room}.json").read_bytes())
        for room in DEMO_ROOMS
        if (folder / "debates" / f"{room}.json").exists()
    ]
    report = debate_files_import(files=files)
    return [f"NYU 2023: {len(report.imported)} debates imported ({len(files) - 1} full rooms)"]


def _seed_bank() -> list[str]:
    if QuestionBank.objects.filter(name=DEMO_BANK).exists():
        return []
    options = [
        "So that boats could see the door through the fog",
        "Because green paint resists the salt wind",
        "Because the keeper's wife liked green",
    ]
    lines = [
        {"title": "The green door", "passage": PASSAGE, "question": QUESTION,
         "options": options, "gold_index": 0, "distractor_index": 1},
        {"title": "The green door", "passage": PASSAGE,
         "question": "What colour was the boat shed?", "options": ["Red", "Green", "White"],
         "gold_index": 0},
    ]  # fmt: skip
    raw = "\n".join(json.dumps(line) for line in lines).encode()
    bank, report = question_bank_import(name=DEMO_BANK, raw=raw, created_by=None)
    return [f"question bank {bank}: {len(report.imported)} questions"] if bank else []
