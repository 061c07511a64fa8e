"""Tasks sent by name are registered by Django's set-up alone.

Services send some tasks by registered name, so that they need not import their tasks
module; each app's ready() imports it instead. A process that sends one without any test
having imported the module first (`make run` seeding the demo, a web replica) must find it,
so this runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

from django.conf import settings

CHECK = """
import json, django
django.setup()
from celery import current_app
from core.webhooks import DELIVER_TASK, FLUSH_TASK
from debate.generation import SPEECHES_TASK
from debate.research.batches import BATCH_TASK
from debate.research.markets import MARKET_TASK
from experiments.protocols import TRANSCRIPT_TASK
from experiments.services import ASSISTANCE_TASK
from feedback.services import LABELLING_TASK
from llm.services import MODEL_TRIAL_TASK, TRAINING_RUN_TASK
from rewards.best_of_n import RUN_TASK
from rewards.services import DEBATE_SCORES_FILL_TASK, SCORES_REFRESH_TASK, TRAINING_TASK
names = [SPEECHES_TASK, BATCH_TASK, MARKET_TASK, ASSISTANCE_TASK, LABELLING_TASK, RUN_TASK,
         DEBATE_SCORES_FILL_TASK, SCORES_REFRESH_TASK, TRAINING_TASK, DELIVER_TASK, FLUSH_TASK,
         MODEL_TRIAL_TASK, TRAINING_RUN_TASK, TRANSCRIPT_TASK]
print(json.dumps([name for name in names if name not in current_app.tasks]))
"""


def test_every_task_sent_by_name_is_registered_in_a_fresh_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
