"""Joins racing on PostgreSQL: each takes its own place in the randomisation sequence (the
experiment's row lock), so the arms stay balanced and an id joining twice at once is one
participant."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection

from experiments.assignment import arm_for
from experiments.errors import LinkClosed
from experiments.models import Participant
from experiments.services import participant_join
from tests.experiments.conftest import make_experiment
from tests.helpers import threads_run

THREADS = 8


@pytest.mark.postgres
def test_joins_at_once_keep_the_blocks_balanced(transactional_db, django_db_serialized_rollback):
    experiment = make_experiment(seed=42)
    problems: list[BaseException] = []

    def join(number: int) -> None:
        try:
            # Two threads per id: a double click on the study link.
            participant_join(experiment=experiment, external_id=f"P{number // 2}",
                             study_id="s", session_id="x")  # fmt: skip
        except LinkClosed as error:  # pragma: no cover - the link is open
            problems.append(error)
        finally:
            connection.close()

    threads_run(join, THREADS * 2)
    assert not problems
    people = list(Participant.objects.filter(experiment=experiment).order_by("sequence"))
    assert [p.sequence for p in people] == list(range(THREADS))
    assert [p.arm.position for p in people] == [arm_for(42, 2, n) for n in range(THREADS)]
    assert Counter(p.arm.position for p in people) == {0: THREADS // 2, 1: THREADS // 2}
    for person in people:
        assert person.arm.queue.members.filter(pk=person.user_id).exists()
