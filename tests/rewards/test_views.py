"""Pages: researchers and admins only; Retrain now; roll back; the websocket."""

from __future__ import annotations

from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator

from annotations.hooks import labels_committed_notify
from rewards.models import RewardModel, RewardVersion, Speed, Status, Trigger
from rewards.services import reward_model_group
from tests.helpers import ORIGIN, session_cookie, signed_in
from tests.rewards.factories import preference_queue


@pytest.fixture
def reward_model(db, annotator):
    queue = preference_queue(members=[annotator])
    rm = RewardModel.objects.create(name="helpfulness")
    rm.queues.set([queue])
    return rm


def test_pages_are_for_researchers_and_admins(reward_model, users):
    for who, status in [("researcher", 200), ("admin", 200), ("annotator", 403),
                        ("outsider", 403)]:  # fmt: skip
        client = signed_in(users[who])
        assert client.get("/reward-models/").status_code == status
        assert client.get(f"/reward-models/{reward_model.pk}/").status_code == status
    client = signed_in(users["researcher"])
    assert client.get("/reward-models/999/").status_code == 404
    assert client.get(f"/reward-models/{reward_model.pk}/retrain/").status_code == 405


def test_create_a_reward_model(researcher, annotator):
    queue = preference_queue(members=[annotator])
    client = signed_in(researcher)
    bad = client.post("/reward-models/new/", {"name": "", "queues": [queue.pk]})
    assert bad.status_code == 200 and RewardModel.objects.count() == 0
    response = client.post("/reward-models/new/", {
        "name": "helpful", "queues": [queue.pk], "fast_every": 20, "full_every_hours": 24,
        "margin": 0.0, "max_length": 128, "heldout_percent": 20,
    })  # fmt: skip
    rm = RewardModel.objects.get()
    assert response.status_code == 302 and list(rm.queues.all()) == [queue]


