"""The annotators' hot-path SQL, in one place: the claim, the submit, the membership look-up.

Written out in SQL because building them through the ORM costs more Python per call than the
database takes to run them (core/sql.py says why, bench/queues.py measures it). Table names and
outcome values come from the models, and the rules several statements share are written once
here and composed:

- a live lease: open and not yet expired (`live_leases`);
- room under k: labels plus live leases below the queue's k (`room_under_k`);
- gold: a gold item is exempt from k (every annotator may see it once), and is never complete.

Placeholders are `%(name)s` (core/sql.py); `%(now)s` and `%(k)s` are the caller's.
"""

from __future__ import annotations

from annotations.models import Assignment, Item, Label, Outcome, Priority, Queue, QueueMember
from core import sql

ITEM = Item._meta.db_table
LABEL = Label._meta.db_table
ASSIGNMENT = Assignment._meta.db_table
QUEUE = Queue._meta.db_table
MEMBER = QueueMember._meta.db_table
OPEN = Outcome.OPEN.value
SKIPPED = Outcome.SKIPPED.value
LABELLED = Outcome.LABELLED.value


def live_leases(item_id: str) -> str:
    """How many live leases the item `item_id` (an SQL expression) has."""
    return (
        f"(SELECT COUNT(*) FROM {ASSIGNMENT} a WHERE a.item_id = {item_id}"
        f" AND a.outcome = '{OPEN}' AND a.expires_at > %(now)s)"
    )


def room_under_k(label_count: str, item_id: str) -> str:
    """True while the item's labels plus live leases are below k (gold is not asked this)."""
    return f"{label_count} + {live_leases(item_id)} < %(k)s"


# The claim's pick. The plan wanted is a walk along the queue's order index that stops at the
# first item with room, probing each candidate's labels, skips and leases by index. The
# `LIMIT 1 OFFSET 0` keeps PostgreSQL from turning the NOT EXISTS probes into anti-joins:
# merged against this annotator's labels, those read every label ever given on the items
# before the queue's front (20–40 ms a claim once a 100k queue is half done, against 0.3 ms).
# Gold is literal text, not a parameter, so the prepared statement's plan can use the
# gold-only index. {gold}, {room}, {order} and {lock} are filled in by the claim.
PICK = f"""
SELECT {sql.columns(Item, "i")}
FROM {ITEM} i
WHERE i.queue_id = %(queue)s AND {{gold}} AND NOT i.complete
  AND NOT EXISTS (SELECT 1 FROM {LABEL} l
                  WHERE l.item_id = i.id AND l.annotator_id = %(annotator)s LIMIT 1 OFFSET 0)
  AND NOT EXISTS (SELECT 1 FROM {ASSIGNMENT} s
                  WHERE s.item_id = i.id AND s.annotator_id = %(annotator)s
                    AND s.outcome = '{SKIPPED}' LIMIT 1 OFFSET 0)
  {{room}}
ORDER BY {{order}}
LIMIT 1
{{lock}}
"""
# The end of an annotator's queue: the items they skipped, once no other item is left for them,
# in the order of their last skip (an item skipped again goes behind the others). Walks their
# own skips (the `assignment_mine` index), not the queue. {room} and {lock} as in PICK.
PICK_SKIPPED = f"""
SELECT {sql.columns(Item, "i")}
FROM {ITEM} i
JOIN (SELECT s.item_id, MAX(s.id) AS last_skip FROM {ASSIGNMENT} s
      WHERE s.annotator_id = %(annotator)s AND s.queue_id = %(queue)s
        AND s.outcome = '{SKIPPED}'
      GROUP BY s.item_id) skipped ON skipped.item_id = i.id
WHERE NOT i.is_gold AND NOT i.complete
  AND NOT EXISTS (SELECT 1 FROM {LABEL} l
                  WHERE l.item_id = i.id AND l.annotator_id = %(annotator)s)
  {{room}}
ORDER BY skipped.last_skip
LIMIT 1
{{lock}}
"""
PICK_GOLD = "i.is_gold"
PICK_REGULAR = "NOT i.is_gold"
PICK_ROOM = f"AND {room_under_k('i.label_count', 'i.id')}"
PICK_ORDER = {
    Priority.FIFO: "i.id",
    Priority.RANDOM: "i.random_key, i.id",
    Priority.UNCERTAINTY: "i.uncertainty DESC NULLS LAST, i.id",
}


def pick_prepared_form(priority: Priority = Priority.FIFO) -> str:
    """A regular item's pick with positional parameters $1..$4 (queue, annotator, now, k), as
    PostgreSQL's PREPARE takes it: for looking at its generic plan (a test and bench/queues.py)."""
    pick = PICK.format(
        gold=PICK_REGULAR, room=PICK_ROOM, order=PICK_ORDER[priority],
        lock="FOR UPDATE OF i SKIP LOCKED",
    )  # fmt: skip
    for n, name in enumerate(("queue", "annotator", "now", "k"), start=1):
        pick = pick.replace(f"%({name})s", f"${n}")
    return pick


