"""config.asgi under uvicorn, for the benches that measure through HTTP or websockets.

Import after the bench has put the project on sys.path and set its environment: the server
inherits that environment (database, Redis, var dir).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent


def asgi_serve(
    *, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
    log: IO[bytes] | None = None, timeout_s: float = 60.0,
) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    """Start the server on a free loopback port and return it once it listens, with its
    port. It dies with the bench. Raises RuntimeError (the server stopped) if it exits early
    or does not listen within `timeout_s`."""
    from config.embedded import die_with_parent

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--lifespan", "off", "--log-level", "warning", "--no-access-log",
         *extra_args],
        cwd=ROOT, env=env if env is not None else dict(os.environ), stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT if log is not None else None,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited early with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return process, port
        if time.monotonic() > deadline:
            process_stop(process)
            raise RuntimeError(f"uvicorn did not listen within {timeout_s:g} s")
        time.sleep(0.1)


def process_stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
