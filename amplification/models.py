"""Amplification trees: a question, its recursive decomposition, and every step's record.

A node's own work is one of: decompose (then compose once its children are done), answer
directly, reuse a memoised answer, or a person's answer. Its JSON columns (`calls`) are read
and written only through the pydantic models in amplification/schemas.py.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from llm.models import GenerationRecord, ModelConfig, TrainingRun

MAX_DEPTH = 4
MAX_CHILDREN = 8
MAX_NODES = 200
MAX_QUESTION_CHARS = 2_000
MAX_ANSWER_CHARS = 20_000

# Worked examples come from a bank ({examples}: amplification/prompts.py), two from other
# domains than the question's: the bundled 135M model copies a single fixed example into
# every tree. The children's answers sit right before the answer slot, short and numbered.
DEFAULT_DECOMPOSE_PROMPT = (
    "Split the last question into at most {max_children} simpler sub-questions about it.\n\n"
    "{examples}{context}Question: {question}\nSub-questions:"
)
DEFAULT_ANSWER_PROMPT = (
    "{context}Answer the question in one or two sentences.\n\nQuestion: {question}"
)
DEFAULT_COMPOSE_PROMPT = (
    "{context}Question: {question}\n\nFacts found so far:\n{subanswers}\n\n"
    "Answer the question in one or two sentences, using the facts above."
)


class Mode(models.TextChoices):
    MACHINE = "machine", "Machine: the model expands every node"
    AUGMENTED = "augmented", "Augmented: new nodes wait for a person or for the model"


class IterationRole(models.TextChoices):
    TRAIN = "train", "grown for distillation"
    DIRECT = "direct", "held out: the helper directly"
    AMPLIFIED = "amplified", "held out: the helper amplified by a tree"
    DISTILLED = "distilled", "held out: the distilled model directly"


class TreeStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting", "waiting for a person"
    DONE = "done"
    FAILED = "failed"


class Tree(models.Model):
    question = models.TextField(max_length=MAX_QUESTION_CHARS)
    context = models.TextField(blank=True, max_length=MAX_ANSWER_CHARS)
    decompose_config = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="+")
    answer_config = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="+")
    compose_config = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="+")
    decompose_prompt = models.TextField(default=DEFAULT_DECOMPOSE_PROMPT)
    answer_prompt = models.TextField(default=DEFAULT_ANSWER_PROMPT)
    compose_prompt = models.TextField(default=DEFAULT_COMPOSE_PROMPT)
    max_depth = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(0), MaxValueValidator(MAX_DEPTH)]
    )
    max_children = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(MAX_CHILDREN)]
    )
    max_nodes = models.PositiveSmallIntegerField(
        default=13, validators=[MinValueValidator(1), MaxValueValidator(MAX_NODES)]
    )
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.MACHINE)
    # Augmented mode: new nodes wait for a person until someone hands the rest to the model.
    hold_new_nodes = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=TreeStatus.choices, default=TreeStatus.QUEUED)
    error = models.TextField(blank=True)
    assignees = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="assigned_trees",
        help_text="annotators who may take and answer this tree's nodes",
    )  # fmt: skip
    is_demo = models.BooleanField(
        default=False, help_text="stored from recorded text by the demo seed, not generated here"
    )
    # Each claim by a worker counts up; a worker writes only while the count is its own.
    attempt = models.PositiveIntegerField(default=0, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    run_started_at = models.DateTimeField(null=True, blank=True)
    wall_s = models.FloatField(
        default=0.0, help_text="seconds the model spent on the tree (runs and drafts), over all"
    )
    # An imported tree: where it came from, and the sha256 of its content (the validated
    # export, re-serialised), so importing the same tree again is noticed. The first import
    # of a content is copy 1; a second copy, made on purpose, is 2, and so on.
    imported_from = models.CharField(
        max_length=255, blank=True, help_text="the file (or the API) an imported tree came from"
    )
    import_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    import_copy = models.PositiveSmallIntegerField(default=0, editable=False)
    # Iterated amplification: the iteration a tree belongs to and what it is there for.
    iteration = models.ForeignKey(
        "Iteration", on_delete=models.SET_NULL, null=True, blank=True, related_name="trees"
    )
    iteration_role = models.CharField(max_length=10, blank=True, choices=IterationRole.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]
        constraints = [
            # Two imports of one content at once: one becomes copy 1, the other is refused.
            models.UniqueConstraint(
                fields=["import_sha256", "import_copy"],
                condition=~models.Q(import_sha256=""),
                name="one_tree_per_import_copy",
            )
        ]

    def __str__(self) -> str:
        return f"tree {self.pk}: {self.question[:60]}"

    @property
    def group_name(self) -> str:
        return f"tree-{self.pk}"


class NodeStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STALE = "stale"


class Resolution(models.TextChoices):
    NONE = "", "not yet"
    DECOMPOSED = "decomposed"
    ANSWERED = "answered", "answered directly"
    MEMO = "memo", "memo hit"
    HUMAN = "human", "answered by a person"


class Author(models.TextChoices):
    NONE = "", "—"
    MODEL = "model"
    PERSON = "person"


class Node(GenerationRecord):
    tree = models.ForeignKey(Tree, on_delete=models.CASCADE, related_name="nodes")
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    position = models.PositiveSmallIntegerField(default=0)
    depth = models.PositiveSmallIntegerField(default=0)
    question = models.TextField(max_length=MAX_QUESTION_CHARS)
    resolution = models.CharField(
        max_length=12, choices=Resolution.choices, default=Resolution.NONE, blank=True
    )
    # Why a node that could have been decomposed was answered directly ("" when it was not).
    direct_reason = models.CharField(max_length=200, blank=True)
    answer = models.TextField(blank=True, help_text="a direct, memoised or person's answer")
    composed_answer = models.TextField(blank=True, help_text="composed from the children")
    status = models.CharField(max_length=10, choices=NodeStatus.choices, default=NodeStatus.PENDING)
    error = models.TextField(blank=True)
    decomposed_by = models.CharField(max_length=10, choices=Author.choices, blank=True)
    answered_by = models.CharField(max_length=10, choices=Author.choices, blank=True)
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", help_text="who decomposed or answered it, if a person did",
    )  # fmt: skip
    # Augmented mode: held for a person until someone takes it or hands it to the model.
    held = models.BooleanField(default=False)
    taken_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    # Each take counts up; a draft writes only while the count is the one it was made for
    # and the node is still taken and unanswered (amplification.expansion.node_draft).
    draft_attempt = models.PositiveIntegerField(default=0, editable=False)
    draft_answer = models.TextField(blank=True)
    draft_subquestions = models.TextField(blank=True)
    memo_origin = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="memo_reuses"
    )
    # A memo hit's provenance: the entry, tree and node it came from and the key it was served
    # under (schemas.MemoSource); kept when the origin is removed, and in exports.
    memo_source = models.JSONField(null=True, blank=True)
    # Why a memo hit's answer can no longer be trusted ("" when it can): its text is kept.
    memo_invalid = models.CharField(max_length=200, blank=True)
    skip_memo = models.BooleanField(default=False, help_text="recompute even on a memo hit")
    calls = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(GenerationRecord.Meta):
        ordering = ["depth", "parent_id", "position", "pk"]
        indexes = [models.Index(fields=["tree", "status"])]

    def __str__(self) -> str:
        return f"node {self.pk} of tree {self.tree_id}: {self.question[:50]}"

    @property
    def final_answer(self) -> str:
        if self.resolution == Resolution.DECOMPOSED:
            return self.composed_answer
        return self.answer

    @property
    def is_leaf_like(self) -> bool:
        return self.resolution != Resolution.DECOMPOSED

    def memo_forget(self) -> None:
        """The node's answer no longer comes from the memo (set before saving)."""
        self.memo_origin = None
        self.memo_source = None
        self.memo_invalid = ""


