import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing.websocket import WebsocketCommunicator

from config.asgi import application
from debate.events import debate_group_name
from debate.models import Debate, DebateStatus, SpeechStatus
from debate.services import debate_prior_submit, judge_turn_submit
from tests.factories import DebateFactory
from tests.helpers import ORIGIN, session_cookie

# Consumers reach the database from their own thread and close stale connections, which a
# test wrapped in one transaction cannot survive.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SECRET = "zanzibar-lighthouse-7731"


def communicator(user, debate_id: int) -> WebsocketCommunicator:
    headers = [ORIGIN] + ([(b"cookie", session_cookie(user))] if user else [])
    return WebsocketCommunicator(application, f"/ws/debates/{debate_id}/", headers=headers)


def test_judge_frames_never_carry_the_passage_or_answer_until_judged(annotator, enqueued):
    debate = DebateFactory(judge=annotator, passage=f"The {SECRET} story.", correct_side="b")
    debate_prior_submit(debate_id=debate.pk, judge=annotator, probability_a=50)
    speech = debate.speeches.get(side="a")
    socket = communicator(annotator, debate.pk)
    group = debate_group_name(debate.pk)
    layer = get_channel_layer()

    def judge_it() -> None:
        debate.speeches.update(status=SpeechStatus.DONE, text="a speech")
        Debate.objects.filter(pk=debate.pk).update(status=DebateStatus.AWAITING_JUDGE)
        judge_turn_submit(debate_id=debate.pk, judge=annotator, probability_a=30, action="end",
                          rationale="because")  # fmt: skip

    async def scenario() -> tuple[list[str], str]:
        assert (await socket.connect())[0]
        frames = [await socket.receive_from(timeout=5)]
        for offset, text in [(0, "<script>x</script>"), (18, " more")]:
            event = {"type": "stream.delta", "stream": f"speech-{speech.pk}", "offset": offset,
                     "text": text}  # fmt: skip
            await layer.group_send(group, event)
            frames.append(await socket.receive_from(timeout=5))
        await sync_to_async(judge_it)()
        await layer.group_send(group, {"type": "debate.changed"})
        judged = await socket.receive_from(timeout=5)
        await socket.disconnect()
        return frames, judged

    frames, judged = async_to_sync(scenario)()
    assert frames[1] == (
        f'<span id="speech-{speech.pk}-text" hx-swap-oob="beforeend">'
        "&lt;script&gt;x&lt;/script&gt;</span>"
    )
    assert not any(SECRET in frame or "Correct answer" in frame for frame in frames)
    assert '<section id="reveal" hx-swap-oob="true" hidden>' in frames[0]
    assert 'Judge</strong> <span class="muted small">prior</span>' in frames[0]
    assert "Correct answer: <strong>B</strong>" in judged
    # Now, and only now, the passage itself.
    assert '<section id="reveal" hx-swap-oob="true" class="card reveal">' in judged
    assert f"The {SECRET} story." in judged


def test_who_may_open_a_debate_socket(users, annotator2):
    debate = DebateFactory(judge=users["annotator"])

    def accepted(user) -> bool:
        socket = communicator(user, debate.pk)

        async def scenario() -> bool:
            connected, _ = await socket.connect()
            await socket.disconnect()
            return connected

        return async_to_sync(scenario)()

    assert accepted(users["annotator"])  # the judge
    assert accepted(users["researcher"])  # an observer
    assert not accepted(annotator2)
    assert not accepted(users["outsider"])
    assert not accepted(None)


def test_a_reconnecting_browser_gets_the_text_so_far_then_only_new_tokens(annotator, enqueued):
    debate = DebateFactory(judge=annotator)
    debate_prior_submit(debate_id=debate.pk, judge=annotator, probability_a=50)
    speech = debate.speeches.get(side="a")
    speech.__class__.objects.filter(pk=speech.pk).update(status="streaming", text="The door was gr")
    socket = communicator(annotator, debate.pk)

    async def scenario() -> tuple[str, str]:
        assert (await socket.connect())[0]
        snapshot = await socket.receive_from(timeout=5)
        # The worker's next delta overlaps what the snapshot already showed.
        await get_channel_layer().group_send(
            debate_group_name(debate.pk),
            {"type": "stream.delta", "stream": f"speech-{speech.pk}", "offset": 12,
             "text": " green"},
        )  # fmt: skip
        delta = await socket.receive_from(timeout=5)
        await socket.disconnect()
        return snapshot, delta

    snapshot, delta = async_to_sync(scenario)()
    assert f'id="speech-{speech.pk}-text">The door was gr</div>' in snapshot
    assert delta.endswith(">een</span>")
