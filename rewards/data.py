"""Training data from labels: preference pairs, and the held-out split. No torch here.

How labels become Bradley–Terry pairs (prompt, chosen, rejected):
  * a comparison item (pairwise, debate judgment: kinds with `pair_fields`) labelled `a` or
    `b` gives one pair per label, chosen = the picked response. `tie` and `both_bad` say
    nothing about which is better and give no pair (they still count as labels seen);
  * rated items (Likert, tree-node ratings) give pairs within one prompt: for every two items
    of the same prompt whose mean ratings differ, the higher-rated one is chosen. Items of a
    prompt rated alike give no pair. A debate judgment pairs the two answers to the question.

AI labels (RLAIF): a reward model whose `label_source` is "ai" or "both" also reads the a/b
choices that model annotators made on its queues' comparison items, through the provider the
feedback app registers (`ai_choices_register`; rewards does not import feedback). Each becomes
a pair of its item's group, weighted `ai_weight` under "both". The split is made over the
groups people labelled, exactly as for a human-only reward model, and the held-out side holds
human pairs only: whatever a version trains on, its gate evaluates it on people's labels. An AI
pair whose group is held out is never trained on; a group only the model labelled is stored on
the training side when a run trains on it, so it can never become held out later.

Split: each pair belongs to a group — its item, or for rated items its prompt — and each group's
side is stored (SplitGroup) the first time a training run reads it, and never changed: no group
is ever on both sides, a held-out group stays held out, and the held-out set only grows, so
every version of a reward model is evaluated on a superset of the pairs its predecessors saw,
and the gate re-scores the active version on exactly the candidate's held-out pairs. New groups
are held out, lowest hash first (a hash of the group, so deterministic by item, never by id
order or chance), until ceil(percent × groups / 100) are: the share is reached on small queues
too (a pure per-group hash test held out 3 of 60 items at 20 %).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db.models import Max

from annotations.kinds import item_kind
from annotations.models import Item, Label
from rewards.models import LabelSource, RewardModel, SplitGroup, Status
from rewards.schemas import Readiness


@dataclass(frozen=True)
class Pair:
    group: str  # the split unit: "item:<id>" or "prompt:<sha>"
    label_ids: tuple[int, ...]
    prompt: str
    chosen: str
    rejected: str
    weight: float = 1.0  # in the loss
    source: str = "human"  # or "ai"


@dataclass(frozen=True)
class AiChoice:
    """A model annotator's answer on one comparison item: "a" or "b" is better."""

    item_id: int
    choice: str


AiChoices = Callable[[Sequence[int]], list[AiChoice]]  # the queues' AI choices
_ai_providers: list[AiChoices] = []


def ai_choices_register(provider: AiChoices) -> None:
    """Call from an AppConfig.ready() (feedback does)."""
    if provider not in _ai_providers:
        _ai_providers.append(provider)


def ai_pairs(queue_ids: Sequence[int]) -> list[Pair]:
    """Pairs from the registered providers' AI choices on these queues' comparison items."""
    choices = [choice for provider in _ai_providers for choice in provider(queue_ids)]
    items = Item.objects.select_related("queue").in_bulk([c.item_id for c in choices])
    pairs = []
    for choice in choices:
        item = items.get(choice.item_id)
        if item is None or choice.choice not in ("a", "b"):
            continue
        fields = item_kind(item.queue.kind).pair_fields
        if fields is None:
            continue
        prompt, a, b = _pair_text(item.payload, fields)
        chosen, rejected = (a, b) if choice.choice == "a" else (b, a)
        pairs.append(Pair(f"item:{item.pk}", (), prompt, chosen, rejected, source="ai"))
    return pairs


def gold_pairs(queue_ids: Sequence[int]) -> list[Pair]:
    """A pair per gold comparison item whose gold answer is a or b (chosen = the gold one)."""
    pairs = []
    gold = Item.objects.filter(queue_id__in=list(queue_ids), is_gold=True).select_related("queue")
    for item in gold:
        fields = item_kind(item.queue.kind).pair_fields
        choice = (item.gold_value or {}).get("choice")
        if fields is None or choice not in ("a", "b"):
            continue
        prompt, a, b = _pair_text(item.payload, fields)
        chosen, rejected = (a, b) if choice == "a" else (b, a)
        pairs.append(Pair(f"item:{item.pk}", (), prompt, chosen, rejected, source="gold"))
    return pairs


@dataclass(frozen=True)
class TrainingData:
    train: list[Pair]
    heldout: list[Pair]
    label_ids: list[int]  # every label read, pairs or not, ascending
    watermark: int  # the newest label id read (0: none)
    # Sides decided now for groups no run had read (the run stores them: SplitGroup).
    new_sides: dict[str, bool] = field(default_factory=dict)
    groups: int = 0  # groups with pairs, on both sides
    heldout_groups: int = 0
    # Gold comparison items outside the training side: agreement with gold.
    gold: list[Pair] = field(default_factory=list)

    @property
    def ai_train_pairs(self) -> int:
        return sum(1 for p in self.train if p.source == "ai")

    @property
    def label_hash(self) -> str:
        return labels_hash(self.label_ids)


def labels_hash(label_ids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, label_ids)).encode()).hexdigest()


def group_rank(group: str) -> bytes:
    """A group's place in the hold-out order: a hash, so it depends on the group alone."""
    return hashlib.sha256(f"arbiter-heldout:{group}".encode()).digest()


