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
