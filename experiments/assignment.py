"""Randomisation: balanced permuted blocks, reproducible from the experiment's seed.

Each block holds every arm the same number of times (BLOCKS_PER_ARM) in an order shuffled by
a generator seeded with (experiment seed, block number); the n-th participant to join gets
the arm at place n of that sequence. So after every full block the arms are exactly balanced,
and the whole sequence can be recomputed from the seed alone.
"""

from __future__ import annotations

import random

# Each arm appears this often in a block: blocks of 2 × arms keep the next arm unguessable
# (with blocks of one per arm the last arm of a block would be certain).
BLOCKS_PER_ARM = 2
METHOD = (
    f"between subjects, balanced permuted blocks of {BLOCKS_PER_ARM} × the number of arms, "
    "each block shuffled by a generator seeded with the experiment's recorded seed and the "
    "block's number"
)


def block_size(arm_count: int) -> int:
    return BLOCKS_PER_ARM * arm_count


def block_order(seed: int, arm_count: int, block: int) -> list[int]:
    """The arm positions (0-based) of one block, in their shuffled order."""
    order = [arm for arm in range(arm_count) for _ in range(BLOCKS_PER_ARM)]
    random.Random(f"{seed}:{block}").shuffle(order)
    return order


def arm_for(seed: int, arm_count: int, sequence: int) -> int:
    """The arm (0-based position) of the participant who joined `sequence`-th (0-based)."""
    size = block_size(arm_count)
    return block_order(seed, arm_count, sequence // size)[sequence % size]
