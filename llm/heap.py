"""How a training process keeps its resident memory near what it really holds (glibc only;
elsewhere, or if libc cannot be loaded, every function here does nothing).

Training frees and reallocates the same tensors every pass: bfloat16 copies of the weights
under autocast, activations, gradients of the casts. glibc's malloc serves blocks under its
mmap threshold from the heap, and that threshold grows by itself (up to 32 MiB) after the
first large block is freed, so after a few passes most tensors come from the heap. Freed heap
blocks stay resident, split and reused in pieces, and the process's peak grows by the
fragments. Measured on the bundled model (bench/sft_step.py --peak-only, 7 December 2026,
bfloat16 host), the worker-shaped SFT process peaks at 3.95 GiB as glibc leaves it, 3.74
with the threshold fixed at 4 MiB, and 3.62 with the threshold and a trim after each pass.
Lower thresholds cost time: every block over one is a fresh mapping, faulted in page by
page, and a whole batch's activations are such blocks (64 KiB made a step 1.7x slower,
measured side by side); at 4 MiB only the embedding-sized blocks are mapped, as glibc maps
them anyway."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

# mallopt's parameter number for M_MMAP_THRESHOLD (malloc.h); blocks this size and over are
# mapped on their own and unmapped when freed.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 4 << 20


@functools.cache
def _glibc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc


def map_large_blocks() -> None:
    """Fix the mmap threshold at MMAP_THRESHOLD_BYTES for the rest of this process (which
    also stops glibc raising it)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def return_freed_memory() -> None:
    """Give free heap pages back to the system (malloc_trim(0): the heap's top and the
    whole free pages inside it, in every arena)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def trim_callback() -> Any:
    """A transformers TrainerCallback that returns freed memory after each pass, each step
    and each evaluation, so one pass's fragments are not carried into the next. A trim
    costs about 30 ms on the bundled model, 2-3 % of a step's time (7 December 2026)."""
    from transformers import TrainerCallback

    class ReturnFreedMemory(TrainerCallback):  # type: ignore[misc]
        def on_substep_end(self, *args: Any, **kwargs: Any) -> None:
            return_freed_memory()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            return_freed_memory()

        def on_evaluate(self, *args: Any, **kwargs: Any) -> None:
            return_freed_memory()

    return ReturnFreedMemory()
