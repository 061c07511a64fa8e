import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing.websocket import WebsocketCommunicator

from config.asgi import application
from llm.trial_worker import trial_group_name
from tests.factories import PASSWORD, ModelTrialFactory
from tests.helpers import ORIGIN, session_cookie

# Consumers reach the database from their own thread and close stale connections, which a
# test wrapped in one transaction cannot survive.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def connect(user, trial_id: int) -> WebsocketCommunicator:
    headers = [ORIGIN] + ([(b"cookie", session_cookie(user))] if user else [])
    return WebsocketCommunicator(application, f"/ws/llm/trials/{trial_id}/", headers=headers)


def test_owner_gets_the_snapshot_then_only_unseen_escaped_text(researcher):
    trial = ModelTrialFactory(user=researcher, text="Hello <b>", status="running")
    communicator = connect(researcher, trial.pk)
    group = trial_group_name(trial.pk)

    async def scenario() -> list[str]:
        assert (await communicator.connect())[0]
        frames = [await communicator.receive_from(timeout=5)]
        layer = get_channel_layer()
        # A delta the snapshot already holds, one that overlaps it, then a new one.
        for offset, text in [(0, "Hello"), (6, "<b>wor"), (12, "ld</b>")]:
            await layer.group_send(
                group,
                {"type": "stream.delta", "stream": str(trial.pk), "offset": offset, "text": text},
            )
        frames.append(await communicator.receive_from(timeout=5))
        frames.append(await communicator.receive_from(timeout=5))
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()
        return frames

    snapshot, first, second = async_to_sync(scenario)()
    assert f'id="trial-{trial.pk}-text" hx-swap-oob="true">Hello &lt;b&gt;</pre>' in snapshot
    assert first == f'<span id="trial-{trial.pk}-text" hx-swap-oob="beforeend">wor</span>'
    assert second == f'<span id="trial-{trial.pk}-text" hx-swap-oob="beforeend">ld&lt;/b&gt;</span>'


def test_model_output_with_script_is_shown_as_text(researcher):
    trial = ModelTrialFactory(user=researcher, text="<script>alert(1)</script>", status="done")
    communicator = connect(researcher, trial.pk)

    async def scenario() -> str:
        assert (await communicator.connect())[0]
        frame = await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        return frame

    frame = async_to_sync(scenario)()
    assert "<script>" not in frame
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in frame


def test_other_users_and_anonymous_are_refused(users):
    trial = ModelTrialFactory(user=users["researcher"])
    other_researcher = type(users["researcher"]).objects.create_user(
        "researcher2", password=PASSWORD
    )
    other_researcher.groups.add(*users["researcher"].groups.all())

    def refused(user) -> bool:
        communicator = connect(user, trial.pk)

        async def scenario() -> bool:
            connected, _ = await communicator.connect()
            await communicator.disconnect()
            return not connected

        return async_to_sync(scenario)()

    assert refused(None)
    assert refused(users["annotator"])
    assert refused(other_researcher)
    assert not refused(users["admin"])  # admins see every trial
