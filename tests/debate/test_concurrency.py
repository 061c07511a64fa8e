"""Real concurrent imports: ten clients POST one new record to /api/debates/import at once.
The unique room name decides which one creates the row; the others update it (PostgreSQL,
row locks; and SQLite's single-writer path)."""

import threading

import pytest
from django.conf import settings
from django.db import connection

from debate.models import Debate, Speech
from tests.debate.research_data import arbiter_record
from tests.factories import UserFactory
from tests.helpers import Api, threads_run

ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]


@pytest.mark.postgres
def test_ten_concurrent_imports_of_one_record_make_one_row_and_no_5xx(
    transactional_db, django_db_serialized_rollback
):
    race(threads=10)


@pytest.mark.skipif(ON_POSTGRES, reason="the SQLite single-writer path")
def test_concurrent_imports_on_sqlite_queue_behind_the_single_writer(
    transactional_db, django_db_serialized_rollback
):
    race(threads=4)


def race(*, threads: int) -> None:
    from core.roles import Role

    researcher = UserFactory(username="importer", role=Role.RESEARCHER)
    record = arbiter_record(name="one-new-room")
    clients = [Api(researcher) for _ in range(threads)]
    start = threading.Barrier(threads)
    statuses: list[int] = []
    created: list[list[str]] = []
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            response = clients[n].post("/debates/import", {"records": [record]})
            statuses.append(response.status_code)
            created.append(response.json().get("created"))
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)
        finally:
            connection.close()

    threads_run(work, threads)
    assert failures == []
    assert statuses == [200] * threads
    # One client created the room; every other one updated the row it committed.
    assert sorted(created) == [[]] * (threads - 1) + [["one-new-room"]]
    assert Debate.objects.filter(room_name="one-new-room").count() == 1
    debate = Debate.objects.get(room_name="one-new-room")
    assert Speech.objects.filter(debate=debate).count() == 1
    assert debate.verdicts.count() == 1
