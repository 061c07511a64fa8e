"""Training data from labels: preference pairs, and the held-out split. No torch here.

How labels become Bradley–Terry pairs (prompt, chosen, rejected):
  * a comparison item (pairwise, debate judgment: kinds with `pair_fields`) labelled `a` or
    `b` gives one pair per label, chosen = the picked response. `tie` and `both_bad` say
    nothing about which is better and give no pair (they still count as labels seen);
  * rated items (Likert, tree-node ratings) give pairs within one prompt: for every two items
    of the same prompt whose mean ratings differ, the higher-rated one is chosen. Items of a
    prompt rated alike give no pair. A debate judgment pairs the two answers to the question.

Split: each pair belongs to a group — its item, or for rated items its prompt — and a group
is held out when a hash of it falls under the reward model's held-out percent. The hash does
not depend on what else exists, so no group is ever on both sides, a held-out group stays
held out, and the held-out set only grows as labels arrive: every version of a reward model
is evaluated on a superset of the pairs its predecessors saw, and the gate re-scores the
active version on exactly the candidate's held-out pairs.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from annotations.kinds import item_kind
from annotations.models import Label


@dataclass(frozen=True)
class Pair:
    group: str  # the split unit: "item:<id>" or "prompt:<sha>"
    label_ids: tuple[int, ...]
    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class TrainingData:
    train: list[Pair]
    heldout: list[Pair]
    label_ids: list[int]  # every label read, pairs or not, ascending
    watermark: int  # the newest label id read (0: none)

    @property
    def label_hash(self) -> str:
        return labels_hash(self.label_ids)


def labels_hash(label_ids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, label_ids)).encode()).hexdigest()


def is_heldout(group: str, percent: int) -> bool:
    digest = hashlib.sha256(f"arbiter-heldout:{group}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def _pair_text(payload: dict, fields: tuple[str, str, str, str]) -> tuple[str, str, str]:
    system, prompt, a, b = fields
    lead = payload.get(system, "") if system else ""
    question = f"{lead}\n\n{payload[prompt]}" if lead else payload[prompt]
    return question, payload[a], payload[b]


def _rated_text(payload: dict) -> tuple[str, str]:
    prompt = payload.get("prompt") or payload.get("question") or ""
    text = payload.get("text") or payload.get("answer") or ""
    return prompt, text


def pairs_from_labels(labels: Iterable[Label]) -> list[Pair]:
    """Bradley–Terry pairs from labels (with their item and queue loaded), as documented
    above. Gold labels count like any other: they are real judgements."""
    pairs: list[Pair] = []
    rated: dict[tuple[int, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    rated_text: dict[int, tuple[str, str]] = {}
    rated_labels: dict[int, list[int]] = defaultdict(list)
    for label in labels:
        kind = item_kind(label.queue.kind)
        payload = label.item.payload
        value = label.value
        if kind.pair_fields is not None and "choice" in value:
            choice = value["choice"]
            if choice not in ("a", "b"):
                continue
            prompt, a, b = _pair_text(payload, kind.pair_fields)
            chosen, rejected = (a, b) if choice == "a" else (b, a)
            pairs.append(Pair(f"item:{label.item_id}", (label.pk,), prompt, chosen, rejected))
        elif "rating" in value:
            prompt, text = _rated_text(payload)
            rated[(label.queue_id, prompt)][label.item_id].append(int(value["rating"]))
            rated_text[label.item_id] = (prompt, text)
            rated_labels[label.item_id].append(label.pk)
    for (_, prompt), by_item in rated.items():
        group = "prompt:" + hashlib.sha256(prompt.encode()).hexdigest()[:32]
        means = sorted(
            ((sum(r) / len(r), item_id) for item_id, r in by_item.items()), key=lambda m: m[1]
        )
        for i, (mean_i, item_i) in enumerate(means):
            for mean_j, item_j in means[i + 1 :]:
                if mean_i == mean_j:
                    continue
                hi, lo = (item_i, item_j) if mean_i > mean_j else (item_j, item_i)
                ids = tuple(sorted(rated_labels[hi] + rated_labels[lo]))
                pairs.append(Pair(group, ids, prompt, rated_text[hi][1], rated_text[lo][1]))
    return pairs


def training_data(*, queue_ids: Sequence[int], heldout_percent: int) -> TrainingData:
    """Every label of these queues as pairs, split into train and held out."""
    labels = list(
        Label.objects.filter(queue_id__in=queue_ids)
        .select_related("item", "queue")
        .only("id", "value", "queue__kind", "item__payload", "item_id", "queue_id")
        .order_by("id")
    )
    pairs = pairs_from_labels(labels)
    train = [p for p in pairs if not is_heldout(p.group, heldout_percent)]
    heldout = [p for p in pairs if is_heldout(p.group, heldout_percent)]
    ids = [label.pk for label in labels]
    return TrainingData(train, heldout, ids, ids[-1] if ids else 0)
