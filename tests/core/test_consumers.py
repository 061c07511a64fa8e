"""Every websocket is behind the origin check (config/asgi.py): a page from another site
cannot open one with the user's cookie."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator

from config.asgi import application
from tests.factories import ModelTrialFactory
from tests.helpers import ORIGIN, session_cookie


def _connects(path: str, headers: list) -> bool:
    async def scenario() -> bool:
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    return async_to_sync(scenario)()


# The consumer reads the trial in its own thread: it must be committed.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_foreign_origin_is_refused_where_the_own_origin_connects(researcher):
    trial = ModelTrialFactory(user=researcher)
    path = f"/ws/llm/trials/{trial.pk}/"
    cookie = (b"cookie", session_cookie(researcher))
    assert _connects(path, [cookie, ORIGIN]) is True
    assert _connects(path, [cookie, (b"origin", b"http://evil.example")]) is False
