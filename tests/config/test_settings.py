import subprocess

import pytest

from tests import helpers

PROBE = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT 1")
print("pooled" if connection.pool is not None else "not pooled")
connection.close()
connection.close_pool()
"""


def run_settings(probe: str = PROBE, **env: str) -> subprocess.CompletedProcess[str]:
    return helpers.run_settings(probe, **env)


@pytest.mark.django_db
def test_a_bad_setting_names_its_variable():
    result = run_settings(DB_CONN_MAX_AGE="soon")
    assert result.returncode != 0
    assert "DB_CONN_MAX_AGE='soon' is not an integer" in result.stderr
    result = run_settings(LLM_DTYPE="fp8")
    assert result.returncode != 0
    assert "LLM_DTYPE='fp8' is not one of: auto, bfloat16, float32" in result.stderr


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_connections_come_from_a_pool_when_asked():
    assert run_settings(DB_POOL_SIZE="2").stdout.strip() == "pooled"
    assert run_settings(DB_POOL_SIZE="0").stdout.strip() == "not pooled"
    refused = run_settings(DB_POOL_SIZE="2", DB_CONN_MAX_AGE="60")
    assert "DB_POOL_SIZE and DB_CONN_MAX_AGE cannot both be set" in refused.stderr


def test_every_redis_key_arbiter_writes_is_under_its_prefix(redis_server):
    """Celery's queues and the channel layer's groups: a test session (as a deployment that
    shares a Redis) sees nothing another one wrote."""
    import redis
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from django.conf import settings

    from config.celery import app
    from config.embedded import redis_keys_delete

    prefix = settings.REDIS_KEY_PREFIX
    assert prefix.startswith("arbiter-test-")  # tests/environment.py
    app.send_task("no.such.task", queue="prefix-probe")
    async_to_sync(get_channel_layer().group_add)("prefix-probe", "specific.probe!1")
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = {key.decode() for key in client.scan_iter(match="*prefix-probe*")}
        assert f"{prefix}prefix-probe" in keys  # the queue, as a list
        assert keys and all(key.startswith(prefix) for key in keys), keys
        assert client.llen(f"{prefix}prefix-probe") == 1
    finally:
        client.close()
    assert redis_keys_delete(settings.REDIS_URL, f"{prefix}prefix-probe") == 1
    assert redis_keys_delete(settings.REDIS_URL, f"{prefix}arbiter:group:prefix-probe") == 1
    with pytest.raises(ValueError, match="every key"):
        redis_keys_delete(settings.REDIS_URL, "")


def test_the_old_channel_prefix_variable_is_refused_with_its_replacement():
    result = run_settings("import config.settings", CHANNELS_PREFIX="mine")
    assert result.returncode != 0
    assert "CHANNELS_PREFIX is gone: set REDIS_KEY_PREFIX" in result.stderr


def test_beat_never_queues_behind_a_generation_nor_piles_up():
    """Every beat entry goes to a queue other than `generation` (the sweepers to `default`:
    they rescue generations, so they must not wait behind one), and expires once its next
    copy is due, so copies nobody took in time are dropped instead of piling up."""
    from celery.schedules import crontab
    from django.conf import settings

    from config.celery import app

    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        queue = app.amqp.router.route({}, entry["task"])["queue"].name
        assert queue != "generation", f"{name} runs on the generation queue"
        if "stale" in entry["task"]:
            assert queue == "default", f"the sweeper {name} runs on {queue}"
        expires = entry["options"]["expires"]
        schedule = entry["schedule"]
        period = 86_400.0 if isinstance(schedule, crontab) else float(schedule)
        assert 0 < expires <= period, f"{name} expires after {expires} s, every {period} s"