def test_retrain_now_queues_one_run(
    reward_model, researcher, django_capture_on_commit_callbacks, settings
):
    # No minimums: this is about queueing (the minimums: test_services.py).
    settings.REWARD_MIN_TRAIN_PAIRS, settings.REWARD_MIN_HELDOUT_PAIRS = 0, 0
    client = signed_in(researcher)
    with (
        mock.patch("rewards.tasks.reward_training_task.delay") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        client.post(f"/reward-models/{reward_model.pk}/retrain/", {"speed": "fast"})
        second = client.post(f"/reward-models/{reward_model.pk}/retrain/", {"speed": "full"},
                             follow=True)  # fmt: skip
    version = RewardVersion.objects.get()
    enqueue.assert_called_once_with(version.pk)
    assert version.speed == Speed.FAST and version.trigger == Trigger.MANUAL
    assert "already queued or running" in second.content.decode()
    page = client.get(f"/reward-models/{reward_model.pk}/").content.decode()
    assert "v1 queued" in page


def test_rollback_asks_for_confirmation_first(reward_model, researcher, annotator):
    old = RewardVersion.objects.create(reward_model=reward_model, number=1, speed="fast",
                                       trigger="manual", status=Status.RETIRED,
                                       metrics={"heldout_pairs": 9, "heldout_accuracy": 1.0,
                                                "heldout_correct": 9})  # fmt: skip
    active = RewardVersion.objects.create(reward_model=reward_model, number=2, speed="full",
                                          trigger="manual", status=Status.ACTIVE)  # fmt: skip
    RewardModel.objects.filter(pk=reward_model.pk).update(active_version=active)
    client = signed_in(researcher)
    detail = client.get(f"/reward-models/{reward_model.pk}/").content.decode()
    url = f"/reward-models/{reward_model.pk}/versions/1/rollback/"
    # The table links to the confirmation; nothing in it posts a roll back.
    assert f'href="{url}"' in detail and f'action="{url}"' not in detail
    page = client.get(url).content.decode()
    assert "Roll back to v1?" in page and f'action="{url}"' in page
    assert "100 % (9/9; 95 % CI 70–100 %, Wilson)" in page and "the active v2" in page
    reward_model.refresh_from_db()
    assert reward_model.active_version_id == active.pk  # a GET changes nothing
    old.refresh_from_db()
    assert old.status == Status.RETIRED
    assert signed_in(annotator).get(url).status_code == 403
    assert client.get(f"/reward-models/{reward_model.pk}/versions/2/rollback/").status_code == 200
    assert (
        "already active"
        in client.get(f"/reward-models/{reward_model.pk}/versions/2/rollback/").content.decode()
    )
    assert client.put(url).status_code == 405


def test_the_pages_say_how_many_more_labels_are_needed(reward_model, researcher, annotator):
    from tests.rewards.factories import add_items, label_all, preference_items

    queue = reward_model.queues.get()
    label_all(queue, annotator, add_items(queue, preference_items(12)))
    client = signed_in(researcher)
    detail = client.get(f"/reward-models/{reward_model.pk}/").content.decode()
    assert "Not enough labels yet:</strong> 24 more labels needed (" in detail
    assert "9 training pairs of 20, 3 held-out pairs of 8" in detail
    assert "not enough labels: 24 more needed" in client.get("/reward-models/").content.decode()
    form = client.get("/reward-models/new/").content.decode()
    assert "at least 20 training pairs and 8 held-out pairs" in form
    assert "with 20 % held out, at least 36 labels" in form
    response = client.post(f"/reward-models/{reward_model.pk}/retrain/", {"speed": "fast"},
                           follow=True)  # fmt: skip
    assert "Not enough labels yet: 24 more labels needed" in response.content.decode()
    assert not RewardVersion.objects.exists()


def test_rollback_refuses_versions_that_never_passed(reward_model, researcher):
    RewardVersion.objects.create(reward_model=reward_model, number=1, speed="fast",
                                 trigger="manual", status=Status.REJECTED)  # fmt: skip
    client = signed_in(researcher)
    response = client.post(f"/reward-models/{reward_model.pk}/versions/1/rollback/", follow=True)
    assert "never passed the evaluation gate" in response.content.decode()
    reward_model.refresh_from_db()
    assert reward_model.active_version is None
    other = signed_in(researcher).post(f"/reward-models/{reward_model.pk}/versions/9/rollback/")
    assert other.status_code == 404


def test_labels_committed_hook_starts_a_fast_run_past_the_threshold(
    reward_model, annotator, django_capture_on_commit_callbacks, settings
):
    from tests.rewards.factories import add_items, label_all, preference_items

    settings.REWARD_MIN_TRAIN_PAIRS, settings.REWARD_MIN_HELDOUT_PAIRS = 3, 1
    queue = reward_model.queues.get()
    reward_model.fast_every = 5
    reward_model.save()
    label_all(queue, annotator, add_items(queue, preference_items(4)))
    with (
        mock.patch("rewards.tasks.reward_training_task.delay") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        labels_committed_notify(queue_ids=[queue.pk])
        assert not RewardVersion.objects.exists()  # 4 < 5
        label_all(queue, annotator, add_items(queue, preference_items(1, start=10)))
        labels_committed_notify(queue_ids=[queue.pk])
        labels_committed_notify(queue_ids=[queue.pk])  # deduplicated
    version = RewardVersion.objects.get()
    assert version.trigger == Trigger.LABELS and version.speed == Speed.FAST
    enqueue.assert_called_once_with(version.pk)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_progress_socket_is_for_researchers(users):
    from config.asgi import application
    from core.streams import stream_send

    rm = RewardModel.objects.create(name="rm")

    cookies = {user: session_cookie(user) for user in (users["annotator"], users["researcher"])}

    def open_socket(user):
        headers = [ORIGIN] + ([(b"cookie", cookies[user])] if user else [])
        return WebsocketCommunicator(application, f"/ws/reward-models/{rm.pk}/", headers=headers)

    async def accepted(user) -> bool:
        socket = open_socket(user)
        connected, _ = await socket.connect()
        await socket.disconnect()
        return connected

    assert not async_to_sync(accepted)(users["annotator"])
    assert not async_to_sync(accepted)(None)

    async def receives() -> dict:
        socket = open_socket(users["researcher"])
        connected, _ = await socket.connect()
        assert connected
        from asgiref.sync import sync_to_async

        await sync_to_async(stream_send)(reward_model_group(rm.pk), {
            "type": "training.progress", "version": 1, "number": 1, "step": 3, "total": 10,
            "loss": 0.5, "status": "training"})  # fmt: skip
        message = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return message

    assert async_to_sync(receives)() == {"version": 1, "number": 1, "step": 3, "total": 10,
                                         "loss": 0.5, "status": "training"}  # fmt: skip


def test_human_ai_and_both_reward_models_of_one_queue_show_side_by_side(reward_model, researcher):
    # RLHF against RLAIF: every reward model reading the queue, ordered human, AI, both, each
    # with its active version's held-out accuracy (on human pairs) and agreement with gold.
    queue = reward_model.queues.get()
    figures = {"human": (40, 31, 10, 8), "ai": (40, 24, 10, 6), "both": (40, 33, 10, 9)}
    reward_model.label_source = "human"
    reward_model.save(update_fields=["label_source"])
    models = {"human": reward_model}
    for source in ("ai", "both"):
        models[source] = RewardModel.objects.create(name=f"{source} labels", label_source=source)
        models[source].queues.set([queue])
    for source, rm in models.items():
        n, k, gold_n, gold_k = figures[source]
        version = RewardVersion.objects.create(
            reward_model=rm, number=1, speed="full", trigger="manual", status=Status.ACTIVE,
            metrics={"train_pairs": 120, "train_ai_pairs": 0 if source == "human" else 60,
                     "heldout_pairs": n, "heldout_accuracy": k / n, "heldout_correct": k,
                     "gold_pairs": gold_n, "gold_correct": gold_k},
        )  # fmt: skip
        RewardModel.objects.filter(pk=rm.pk).update(active_version=version)
    elsewhere = RewardModel.objects.create(name="another queue's")

    page = signed_in(researcher).get(f"/reward-models/{models['ai'].pk}/").content.decode()
    table = page[page.index('id="rm-sources"') :]
    table = table[: table.index("</table>")]
    rows = table.split("<tr")[2:]  # after the header row
    assert [row.count(f"/reward-models/{models[s].pk}/") for row, s in
            zip(rows, ("human", "ai", "both"), strict=True)] == [1, 1, 1]  # fmt: skip
    assert 'aria-current="true"' in rows[1] and "aria-current" not in rows[0] + rows[2]
    # Wilson intervals worked out by hand: (p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n).
    assert "78 % (31/40; 95 % CI 62–88 %, Wilson)" in rows[0]
    assert "60 % (24/40; 95 % CI 45–74 %, Wilson)" in rows[1]
    assert "82 % (33/40; 95 % CI 68–91 %, Wilson)" in rows[2]
    assert "80 % (8/10; 95 % CI 49–94 %, Wilson)" in rows[0]
    assert "60 % (6/10; 95 % CI 31–83 %, Wilson)" in rows[1]
    assert "90 % (9/10; 95 % CI 60–98 %, Wilson)" in rows[2]
    assert "120 (0)" in rows[0] and "120 (60)" in rows[1] and "120 (60)" in rows[2]
    assert elsewhere.name not in table
