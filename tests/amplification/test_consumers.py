import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing.websocket import WebsocketCommunicator

from amplification.models import Node, Tree
from config.asgi import application
from tests.helpers import ORIGIN, session_cookie

# Consumers reach the database from their own thread and close stale connections, which a
# test wrapped in one transaction cannot survive.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def communicator(user, tree_id: int) -> WebsocketCommunicator:
    headers = [ORIGIN] + ([(b"cookie", session_cookie(user))] if user else [])
    return WebsocketCommunicator(application, f"/ws/trees/{tree_id}/", headers=headers)


def test_watchers_get_the_outline_again_on_every_change_escaped(
    fake, make_tree, researcher, annotator
):
    fake.decompositions = {"Root?": "1. <img src=x onerror=alert(1)> why?"}
    tree = make_tree(max_depth=1)

    socket = communicator(researcher, tree.pk)

    async def scenario() -> list[str]:
        assert (await socket.connect())[0]
        frames = [await socket.receive_from(timeout=10)]
        await Node.objects.filter(tree=tree, depth=1).aupdate(answer="changed <b>live</b>")
        await get_channel_layer().group_send(f"tree-{tree.pk}", {"type": "tree.changed"})
        frames.append(await socket.receive_from(timeout=10))
        await socket.disconnect()
        return frames

    first, second = async_to_sync(scenario)()
    assert 'id="amp-outline"' in first and 'hx-swap-oob="true"' in first
    assert "<img" not in first and "&lt;img src=x" in first
    assert "changed &lt;b&gt;live&lt;/b&gt;" in second


@pytest.mark.parametrize("who", ["annotator", "outsider", None])
def test_others_cannot_watch(fake, make_tree, annotator, outsider, who):
    tree = make_tree(max_depth=0)
    user = {"annotator": annotator, "outsider": outsider, None: None}[who]

    socket = communicator(user, tree.pk)

    async def scenario() -> bool:
        connected, _ = await socket.connect()
        await socket.disconnect()
        return connected

    assert async_to_sync(scenario)() is False
    assert Tree.objects.filter(pk=tree.pk).exists()
