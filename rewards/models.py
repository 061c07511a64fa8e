from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.stats import Share, share_of
from rewards.schemas import BlindSides, HumanGoldPairs, Hyperparameters, Metrics, Readiness


class Speed(models.TextChoices):
    FAST = "fast", "Fast (frozen encoder, new head)"
    FULL = "full", "Full (encoder fine-tuned)"


class Status(models.TextChoices):
    QUEUED = "queued"
    TRAINING = "training"
    EVALUATING = "evaluating"
    ACTIVE = "active"
    REJECTED = "rejected"
    RETIRED = "retired"
    FAILED = "failed"


RUNNING = (Status.QUEUED, Status.TRAINING, Status.EVALUATING)
# Versions that passed the gate once: what a researcher may roll back to.
GOOD = (Status.ACTIVE, Status.RETIRED)


class Trigger(models.TextChoices):
    LABELS = "labels", "New labels"
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Retrain now"
    RETRY = "retry", "Retry after a lost worker"


class LabelSource(models.TextChoices):
    HUMAN = "human", "Human labels (RLHF)"
    AI = "ai", "AI labels (RLAIF)"
    BOTH = "both", "Human and AI labels"


class RewardModel(models.Model):
    """A reward model: which queues' labels train it, from which base, and when."""

    name = models.CharField(max_length=200, unique=True)
    base_checkpoint = models.CharField(
        max_length=500,
        blank=True,
        help_text="a sequence-classification checkpoint path; empty: the bundled all-MiniLM-L6-v2",
    )
    queues: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        "annotations.Queue", related_name="reward_models"
    )
    fast_every = models.PositiveIntegerField(
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
        help_text="fast training after this many new labels",
    )
    full_every_hours = models.PositiveIntegerField(
        default=24,
        validators=[MaxValueValidator(24 * 365)],
        help_text="full training at most this often, when there are new labels; 0: never",
    )
    margin = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="a candidate may be this much less accurate than the active version and "
        "still go live (0: at least as accurate)",
    )
    max_length = models.PositiveSmallIntegerField(
        default=128, validators=[MinValueValidator(16), MaxValueValidator(512)]
    )
    # RLAIF: which labels it trains on; its gate always evaluates on human held-out pairs.
    label_source = models.CharField(
        max_length=5,
        choices=LabelSource.choices,
        default=LabelSource.HUMAN,
        help_text="which labels it trains on (AI labels: the model annotators' newest runs on "
        "its queues); held-out evaluation always uses human labels",
    )
    ai_weight = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.01), MaxValueValidator(10.0)],
        help_text="human and AI labels: an AI pair's weight in the loss, a human pair's being 1",
    )
    # Fixed at creation: the stored split (SplitGroup) keeps each group on its side, and
    # later groups are held out to keep this share (rewards/data.py).
    heldout_percent = models.PositiveSmallIntegerField(
        default=20, validators=[MinValueValidator(5), MaxValueValidator(50)]
    )
    # Whether its labels are enough to train and evaluate a version, and if not how many
    # more are needed: kept by reward_model_readiness_refresh (rewards/services.py), read
    # through `typed_readiness`. {} until first checked.
    readiness = models.JSONField(default=dict, blank=True, editable=False)
    active_version = models.OneToOneField(
        "RewardVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def typed_readiness(self) -> Readiness | None:
        return Readiness.model_validate(self.readiness) if self.readiness else None


class SplitGroup(models.Model):
    """Which side of the train/held-out split one group (an item, or a rated prompt) of a
    reward model is on, stored the first time a training run reads it and never changed:
    a group held out stays held out, and one trained on is never evaluated on."""

    reward_model = models.ForeignKey(
        RewardModel, on_delete=models.CASCADE, related_name="split_groups"
    )
    group = models.CharField(max_length=80)
    heldout = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reward_model", "group"], name="split_group_once")
        ]

    def __str__(self) -> str:
        side = "held out" if self.heldout else "train"
        return f"{self.reward_model_id} {self.group}: {side}"


