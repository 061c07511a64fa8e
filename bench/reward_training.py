"""Reward-model benchmark: full training against TRL's RewardTrainer, fast training from
the triggering label to the active version, and scoring through the API.

Run: .venv/bin/python bench/reward_training.py [--pairs 2000] [--fast-pairs 5000]
     [--score-items 512] [--skip-full]

Works in a scratch var/ folder (SQLite, the embedded Redis, checkpoints), removed at the end.
Each part prints a ratio against a baseline measured in the same run:
  (1) full training on N learnable pairs (10 % of labels flipped): ours (rewards.ml.full_train)
      against trl.RewardTrainer on the same base (bundled all-MiniLM-L6-v2), the same
      pre-truncated pairs (TRL would drop long ones and append an EOS MiniLM lacks, so it
      gets token ids), the same hyperparameters (AdamW, lr 5e-5, batch 16 pairs, one epoch,
      linear decay, clip 1.0, seed 0) and the same precision where the CPU multiplies
      bfloat16 natively: bfloat16 autocast (TRL's RewardConfig defaults to bf16=True; ours
      follows LLM_DTYPE, as the worker does); wall time ratio (target <= 1.0) and held-out
      accuracy of each on the same held-out pairs (target: ours >= TRL's - 1 point);
  (2) fast training on M labelled pairs with every text's features already cached: from
      the label_submit that crosses the threshold to the new version active (target <= 30 s),
      against the target;
  (3) scoring at 128 tokens through POST /api/reward-models/{id}/score in batches of 64,
      items/s (target >= 40) against a bare transformers forward of the same batches.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="arbiter-bench-rewards-"))
os.environ["ARBITER_VAR_DIR"] = str(SCRATCH)
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("REWARD_MIN_HELDOUT_PAIRS", "8")

from core.stats import Share  # noqa: E402  (after the path and environment above)

WORDS = [
    "tides",
    "rainbows",
    "volcanoes",
    "magnets",
    "thunder",
    "snowflakes",
    "seasons",
    "rust",
    "echoes",
    "bees",
    "compost",
    "bicycles",
    "fog",
    "earthquakes",
    "lightning",
    "sourdough",
    "reefs",
    "sunsets",
    "hiccups",
    "wind",
    "glaciers",
    "fireflies",
    "bubbles",
    "deserts",
    "comets",
    "rivers",
    "clouds",
    "orbits",
    "gears",
    "ferns",
]
GOOD = [
    "Happy to help! Here is a clear explanation of {t}, step by step, with an example.",
    "Great question. I'll walk you through how {t} works and why, gently and clearly.",
    "Thanks for asking. Let me explain {t} carefully, with a friendly everyday example.",
    "Sure! {t} is easier than it looks; here is the idea, then a worked example.",
]
BAD = [
    "Ugh, {t}? Look it up yourself, this is a stupid question.",
    "Whatever. {t} is obvious, stop wasting my time.",
    "No. {t} is not worth explaining to you. Go away.",
    "{t}. Figure it out.",
]


def make_pairs(n: int, seed: int, *, noise: float, long: bool) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = f"{rng.choice(WORDS)} and {rng.choice(WORDS)} (case {seed}-{i})"
        filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 60))) if long else ""
        prompt = f"Explain {topic}. {filler}".strip()
        good, bad = rng.choice(GOOD).format(t=topic), rng.choice(BAD).format(t=topic)
        if long:
            good += " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))
            bad += " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))
        out.append((prompt, bad, good) if rng.random() < noise else (prompt, good, bad))
    return out


def accuracy(scores_chosen: list[float], scores_rejected: list[float]) -> Share:
    """Pairs where the chosen text scores higher, with n and the Wilson interval."""
    right = sum(c > r for c, r in zip(scores_chosen, scores_rejected, strict=True))
    return Share(right, len(scores_chosen))


def part_full(n: int) -> None:
    import datasets
    import torch
    import trl
    from django.conf import settings
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llm.backends.transformers_backend import compute_dtype
    from rewards import ml
    from rewards.schemas import Hyperparameters

    torch.set_num_threads(2)
    base = ml.bundled_base()
    train = make_pairs(n, 1, noise=0.1, long=True)
    heldout = make_pairs(max(200, n // 5), 2, noise=0.0, long=True)
    hp = Hyperparameters(
        max_length=128, learning_rate=5e-5, epochs=1, batch_size=16, weight_decay=0.0, seed=0
    )
    tokenizer = AutoTokenizer.from_pretrained(base)

    def ids(prompt: str, response: str) -> list[int]:
        return tokenizer(prompt, response, truncation="longest_first", max_length=128)["input_ids"]

    # Ours.
    loaded = ml.load(base, cached=False)
    start = time.perf_counter()
    ml.full_train(
        loaded,
        [p for p, _, _ in train],
        [c for _, c, _ in train],
        [r for _, _, r in train],
        hp,
        lambda *_: None,
        compute=compute_dtype(settings.LLM_DTYPE),  # as the worker trains
    )
    ours_s = time.perf_counter() - start
    hp_prompts = [p for p, _, _ in heldout]
    ours_acc = accuracy(
        ml.score(loaded, hp_prompts, [c for _, c, _ in heldout], 128),
        ml.score(loaded, hp_prompts, [r for _, _, r in heldout], 128),
    )

    # TRL's RewardTrainer, same base, data (as token ids, already truncated) and settings.
    data = datasets.Dataset.from_list(
        [{"chosen_ids": ids(p, c), "rejected_ids": ids(p, r)} for p, c, r in train]
    )
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    config = trl.RewardConfig(
        output_dir=str(SCRATCH / "trl"),
        num_train_epochs=1,
        per_device_train_batch_size=16,
        learning_rate=5e-5,
        weight_decay=0.0,
        lr_scheduler_type="linear",
        warmup_steps=0,
        max_grad_norm=1.0,
        max_length=128,
        logging_steps=50,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        disable_dropout=False,
    )
    trainer = trl.RewardTrainer(
        model=model, args=config, train_dataset=data, processing_class=tokenizer
    )
    start = time.perf_counter()
    trainer.train()
    trl_s = time.perf_counter() - start
    model.eval()
    trl_loaded = ml.Loaded(tokenizer, model, ml.threading.Lock())
    trl_acc = accuracy(
        ml.score(trl_loaded, hp_prompts, [c for _, c, _ in heldout], 128),
        ml.score(trl_loaded, hp_prompts, [r for _, _, r in heldout], 128),
    )
    print(
        f"(1) full training, {n} pairs, 1 epoch: ours {ours_s:.1f} s ({n / ours_s:.1f} pairs/s),"
        f" TRL RewardTrainer {trl_s:.1f} s ({n / trl_s:.1f} pairs/s): ratio {ours_s / trl_s:.2f}"
        " (target <= 1.0)"
    )
    print(
        f"    held-out accuracy: ours {ours_acc.text}, TRL {trl_acc.text}"
        f" ({(ours_acc.k - trl_acc.k) * 100 / ours_acc.n:+.1f} points; target >= -1)"
    )


def part_fast(n: int) -> int:
    import uuid

    from django.contrib.auth.models import User
    from django.db import transaction

    from annotations.kinds import PairwisePayload
    from annotations.models import Assignment, Item, Label, Queue, QueueMember
    from annotations.services import NewItem, label_submit, queue_item_claim, queue_items_create
    from rewards.models import RewardModel, RewardVersion, Status
    from rewards.services import reward_model_save
    from rewards.training import reward_training_run

    user = User.objects.create(username=f"bench-{uuid.uuid4().hex[:6]}")
    queue = Queue.objects.create(
        name=f"bench {uuid.uuid4().hex[:6]}", kind="pairwise", labels_per_item=1
    )
    QueueMember.objects.create(queue=queue, user=user)
    pairs = make_pairs(n + 1, 3, noise=0.0, long=False)
    items = []
    for prompt, good, bad in pairs:
        items.append(
            NewItem(payload=PairwisePayload(prompt=prompt, response_a=good, response_b=bad))
        )
    queue_items_create(queue=queue, items=items)
    rows = list(Item.objects.filter(queue=queue).order_by("id"))
    # n labels written in bulk (the setup, not what is measured).

    with transaction.atomic():
        Label.objects.bulk_create(
            [
                Label(
                    queue=queue,
                    item=item,
                    annotator=user,
                    value={"choice": "a"},
                    time_spent_ms=1,
                    client_request_id=uuid.uuid4(),
                )
                for item in rows[:n]
            ],
            batch_size=2000,
        )
        Item.objects.filter(pk__in=[i.pk for i in rows[:n]]).update(label_count=1, complete=True)
    reward_model = reward_model_save(
        reward_model=RewardModel(name=f"bench {queue.pk}", fast_every=n + 1, full_every_hours=0),
        queues=[queue],
        user=None,
    )
    from rewards.models import Speed, Trigger
    from rewards.services import reward_training_start

    # Warm the feature cache (every text embedded once, ever) with a first run.
    warm = reward_training_start(
        reward_model=reward_model, speed=Speed.FAST, trigger=Trigger.MANUAL
    )
    assert warm is not None
    start = time.perf_counter()
    reward_training_run(version_id=warm.pk)
    warm_s = time.perf_counter() - start
    warm.refresh_from_db()
    print(
        f"    (setup) cold run embedding {warm.typed_metrics.embedded_texts} texts: {warm_s:.1f} s,"
        f" {warm.status}"
    )
    RewardModel.objects.filter(pk=reward_model.pk).update(fast_every=1)

    # The measured path: the label that crosses the threshold → the hook's check → the run.
    from annotations.hooks import labels_committed_notify

    start = time.perf_counter()
    lease = queue_item_claim(queue=queue, annotator=user)
    assert lease is not None
    label_submit(
        assignment_id=lease.pk,
        annotator=user,
        value={"choice": "a"},
        time_spent_ms=1,
        client_request_id=uuid.uuid4(),
    )
    labels_committed_notify(queue_ids=[queue.pk])  # label_submit's hook, once it calls it
    version = RewardVersion.objects.filter(reward_model=reward_model, status=Status.QUEUED).get()
    reward_training_run(version_id=version.pk)  # what the worker's task does
    version.refresh_from_db()
    took = time.perf_counter() - start
    m = version.typed_metrics
    print(
        f"(2) fast training, {m.train_pairs + m.heldout_pairs} pairs, {m.embedded_texts} texts"
        f" embedded: label -> {version.status} in {took:.1f} s; ratio to the 30 s target"
        f" {took / 30:.2f} (held-out accuracy {version.heldout.text if version.heldout else '-'})"
    )
    assert Assignment.objects.filter(queue=queue).exists()
    return reward_model.pk


def part_score(reward_model_id: int, n: int) -> None:
    import json
    import uuid

    import torch
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from annotations.services import api_token_create
    from rewards import ml
    from rewards.models import RewardModel

    user = User.objects.create(username=f"scorer-{uuid.uuid4().hex[:6]}")
    user.groups.add(Group.objects.get(name="researcher"))
    token = api_token_create(user=user, name="bench")
    rng = random.Random(4)
    # Long enough that every pair fills the 128 tokens.
    items = [
        {
            "prompt": " ".join(rng.choice(WORDS) for _ in range(80)),
            "response": " ".join(rng.choice(WORDS) for _ in range(80)),
        }
        for _ in range(n)
    ]
    batches = [items[i : i + 64] for i in range(0, n, 64)]
    client = Client(SERVER_NAME="127.0.0.1")
    url = f"/api/reward-models/{reward_model_id}/score"
    headers = {"Authorization": f"Bearer {token}"}
    client.post(
        url, json.dumps({"items": batches[0]}), content_type="application/json", headers=headers
    )
    start = time.perf_counter()
    for batch in batches:
        response = client.post(
            url, json.dumps({"items": batch}), content_type="application/json", headers=headers
        )
        assert response.status_code == 200, response.content
    api_rate = n / (time.perf_counter() - start)

    version = RewardModel.objects.get(pk=reward_model_id).active_version
    assert version is not None
    loaded = ml.load(version.artifact_path, cached=False)
    torch.set_num_threads(2)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            enc = loaded.tokenizer(
                [b["prompt"] for b in batch],
                [b["response"] for b in batch],
                truncation=True,
                max_length=128,
                padding=True,
                return_tensors="pt",
            )
            loaded.model(**enc)
    bare_rate = n / (time.perf_counter() - start)
    print(
        f"(3) scoring at 128 tokens, batches of 64: API {api_rate:.1f} items/s (target >= 40),"
        f" bare transformers forward {bare_rate:.1f} items/s: ratio {api_rate / bare_rate:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--fast-pairs", type=int, default=5000)
    parser.add_argument("--score-items", type=int, default=512)
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from config.embedded import embedded_redis_start

    redis = embedded_redis_start(
        socket_path=Path(settings.REDIS_URL.removeprefix("unix://")), log_path=SCRATCH / "redis.log"
    )
    try:
        call_command("migrate", verbosity=0)
        print(f"reward-model bench, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores")
        if not args.skip_full:
            part_full(args.pairs)
        reward_model_id = part_fast(args.fast_pairs)
        part_score(reward_model_id, args.score_items)
    finally:
        redis.terminate()
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