# Run after the pick has locked the item, as a new statement: on PostgreSQL a new snapshot,
# which sees a lease another claim committed between the pick's snapshot and its lock. It
# also refuses an item the annotator already holds or labelled: with a lease held ahead they
# have two open leases, and a claim from their other tab may have leased this item (as
# current or ahead), or labelled it, after the pick's snapshot.
_ITEM_LABEL_COUNT = f"(SELECT label_count FROM {ITEM} WHERE id = %(item)s)"
LEASE = f"""
INSERT INTO {ASSIGNMENT}
    (queue_id, item_id, annotator_id, outcome, created_at, expires_at, ahead)
SELECT %(queue)s, %(item)s, %(annotator)s, '{OPEN}', %(now)s, %(expires)s, %(ahead)s
WHERE (%(gold)s OR {room_under_k(_ITEM_LABEL_COUNT, "%(item)s")})
  AND NOT EXISTS (SELECT 1 FROM {ASSIGNMENT} mine
                  WHERE mine.item_id = %(item)s AND mine.annotator_id = %(annotator)s
                    AND mine.outcome = '{OPEN}')
  AND NOT EXISTS (SELECT 1 FROM {LABEL} l
                  WHERE l.item_id = %(item)s AND l.annotator_id = %(annotator)s)
RETURNING id
"""
# The lease held ahead becomes the current one once the current one has closed. Its time
# starts now: the annotator sees the item only from here, so its start (created_at, which an
# experiment's time limit and time per item count from) moves here too. A lease ahead that
# has expired, or that another request promoted or released meanwhile, is left alone (no
# row: the caller looks again).
PROMOTE = f"""
UPDATE {ASSIGNMENT} SET ahead = FALSE, created_at = %(now)s, expires_at = %(expires)s
WHERE id = %(lease)s AND outcome = '{OPEN}' AND ahead AND expires_at > %(now)s
"""

# The submit: takes the item's row lock and refuses a full item (gold exempt, and never
# complete) in one statement.
COUNT_LABEL = f"""
UPDATE {ITEM}
SET label_count = label_count + 1, complete = (NOT is_gold AND label_count + 1 >= %(k)s)
WHERE id = %(item)s AND (is_gold OR label_count < %(k)s)
"""
# The lease and its item in one round trip (a member's lease only).
LEASED_ITEM = f"""
SELECT {sql.columns(Item, "i")}, {sql.columns(Queue, "q")}, a.outcome
FROM {ASSIGNMENT} a
JOIN {ITEM} i ON i.id = a.item_id
JOIN {QUEUE} q ON q.id = a.queue_id
JOIN {MEMBER} m ON m.queue_id = a.queue_id AND m.user_id = a.annotator_id
WHERE a.id = %(lease)s AND a.annotator_id = %(annotator)s
"""
CLOSE_LEASE = f"""
UPDATE {ASSIGNMENT} SET outcome = '{LABELLED}', closed_at = %(now)s
WHERE id = %(lease)s AND outcome = '{OPEN}'
"""

# An annotator's progress in one statement (the labelling page shows it after every key):
# labels given, complete items, their labels on items not yet complete, the items they
# skipped that they can still get, and whether a label of theirs is young enough to undo.
PROGRESS = f"""
SELECT
  (SELECT COUNT(*) FROM {LABEL} l
   WHERE l.queue_id = %(queue)s AND l.annotator_id = %(annotator)s AND NOT l.is_gold),
  (SELECT COUNT(*) FROM {ITEM} i WHERE i.queue_id = %(queue)s AND i.complete),
  (SELECT COUNT(*) FROM {LABEL} l JOIN {ITEM} i ON i.id = l.item_id
   WHERE l.queue_id = %(queue)s AND l.annotator_id = %(annotator)s AND NOT l.is_gold
     AND NOT i.complete),
  (SELECT COUNT(DISTINCT s.item_id) FROM {ASSIGNMENT} s JOIN {ITEM} i ON i.id = s.item_id
   WHERE s.annotator_id = %(annotator)s AND s.queue_id = %(queue)s AND s.outcome = '{SKIPPED}'
     AND NOT i.complete AND NOT i.is_gold
     AND NOT EXISTS (SELECT 1 FROM {LABEL} l
                     WHERE l.item_id = i.id AND l.annotator_id = %(annotator)s)),
  EXISTS (SELECT 1 FROM {LABEL} l
          WHERE l.queue_id = %(queue)s AND l.annotator_id = %(annotator)s
            AND l.created_at > %(undo_since)s)
"""

# A member's queue, with their open leases there if any (the current one, and the one held
# ahead): a claim then needs no query for them.
MEMBER_QUEUE = f"""
SELECT {sql.columns(Queue, "q")},
       (SELECT a.id FROM {ASSIGNMENT} a
        WHERE a.queue_id = q.id AND a.annotator_id = m.user_id AND a.outcome = '{OPEN}'
          AND NOT a.ahead),
       (SELECT a.id FROM {ASSIGNMENT} a
        WHERE a.queue_id = q.id AND a.annotator_id = m.user_id AND a.outcome = '{OPEN}'
          AND a.ahead)
FROM {QUEUE} q
JOIN {MEMBER} m ON m.queue_id = q.id
WHERE q.id = %(queue)s AND m.user_id = %(user)s
"""