class RewardVersion(models.Model):
    """One training run and, if it went well, the checkpoint it produced.

    A row is the job: QUEUED → TRAINING → EVALUATING → ACTIVE / REJECTED (or FAILED), claimed
    with a conditional UPDATE. At most one version of a reward model is queued or running
    (a partial unique index), which both deduplicates triggers and keeps two trainings of one
    reward model from running at once.
    """

    reward_model = models.ForeignKey(RewardModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    speed = models.CharField(max_length=10, choices=Speed.choices)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    reason = models.TextField(blank=True, help_text="why it was rejected, failed or retired")
    # The exact labels trained on (and evaluated on): their ids, how many, and a hash.
    label_ids = models.JSONField(default=list, blank=True)
    label_count = models.PositiveIntegerField(default=0)
    label_hash = models.CharField(max_length=64, blank=True)
    # The newest label id this version saw: new labels are those after it.
    label_watermark = models.BigIntegerField(default=0)
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    # SHA-256 of the checkpoint's weights file, taken when it was written: a changed or
    # missing file is never made active again (roll back checks it).
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    attempt = models.PositiveSmallIntegerField(default=1)
    # A running version's lease: renewed with every progress step; expired means the worker
    # is gone (reward_versions_reap marks it failed and queues a retry).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    wall_time_s = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["reward_model", "number"], name="reward_version_number_once"
            ),
            models.UniqueConstraint(
                fields=["reward_model"],
                condition=Q(status__in=["queued", "training", "evaluating"]),
                name="reward_version_one_running",
            ),
            models.UniqueConstraint(
                fields=["reward_model"],
                condition=Q(status="active"),
                name="reward_version_one_active",
            ),
        ]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="reward_version_lease")]

    def __str__(self) -> str:
        return f"{self.reward_model} v{self.number} ({self.status})"

    @property
    def typed_hyperparameters(self) -> Hyperparameters:
        return Hyperparameters.model_validate(self.hyperparameters)

    @property
    def typed_metrics(self) -> Metrics:
        return Metrics.model_validate(self.metrics)

    @property
    def heldout(self) -> Share | None:
        """Its held-out accuracy with n and the Wilson interval (None: not evaluated)."""
        m = self.typed_metrics
        return share_of(m.heldout_accuracy, m.heldout_pairs, m.heldout_correct)

    @property
    def baseline(self) -> Share | None:
        """The active version's accuracy on the same held-out pairs, when it was compared."""
        m = self.typed_metrics
        return share_of(m.baseline_accuracy, m.heldout_pairs, m.baseline_correct)

    @property
    def gold(self) -> Share | None:
        """Its accuracy on gold comparison items outside its training side (None: none)."""
        m = self.typed_metrics
        return Share(m.gold_correct, m.gold_pairs) if m.gold_correct is not None else None

    @property
    def length_bias(self) -> Share | None:
        """Of the held-out pairs it got wrong (lengths differing), the share where it preferred
        the longer response: above 50 % (the Wilson interval clear of it), it shares the
        raters' length bias."""
        m = self.typed_metrics
        return Share(m.length_wrong_longer, m.length_wrong_pairs) if m.length_wrong_pairs else None

    @property
    def shares_length_bias(self) -> bool:
        share = self.length_bias
        return share is not None and share.low is not None and share.low > 0.5

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def percent(self) -> int:
        if self.status not in RUNNING:
            return 100
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_step / self.progress_total))


class Embedding(models.Model):
    """A frozen encoder's features for one (prompt, response), computed once, ever.

    `key` hashes the base checkpoint, the max length and the text; `vector` is float32 bytes.
    """

    key = models.CharField(max_length=64, unique=True)
    vector = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"embedding {self.key[:12]}"


