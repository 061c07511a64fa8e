"""Every write of the annotations app, a module per concern: queues, items, claims (leases),
labels, exports, tokens; the domain errors in errors. The worker's writes to an export job
(run, sweep, expire) are in annotations/export_worker.py.

Invariants the services keep, under concurrency:
  * no item gets more than k labels (gold items excepted: every annotator may see those once);
  * no annotator labels an item twice;
  * a submit retried with the same client request id stores one label.

Locking: an annotator's open leases per queue (one current, at most one claimed ahead for the
labelling page) are a partial unique index, so two claims of theirs racing (two tabs) cannot
both lease; the loser finds the winner's lease. A claim takes
the first candidate item with `FOR UPDATE SKIP LOCKED` and recounts its labels and live leases
in a fresh statement before leasing it. A submit increments the item's label count with a
conditional UPDATE, which takes the item's row lock and refuses a full item in one statement.
On SQLite there is one writer at a time (transactions are IMMEDIATE), which gives the same
guarantees with the same code: `select_for_update` is a no-op there.

The claim and the submit are the annotators' hot path (bench/queues.py): each round trip to
the database counts, so they are written to make few.
"""

from annotations.services.claims import (
    CLAIM_ATTEMPTS,
    Held,
    assignment_release,
    assignment_skip,
    queue_item_claim,
    queue_item_prefetch,
)
from annotations.services.errors import (
    AlreadyLabelled,
    AnnotationError,
    DuplicateExternalId,
    ItemFull,
    LeaseGone,
    NotAMember,
    NothingToUndo,
    TokenNotFound,
)
from annotations.services.exports import (
    ExportFile,
    ExportGone,
    ExportNotReady,
    export_expired,
    export_file,
    export_retry,
    export_start,
)
from annotations.services.items import (
    BULK_BATCH,
    NewItem,
    item_scores_set,
    items_complete_mark,
    queue_items_create,
)
from annotations.services.labels import (
    label_submit,
    label_undo,
)
from annotations.services.queues import (
    queue_members_set,
    queue_save,
)
from annotations.services.tokens import (
    api_token_create,
    api_token_digest,
    api_token_revoke,
)

__all__ = [
    "ExportFile",
    "ExportGone",
    "ExportNotReady",
    "export_file",
    "AlreadyLabelled",
    "AnnotationError",
    "DuplicateExternalId",
    "ItemFull",
    "LeaseGone",
    "NotAMember",
    "NothingToUndo",
    "TokenNotFound",
    "queue_members_set",
    "queue_save",
    "BULK_BATCH",
    "NewItem",
    "item_scores_set",
    "items_complete_mark",
    "queue_items_create",
    "CLAIM_ATTEMPTS",
    "Held",
    "assignment_release",
    "assignment_skip",
    "queue_item_claim",
    "queue_item_prefetch",
    "label_submit",
    "label_undo",
    "export_expired",
    "export_retry",
    "export_start",
    "api_token_create",
    "api_token_digest",
    "api_token_revoke",
]
