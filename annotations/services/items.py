"""Items: the one way they are made, and the reward model's scores on them."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from annotations.kinds import LabelValue, Payload
from annotations.models import (
    Item,
    Queue,
)
from annotations.services.errors import (
    DuplicateExternalId,
)

BULK_BATCH = 2000


@dataclass(frozen=True)
class NewItem:
    """One item for queue_items_create: a typed payload, and the expected label for gold."""

    payload: Payload
    gold: LabelValue | None = None
    external_id: str = ""


def queue_items_create(
    *, queue: Queue, items: Sequence[NewItem], skip_existing: bool = False
) -> int:
    """Add items to a queue, all or none; returns how many. The one way items are made.

    Debate and amplification call this with their own payload models once they register
    their kind (annotations.kinds.item_kind_register). An external id is unique in its queue
    (a constraint): with `skip_existing`, items whose external id the queue already has are
    left out (adding the same debates twice, or twice at once, adds each once); without it,
    such an item is DuplicateExternalId and nothing is added.

    Locks: the queue's row, first, so adds to one queue run one at a time and each sees the
    external ids the previous one committed.
    """
    kind = queue.item_kind
    rows = []
    for number, new in enumerate(items, start=1):
        if not isinstance(new.payload, kind.payload_model):
            raise ValidationError(
                f"item {number}: a {queue.kind} queue takes {kind.payload_model.__name__} "
                f"payloads, not {type(new.payload).__name__}"
            )
        if new.gold is not None and not isinstance(new.gold, kind.value_model):
            raise ValidationError(
                f"item {number}: gold value must be a {kind.value_model.__name__}"
            )
        rows.append(
            Item(
                queue=queue,
                payload=new.payload.model_dump(mode="json"),
                external_id=new.external_id,
                random_key=random.random(),
                is_gold=new.gold is not None,
                gold_value=new.gold.model_dump(mode="json") if new.gold is not None else None,
            )
        )
    try:
        with transaction.atomic():
            Queue.objects.select_for_update().filter(pk=queue.pk).exists()
            if skip_existing:
                present = _external_ids_present(queue, rows)
                rows = [row for row in rows if row.external_id not in present]
            regular = sum(1 for row in rows if not row.is_gold)
            Item.objects.bulk_create(rows, batch_size=BULK_BATCH)
            Queue.objects.filter(pk=queue.pk).update(item_count=F("item_count") + regular)
    except IntegrityError:
        present = _external_ids_present(queue, rows)
        if not present:
            raise
        shown = ", ".join(sorted(present)[:5])
        raise DuplicateExternalId(
            f"This queue already has items with external id {shown}."
        ) from None
    queue.refresh_from_db(fields=["item_count"])
    _planner_statistics_refresh(added=len(rows))
    return len(rows)


# Autovacuum re-analyses a table once this share of it changed; an import does not wait for it.
ANALYZE_SHARE = 0.1


def _planner_statistics_refresh(*, added: int) -> None:
    """After a large add, refresh PostgreSQL's statistics on the columns the claim filters on.

    The claim (hot_sql.PICK) is a generic plan built from these statistics. On a table that
    was never analysed, PostgreSQL guessed 8 rows for a fresh 2,000-item queue, sorted the whole
    queue and probed every item's labels and leases before taking the first: 10–15 ms a claim
    instead of 0.5 (bench/queues.py, fresh 2k). Autovacuum would analyse the table within
    a minute or so; annotators start labelling the moment an import is done. ANALYZE re-plans
    the prepared claims on every connection."""
    if connection.vendor != "postgresql" or not added:
        return
    table = connection.ops.quote_name(Item._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        known = cursor.fetchone()[0]
        # -1: never analysed. Fewer rows than were just added, by the share autovacuum uses.
        if known < 0 or added >= ANALYZE_SHARE * known:
            cursor.execute(f"ANALYZE {table} (queue_id, complete, is_gold)")


def _external_ids_present(queue: Queue, rows: Sequence[Item]) -> set[str]:
    wanted = {row.external_id for row in rows if row.external_id}
    if not wanted:
        return set()
    found = Item.objects.filter(queue=queue, external_id__in=wanted)
    return set(found.values_list("external_id", flat=True))


def item_scores_set(*, scores: Mapping[int, float | None]) -> int:
    """Write reward-model uncertainties onto items (the `uncertainty` priority reads them).

    Called by the rewards app; None clears a score. Returns the number of items updated.
    """
    items = [Item(pk=pk, uncertainty=score) for pk, score in scores.items()]
    for item in items:
        if item.uncertainty is not None and not math.isfinite(item.uncertainty):
            raise ValidationError(f"item {item.pk}: uncertainty must be a finite number")
    with transaction.atomic():
        return Item.objects.bulk_update(items, ["uncertainty"], batch_size=BULK_BATCH)


def items_complete_mark(*, queue_id: int, item_ids: Sequence[int]) -> int:
    """Mark these regular items of the queue complete before k labels (an app's own rule, e.g.
    feedback's: a confident model label plus fewer human labels): no claim picks them again.
    A later undo of one of their labels opens the item again, as for any complete item."""
    return Item.objects.filter(
        queue_id=queue_id, pk__in=list(item_ids), is_gold=False, complete=False
    ).update(complete=True)
