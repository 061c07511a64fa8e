import socket

from celery import shared_task


@shared_task
def ping(token: str) -> dict[str, str]:
    """A round trip through broker, worker and result backend (health checks, diagnostics)."""
    return {"token": token, "worker": socket.gethostname()}