class InLabels(models.TextChoices):
    TRAIN = "train", "in its training labels"
    HELDOUT = "heldout", "in its held-out labels"
    NONE = "none", "not in its labels"


class DebateScore(models.Model):
    """The automatic judge's reading of one finished debate by one version:
    P(A correct) = σ(r_A − r_B), each side's reward scored on (question, that side's answer
    and speeches). One row per (version, debate): a newly promoted version scores every
    debate again, and the page shows the row of the version the rule picks
    (rewards/auto_judge.py).

    `debate_id` is the debate's id, not a foreign key: rewards knows debates only through the
    texts the debate app registers (rewards/auto_judge.py), so the score of a deleted debate
    is simply never asked for again.
    """

    version = models.ForeignKey(RewardVersion, on_delete=models.CASCADE, related_name="+")
    debate_id = models.PositiveBigIntegerField()
    reward_a = models.FloatField()
    reward_b = models.FloatField()
    probability_a = models.FloatField()
    # Whether the version's labels held this debate (its item, or the same question and
    # answers): trained on, held out, or neither. Blank: not looked up yet (the fill does).
    in_labels = models.CharField(max_length=8, choices=InLabels.choices, blank=True)
    # The debate's correct side when scored ("a", "b"; blank: none known): the automatic
    # judge's accuracy counts debates with one.
    correct_side = models.CharField(max_length=1, blank=True)
    scored_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "debate_id"], name="debate_score_once")
        ]

    def __str__(self) -> str:
        return f"debate {self.debate_id}: P(A) {self.probability_a:.2f} by {self.version_id}"


class ExperimentStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class GoldKind(models.TextChoices):
    MODEL = "model", "a reward-model version"
    HUMAN = "human", "human labels (blind pairs on a sample of prompts)"


class BestOfNExperiment(models.Model):
    """A best-of-n over-optimisation experiment (rewards/best_of_n.py): N samples per prompt
    from a policy, each scored by one or more proxy versions and a gold version.

    The row is the job: QUEUED → RUNNING → DONE / FAILED, claimed with a conditional UPDATE.
    `prompts` is the prompt set as it was read when the experiment started (a queue's prompts
    change; the experiment does not). `analysis` holds one AnalysisRecord per proxy
    (rewards/schemas.py), written when sampling and scoring are done.
    """

    name = models.CharField(max_length=200)
    policy = models.ForeignKey("llm.ModelConfig", on_delete=models.PROTECT, related_name="+")
    prompt_source = models.CharField(max_length=300, help_text="where the prompts came from")
    prompts = models.JSONField(default=list)
    samples_per_prompt = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(2), MaxValueValidator(64)]
    )
    temperature = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    seed = models.PositiveIntegerField(default=0)
    max_new_tokens = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(1024)]
    )
    proxies: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        RewardVersion, related_name="+"
    )
    # The gold scorer: a version (gold_kind MODEL), or people comparing best-of-n against
    # best-of-1 in blind pairs on `human_prompts` prompts drawn with the seed (HUMAN, no
    # version: rewards/human_gold.py).
    gold = models.ForeignKey(
        RewardVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    gold_kind = models.CharField(max_length=8, choices=GoldKind.choices, default=GoldKind.MODEL)
    human_prompts = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=ExperimentStatus.choices, default=ExperimentStatus.QUEUED
    )
    error = models.TextField(blank=True)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    analysis = models.JSONField(default=list, blank=True)
    # Written with every step of progress; a RUNNING experiment silent for long
    # (best_of_n.STALE_AFTER) has lost its worker and may be retried.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    wall_time_s = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(gold_kind="model", gold__isnull=False, human_prompts=0)
                    | models.Q(gold_kind="human", gold__isnull=True, human_prompts__gt=0)
                ),
                name="bon_gold_is_a_version_or_people",
            )
        ]

    def __str__(self) -> str:
        return f"best-of-{self.samples_per_prompt} {self.name} ({self.status})"

    @property
    def human_gold(self) -> bool:
        return self.gold_kind == GoldKind.HUMAN

    @property
    def running(self) -> bool:
        return self.status in (ExperimentStatus.QUEUED, ExperimentStatus.RUNNING)

    @property
    def percent(self) -> int:
        if self.status == ExperimentStatus.DONE:
            return 100
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_step / self.progress_total))


