"""core/sql.py: the hot path's statements give what the ORM would, on SQLite and PostgreSQL;
on PostgreSQL they are prepared once per connection with a generic plan (bench/queues.py
measures why), and nothing else is."""

import pytest
from django.contrib.auth.models import User

from core import sql
from tests.helpers import run_settings

USER_BY_ID = f"SELECT {sql.columns(User, 'u')}, 42 FROM auth_user u WHERE u.id = %(id)s"


@pytest.mark.django_db
def test_a_row_becomes_the_instance_the_orm_would_build(annotator):
    found = sql.fetch_model(User, USER_BY_ID, {"id": annotator.pk})
    assert found is not None
    user, extra = found
    assert extra == (42,)
    orm = User.objects.get(pk=annotator.pk)
    assert (user.pk, user.username, user.date_joined, user.is_active) == (
        orm.pk, orm.username, orm.date_joined, orm.is_active
    )  # fmt: skip
    assert user.date_joined.tzinfo is not None
    assert sql.fetch_model(User, USER_BY_ID, {"id": annotator.pk + 1000}) is None


@pytest.mark.django_db
def test_insert_returns_the_new_primary_key(annotator):
    user = sql.insert(User(username="inserted", password="!"))
    assert User.objects.get(pk=user.pk).username == "inserted"
    assert not user._state.adding


@pytest.mark.postgres
@pytest.mark.django_db
def test_hot_path_statements_are_prepared_once_with_a_generic_plan(annotator):
    for _ in range(3):
        sql.fetch_model(User, USER_BY_ID, {"id": annotator.pk})
    assert User.objects.filter(pk=annotator.pk).exists()  # the ORM: planned per call
    prepared = sql.fetch_all(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements", {}
    )
    ours = [row for row in prepared if row[0] == USER_BY_ID.replace("%(id)s", "$1")]
    assert ours == [(ours[0][0], 3, 0)]
    assert not [row for row in prepared if '"auth_user"' in row[0]]


@pytest.mark.postgres
@pytest.mark.django_db
def test_prepared_statements_can_be_turned_off_for_a_pooler():
    probe = (
        "import django, os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        "django.setup()\n"
        "from core import sql\n"
        "for _ in range(3): sql.fetch_one('SELECT %(x)s::int', {'x': 1})\n"
        "print(sql.fetch_one('SELECT COUNT(*) FROM pg_prepared_statements', {})[0])\n"
    )
    assert run_settings(probe, DB_PREPARED_STATEMENTS="0").stdout.strip() == "0"
    assert run_settings(probe).stdout.strip() != "0"