def legacy_is_heldout(group: str, percent: int) -> bool:
    """The split before sides were stored (a hash under the percent), for groups that a
    version trained before then read: they keep the side they had."""
    return int.from_bytes(group_rank(group)[:4], "big") % 100 < percent


def heldout_target(groups: int, percent: int) -> int:
    """How many of `groups` are held out: ceil(percent × groups / 100)."""
    return -(-percent * groups // 100)


def split_assign(*, sides: dict[str, bool], groups: Iterable[str], percent: int) -> dict[str, bool]:
    """Sides for the groups not in `sides` (the stored ones): lowest `group_rank` first,
    held out until the held-out groups reach `heldout_target` of all groups, the rest
    trained on. Never moves a stored group. Returns the new groups' sides."""
    new = sorted({g for g in groups if g not in sides}, key=group_rank)
    held = sum(sides.values())
    take = min(len(new), max(0, heldout_target(len(sides) + len(new), percent) - held))
    return {group: i < take for i, group in enumerate(new)}


def labels_needed(
    *, train: int, heldout: int, groups: int, heldout_groups: int, percent: int,
    min_train: int, min_heldout: int,
) -> int:  # fmt: skip
    """How many more labels until `min_train` training and `min_heldout` held-out pairs,
    each new label an a/b label on a new item (one pair, one new group, split as
    `split_assign` would). 0: enough now."""
    for more in range(0, 1_000_000):
        extra = min(more, max(0, heldout_target(groups + more, percent) - heldout_groups))
        if heldout + extra >= min_heldout and train + more - extra >= min_train:
            return more
    raise ValueError("no number of labels reaches the minimums")  # unreachable for sane inputs


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


def _stored_sides(reward_model: RewardModel, pairs: Sequence[Pair]) -> dict[str, bool]:
    sides = dict(
        SplitGroup.objects.filter(reward_model=reward_model).values_list("group", "heldout")
    )
    if sides:
        return sides
    # Versions trained before sides were stored: the groups they read keep the old rule's side.
    legacy = (
        reward_model.versions.exclude(status=Status.FAILED)
        .exclude(artifact_path="")
        .aggregate(w=Max("label_watermark"))["w"]
    )
    if not legacy:
        return {}
    percent = reward_model.heldout_percent
    return {
        p.group: legacy_is_heldout(p.group, percent) for p in pairs if min(p.label_ids) <= legacy
    }


def training_data(*, reward_model: RewardModel) -> TrainingData:
    """Every label of the reward model's queues as pairs, split into train and held out:
    stored sides first, new groups by `split_assign` (returned in `new_sides`, not stored:
    the training run stores them, rewards/services.py `split_groups_store`). AI pairs join
    the training side by `label_source` (see above); the held-out side is human pairs only."""
    queue_ids = list(reward_model.queues.values_list("pk", flat=True))
    labels = list(
        Label.objects.filter(queue_id__in=queue_ids)
        .select_related("item", "queue")
        .only("id", "value", "queue__kind", "item__payload", "item_id", "queue_id")
        .order_by("id")
    )
    pairs = pairs_from_labels(labels)
    source = reward_model.label_source
    machine = ai_pairs(queue_ids) if source != LabelSource.HUMAN else []
    sides = _stored_sides(reward_model, pairs)
    used = {p.group for p in pairs}
    new_sides = split_assign(
        sides={g: h for g, h in sides.items() if g in used}, groups=used,
        percent=reward_model.heldout_percent,
    )  # fmt: skip
    # Groups only the model labelled: trained on, so never held out later.
    new_sides |= {p.group: False for p in machine if p.group not in sides and p.group not in used}
    sides = {**sides, **new_sides}
    train = [p for p in pairs if not sides[p.group]] if source != LabelSource.AI else []
    weight = reward_model.ai_weight if source == LabelSource.BOTH else 1.0
    train += [replace(p, weight=weight) for p in machine if not sides[p.group]]
    heldout = [p for p in pairs if sides[p.group]]
    ids = [label.pk for label in labels]
    return TrainingData(
        train, heldout, ids, ids[-1] if ids else 0, new_sides=new_sides, groups=len(used),
        heldout_groups=sum(sides[g] for g in used),
        gold=[p for p in gold_pairs(queue_ids) if sides.get(p.group) is not False],
    )  # fmt: skip


def readiness(*, reward_model: RewardModel) -> Readiness:
    """Whether the reward model's labels are enough for a run now (the split the next run
    would make, nothing stored), and if not how many more labels are needed."""
    data = training_data(reward_model=reward_model)
    min_train, min_heldout = settings.REWARD_MIN_TRAIN_PAIRS, settings.REWARD_MIN_HELDOUT_PAIRS
    needed = labels_needed(
        train=len(data.train), heldout=len(data.heldout), groups=data.groups,
        heldout_groups=data.heldout_groups, percent=reward_model.heldout_percent,
        min_train=min_train, min_heldout=min_heldout,
    )  # fmt: skip
    return Readiness(
        train_pairs=len(data.train), heldout_pairs=len(data.heldout), min_train_pairs=min_train,
        min_heldout_pairs=min_heldout, labels_needed=needed,
        heldout_percent=reward_model.heldout_percent, watermark=data.watermark,
    )  # fmt: skip