class BestOfNSample(models.Model):
    """One completion of one prompt of an experiment."""

    experiment = models.ForeignKey(
        BestOfNExperiment, on_delete=models.CASCADE, related_name="samples"
    )
    prompt_index = models.PositiveIntegerField()
    sample_index = models.PositiveSmallIntegerField()
    text = models.TextField()
    completion_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["prompt_index", "sample_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "prompt_index", "sample_index"], name="bon_sample_once"
            )
        ]

    def __str__(self) -> str:
        return f"sample {self.prompt_index}.{self.sample_index} of {self.experiment_id}"


class BestOfNScore(models.Model):
    """One version's reward of one sample (proxy or gold: the experiment says which)."""

    sample = models.ForeignKey(BestOfNSample, on_delete=models.CASCADE, related_name="scores")
    version = models.ForeignKey(RewardVersion, on_delete=models.PROTECT, related_name="+")
    score = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sample", "version"], name="bon_score_once")]

    def __str__(self) -> str:
        return f"{self.score:.3f} by {self.version_id} for {self.sample_id}"


class PolicyRun(models.Model):
    """The reward side of a policy training run's lineage (llm.TrainingRun, DPO or
    rejection sampling): the queue its pairs or prompts came from and the reward-model
    version that ranked its samples (rejection sampling) or is its report's proxy. Kept
    here, not on the run, because llm imports no other app (DESIGN.md). `gold_version` is
    the report's gold scorer, where the researcher chose one."""

    run = models.OneToOneField(
        "llm.TrainingRun", on_delete=models.CASCADE, related_name="policy_lineage"
    )
    queue = models.ForeignKey(
        "annotations.Queue", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reward_version = models.ForeignKey(
        RewardVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The gold scorer of the run's report: another reward model's version (never the proxy's).
    gold_version = models.ForeignKey(
        RewardVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"policy lineage of run {self.run_id}"


class PolicyEval(models.Model):
    """A blind pairwise human evaluation of a finished policy run: a pairwise queue of its
    report's samples, new policy against parent on held-out prompts, sides drawn at random
    per item. Which side is the new policy's is kept here, never in the item."""

    run = models.OneToOneField("llm.TrainingRun", on_delete=models.CASCADE, related_name="+")
    queue = models.OneToOneField("annotations.Queue", on_delete=models.CASCADE, related_name="+")
    sides = models.JSONField(default=dict)  # rewards.schemas.BlindSides
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"blind evaluation of run {self.run_id}"

    @property
    def typed_sides(self) -> BlindSides:
        return BlindSides.model_validate(self.sides)


class HumanGold(models.Model):
    """The blind pairs of an experiment whose gold is human (rewards/human_gold.py): a
    pairwise queue of best-of-n (the proxy's pick) against best-of-1 on a seeded sample of
    prompts, made by the worker when sampling and proxy scoring are done. Which side is
    best-of-n, and which n, are kept here, never in the item (rewards/blind.py)."""

    experiment = models.OneToOneField(
        BestOfNExperiment, on_delete=models.CASCADE, related_name="human_gold_pairs"
    )
    queue = models.OneToOneField("annotations.Queue", on_delete=models.CASCADE, related_name="+")
    pairs = models.JSONField(default=dict)  # rewards.schemas.HumanGoldPairs
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"human gold of experiment {self.experiment_id}"

    @property
    def typed_pairs(self) -> HumanGoldPairs:
        return HumanGoldPairs.model_validate(self.pairs)
