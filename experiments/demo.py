"""Demo objects for `manage.py seed_demo`: a small finished experiment, so a new researcher
sees the analysis page with numbers. Its eight participants are SIMULATED (their ids say so):
each answers through the same services a real participant's page calls, right with a fixed
chance per arm. The critique arm's critiques are queued for the worker to generate with the
bundled model; its simulated participants answered without them."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from django.contrib.auth.models import User

from annotations.kinds import ChoiceValue, PairwisePayload
from annotations.models import Queue
from annotations.services import NewItem, queue_items_create, queue_save
from experiments.models import Assistance, Experiment
from experiments.services import (
    ArmSpec,
    assistance_job_start,
    experiment_create,
    participant_join,
    participant_lease,
    response_submit,
)
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

EXPERIMENT_NAME = "Demo: do model critiques help raters? (simulated participants)"
QUESTION_SET = "Demo: oversight question set (all gold)"
SLUG = "demo-critiques"
# (question, A, B, the better one)
ITEMS = [
    ("Is 91 a prime number?", "Yes, nothing divides it.", "No: 91 = 7 × 13.", "b"),
    ("What is the capital of Australia?", "Canberra.", "Sydney.", "a"),
    ("How many bones does an adult human have?", "About 206.", "About 306.", "a"),
    ("Which is larger, 2^10 or 10^3?", "10^3 = 1000 is larger.", "2^10 = 1024 is larger.", "b"),
    ("What gas do plants take in for photosynthesis?", "Oxygen.", "Carbon dioxide.", "b"),
    ("Does ice float on water?", "Yes: ice is less dense than water.", "No, it sinks.", "a"),
]
# The simulated participants' chance of a right answer, per arm, and their seconds per item.
SIMULATED_SKILL = (0.6, 0.8)
CONSENT = """**A demo study.** You will compare two answers to each of six questions.
Taking part is voluntary; you may stop at any time. We store your answers and your study id."""
INSTRUCTIONS = "Press **1** if answer A is better, **2** if B is; **T** for a tie."


def seed() -> list[str]:
    if Experiment.objects.filter(slug=SLUG).exists():
        return []
    researcher = User.objects.filter(username="researcher").first()
    config = ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).first()
    if researcher is None or config is None:
        return []
    question_set = queue_save(
        queue=Queue(name=QUESTION_SET, kind="pairwise", labels_per_item=3), user=researcher
    )
    queue_items_create(
        queue=question_set,
        items=[
            NewItem(
                payload=PairwisePayload(prompt=question, response_a=a, response_b=b),
                gold=ChoiceValue.model_validate({"choice": better}),
                external_id=f"demo-oversight-{number}",
            )
            for number, (question, a, b, better) in enumerate(ITEMS, start=1)
        ],
    )
    experiment = experiment_create(
        name=EXPERIMENT_NAME,
        slug=SLUG,
        question_set=question_set,
        arms=[
            ArmSpec(name="Unassisted", time_limit_s=45),
            ArmSpec(
                name="Model critique",
                assistance=Assistance.CRITIQUE,
                model_config=config,
                time_limit_s=45,
            ),
        ],  # fmt: skip
        consent=CONSENT,
        instructions=INSTRUCTIONS,
        completion_code="DEMO2026",
        seed=2026,
        expert_gold=True,
        user=researcher,
    )
    _simulate(experiment)
    assistance_job_start(arm=experiment.arms.get(position=1))
    return [f"demo experiment “{EXPERIMENT_NAME}” with 8 simulated participants (/join/{SLUG}/)"]


def _simulate(experiment: Experiment) -> None:
    chance = random.Random(experiment.seed)
    for number in range(8):
        person, _ = participant_join(
            experiment=experiment,
            external_id=f"simulated-{number + 1}",
            study_id="demo-study",
            session_id=f"demo-session-{number + 1}",
        )
        skill = SIMULATED_SKILL[person.arm.position]
        while (lease := participant_lease(participant=person)) is not None:
            gold = next(item for item in ITEMS if item[0] == lease.item.payload["prompt"])[3]
            wrong = "a" if gold == "b" else "b"
            seconds = chance.uniform(8, 30) if number != 0 else 50  # one slow rater: late
            response_submit(
                participant=person,
                assignment_id=lease.pk,
                value={"choice": gold if chance.random() < skill else wrong},
                client_request_id=uuid.uuid4(),
                now=lease.created_at + timedelta(seconds=seconds),
            )
