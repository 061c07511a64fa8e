import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing.websocket import WebsocketCommunicator

from config.asgi import application
from core.services import user_notify
from tests.helpers import ORIGIN, session_cookie


def test_signed_in_user_receives_their_own_notifications(
    annotator, annotator2, django_capture_on_commit_callbacks
):
    my_cookie, their_cookie = session_cookie(annotator), session_cookie(annotator2)

    async def scenario() -> tuple[dict, bool]:
        mine = WebsocketCommunicator(
            application, "/ws/notifications/", headers=[(b"cookie", my_cookie), ORIGIN]
        )
        theirs = WebsocketCommunicator(
            application, "/ws/notifications/", headers=[(b"cookie", their_cookie), ORIGIN]
        )
        assert (await mine.connect())[0]
        assert (await theirs.connect())[0]
        await sync_notify()
        message = await mine.receive_json_from(timeout=5)
        other_got_nothing = await theirs.receive_nothing(timeout=0.3)
        await mine.disconnect()
        await theirs.disconnect()
        return message, other_got_nothing

    @sync_to_async
    def sync_notify() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            user_notify(user_id=annotator.pk, kind="job", data={"progress": 0.5})

    message, other_got_nothing = async_to_sync(scenario)()
    assert message == {"kind": "job", "data": {"progress": 0.5}}
    assert other_got_nothing


@pytest.mark.django_db
def test_anonymous_socket_is_refused():
    async def scenario() -> bool:
        communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=[ORIGIN])
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False


def test_foreign_origin_is_refused(annotator):
    cookie = session_cookie(annotator)

    async def scenario() -> bool:
        communicator = WebsocketCommunicator(
            application,
            "/ws/notifications/",
            headers=[(b"cookie", cookie), (b"origin", b"http://evil.example")],
        )
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False
