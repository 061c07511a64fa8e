"""Imported only by the worker that tests/annotations/test_export_jobs.py kills mid-export
(`celery worker --include tests.worker_slow_export`): its exports write one block, then hang,
so the test can kill the worker while a job is RUNNING."""

import time

from annotations.export_worker import export_run

_write = export_run.__globals__["export_write"]


def _slow_write(plan, out, *, on_labels=None):
    out.write(b"half an export")
    time.sleep(600)
    return _write(plan, out, on_labels=on_labels)


export_run.__globals__["export_write"] = _slow_write
