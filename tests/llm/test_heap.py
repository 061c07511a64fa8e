"""llm/heap.py: what a training process does to glibc's heap, in a process of its own (the
mmap threshold is process-wide and would stay set for the rest of the test session)."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or "libc.so" not in (ctypes.util.find_library("c") or ""),
    reason="glibc only",
)

# Half-MiB blocks (under the fixed 1 MiB threshold, so from the heap), all freed but the last,
# which pins the heap's top so that freeing cannot shrink it: the freed pages stay resident
# until they are returned.
SCRIPT = textwrap.dedent(
    """
    import ctypes
    from pathlib import Path
    from llm.heap import map_large_blocks, return_freed_memory

    def resident_mib():
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    map_large_blocks()
    blocks = []
    for _ in range(400):
        block = libc.malloc(512 * 1024)
        ctypes.memset(block, 1, 512 * 1024)  # touched, so resident
        blocks.append(block)
    for block in blocks[:-1]:
        libc.free(block)
    freed = resident_mib()
    return_freed_memory()
    print(freed, resident_mib())
    """
)


def test_freed_heap_pages_go_back_to_the_system():
    script = "import ctypes.util\n" + SCRIPT
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=60, cwd=Path(__file__).parents[2])  # fmt: skip
    before, after = map(float, done.stdout.split())
    # 399 freed blocks of 0.5 MiB: about 200 MiB resident until the trim.
    assert before - after > 150, (before, after)


def test_the_callback_trims_after_each_pass_step_and_evaluation(monkeypatch):
    from llm import heap

    calls = []
    monkeypatch.setattr(heap, "return_freed_memory", lambda: calls.append(1))
    callback = heap.trim_callback()
    for hook in ("on_substep_end", "on_step_end", "on_evaluate"):
        getattr(callback, hook)(None, None, None)
    assert len(calls) == 3
