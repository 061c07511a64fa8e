"""The experiments stream nothing over websockets; a participant's session opens no socket at
all, so no frame can carry assistance, gold or another arm's material to them."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from config.asgi import application
from experiments.models import Assistance
from tests.experiments.conftest import make_experiment
from tests.factories import DebateFactory, ModelTrialFactory
from tests.helpers import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_participant_session_opens_no_websocket(annotator):
    experiment = make_experiment(assistance=Assistance.NONE)
    client = Client()
    client.get(f"/join/{experiment.slug}/?PROLIFIC_PID=P1&STUDY_ID=s&SESSION_ID=x")
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    debate = DebateFactory(judge=annotator)
    trial = ModelTrialFactory()
    paths = [f"/ws/debates/{debate.pk}/", f"/ws/llm/trials/{trial.pk}/",
             "/ws/reward-models/1/", "/ws/trees/1/"]  # fmt: skip

    def accepted(path: str) -> bool:
        socket = WebsocketCommunicator(
            application, path, headers=[ORIGIN, (b"cookie", cookie.encode())]
        )

        async def scenario() -> bool:
            connected, _ = await socket.connect()
            await socket.disconnect()
            return connected

        return async_to_sync(scenario)()

    assert client.get(f"/join/{experiment.slug}/consent/").status_code == 200  # signed in
    assert [path for path in paths if accepted(path)] == []


def test_a_bank_participant_cannot_watch_their_arms_batch_debates(fake_debaters, transcripts_sent):
    from debate.models import Debate
    from tests.experiments.conftest import bank_experiment, transcripts_ready

    experiment = bank_experiment(protocols=("direct", "debate"), slug="ws-bank")
    transcripts_ready(experiment)
    for number in range(4):  # a block: two in each arm, the debate arm's among them
        client = Client()
        client.get(f"/join/{experiment.slug}/?PROLIFIC_PID=P{number}&STUDY_ID=s&SESSION_ID=x")
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        cookie = f"{settings.SESSION_COOKIE_NAME}={session}".encode()
        for debate in Debate.objects.filter(batch__isnull=False):
            socket = WebsocketCommunicator(
                application, f"/ws/debates/{debate.pk}/", headers=[ORIGIN, (b"cookie", cookie)]
            )

            async def scenario(socket=socket) -> bool:
                connected, _ = await socket.connect()
                await socket.disconnect()
                return connected

            assert not async_to_sync(scenario)()