class NodeVersion(models.Model):
    """A node as it was after one change; the inspector shows consecutive ones as a diff."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    question = models.TextField()
    answer = models.TextField(blank=True)
    resolution = models.CharField(max_length=12, choices=Resolution.choices, blank=True)
    reason = models.CharField(max_length=200)
    author = models.CharField(max_length=10, choices=Author.choices, blank=True)
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["node", "number"]
        constraints = [
            models.UniqueConstraint(fields=["node", "number"], name="one_node_version_number")
        ]

    def __str__(self) -> str:
        return f"version {self.number} of node {self.node_id}"


class MemoEntry(models.Model):
    """A model-made answer, under the key of everything it depends on (amplification/memo.py):
    the tree's model configs as they generate, its prompts, the normalised question and the
    context it was answered under. An entry with an `invalid_reason` is never served."""

    # The answer config (a deleted config takes its entries along); its settings, and the
    # decompose and compose configs' (a composed answer depends on all three), are configs_key.
    config = models.ForeignKey(ModelConfig, on_delete=models.CASCADE, related_name="+")
    configs_key = models.CharField(max_length=64, blank=True)
    prompt_version = models.CharField(max_length=40, blank=True)
    context_key = models.CharField(max_length=64, blank=True)
    # sha256 of the normalised question: a short, indexable key for any question length.
    question_key = models.CharField(max_length=64)
    question = models.TextField()
    answer = models.TextField()
    tree = models.ForeignKey(
        Tree, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    node = models.ForeignKey(
        Node, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    invalid_reason = models.CharField(max_length=200, blank=True)
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["config", "configs_key", "prompt_version", "context_key", "question_key"],
                name="one_memo_per_key",
            )
        ]
        verbose_name_plural = "memo entries"

    def __str__(self) -> str:
        return f"memo {self.question[:60]}"


# --- iterated amplification: a line of iterations ----------------------------------------
class IterationLine(models.Model):
    """A line of iterations of amplify → distil: iteration 1's helper is `base`; iteration
    k+1's is iteration k's distilled model. Held-out questions are never trained on: each
    iteration answers them three ways (amplification/iterations.py)."""

    name = models.CharField(max_length=80, unique=True)
    base = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="+")
    held_out = models.JSONField(default=list, help_text="the held-out questions (strings)")
    # The trees each iteration grows (training trees of k > 1, amplified held-out answers).
    max_depth = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_DEPTH)]
    )
    max_children = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(MAX_CHILDREN)]
    )
    max_nodes = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(MAX_NODES)]
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class JudgeStatus(models.TextChoices):
    NONE = "", "not scored"
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"


class Iteration(models.Model):
    line = models.ForeignKey(IterationLine, on_delete=models.CASCADE, related_name="iterations")
    number = models.PositiveSmallIntegerField()
    helper = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="+")
    training_run = models.ForeignKey(
        TrainingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The reward model chosen to judge the blind pairs (amplification/iteration_judge.py).
    reward_model = models.ForeignKey(
        "rewards.RewardModel", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", help_text="the reward model that judges the held-out pairs",
    )  # fmt: skip
    judge_status = models.CharField(
        max_length=8, choices=JudgeStatus.choices, default=JudgeStatus.NONE, blank=True
    )
    judge_error = models.TextField(blank=True, help_text="why the last scoring failed")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["line", "number"]
        constraints = [
            models.UniqueConstraint(fields=["line", "number"], name="one_iteration_number")
        ]

    def __str__(self) -> str:
        return f"{self.line} iteration {self.number}"


class Comparison(models.TextChoices):
    """A blind pair of held-out answers: the first role against the second."""

    AMPLIFIED_DIRECT = "amplified-direct", "amplified vs the helper directly"
    DISTILLED_AMPLIFIED = "distilled-amplified", "distilled vs its amplified teacher"
    DISTILLED_DIRECT = "distilled-direct", "distilled vs the helper directly"


class IterationPair(models.Model):
    """One pairwise-queue item comparing two held-out answers of an iteration; which role
    sits on side A (drawn at random) is kept here, never in the item people see."""

    iteration = models.ForeignKey(Iteration, on_delete=models.CASCADE, related_name="pairs")
    question = models.TextField()
    comparison = models.CharField(max_length=24, choices=Comparison.choices)
    a_role = models.CharField(max_length=10, choices=IterationRole.choices)
    item = models.OneToOneField("annotations.Item", on_delete=models.CASCADE, related_name="+")
    # The reward-model judge's reading (amplification/iteration_judge.py): the version that
    # scored the pair, and P(first role wins) = σ(r_first − r_second). Replaced on a re-score.
    judge_version = models.ForeignKey(
        "rewards.RewardVersion", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    judge_p_first = models.FloatField(
        null=True, blank=True, help_text="P(first role wins) from judge_version"
    )

    class Meta:
        ordering = ["iteration", "pk"]

    def __str__(self) -> str:
        return f"{self.comparison} pair of {self.iteration}"
