"""In Chromium: Retrain now → live progress and loss curve → promoted → roll back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rewards.models import RewardModel, RewardVersion, Status
from tests.helpers import browser_login, wait_for
from tests.rewards.factories import run_now, trained_model

pytestmark = [pytest.mark.browser]
SHOTS = Path(os.environ.get("ARBITER_SHOTS_DIR", "/tmp/rewards"))


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.worker
def test_retrain_now_shows_progress_promotes_and_rolls_back(
    live_asgi_server, page, researcher, annotator, start_worker
):
    reward_model = trained_model(annotator)
    v1 = run_now(reward_model)
    assert v1.status == Status.ACTIVE
    # Any version that evaluates goes live here, so the flow always reaches roll back.
    RewardModel.objects.filter(pk=reward_model.pk).update(margin=0.5)
    start_worker(REWARD_FULL_EPOCHS="1")

    frames: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(json.loads(f))))
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.post_data or "") if "retrain" in r.url else None)

    page.set_viewport_size({"width": 1366, "height": 900})
    browser_login(page, live_asgi_server.url, researcher.username)
    page.goto(f"{live_asgi_server.url}/reward-models/{reward_model.pk}/")
    page.select_option("select[name=speed]", "full")
    page.click("#retrain-form button[type=submit]")
    assert "speed=full" in posted[0]
    # The bar moves and the loss curve grows, live, while the worker trains.
    # Polled from Python: a string predicate is eval'd in the page, which the CSP refuses.
    wait_for(
        lambda: int(page.get_attribute("#rm-loss", "data-live-points") or 0) >= 2,
        timeout=240,
        what="two live loss points",
    )
    assert "v2 training" in page.text_content("#rm-live-status")
    points = page.get_attribute("#rm-loss polyline", "points")
    assert len(points.split()) >= 2
    assert page.evaluate("parseFloat(document.getElementById('rm-live-bar').style.width)") > 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "rewards-training-1366.png"), full_page=True)

    # When the run ends the page reloads with the verdict.
    page.wait_for_selector("#version-2 .rm-active", timeout=240_000)
    steps = [f for f in frames if f.get("status") == "training" and f.get("loss") is not None]
    assert len(steps) >= 2 and steps[-1]["step"] > steps[0]["step"]
    page.screenshot(path=str(SHOTS / "rewards-promoted-1366.png"), full_page=True)
    assert page.is_visible("#version-1 .rm-action a:has-text('Roll back to v1')")

    # Roll back asks first: the link opens the confirmation, its button posts.
    page.click("#version-1 .rm-action a:has-text('Roll back to v1')")
    page.wait_for_url("**/versions/1/rollback/")
    assert page.text_content("h1") == "Roll back to v1?"
    reward_model.refresh_from_db()
    assert reward_model.active_version_id != v1.pk  # nothing changed yet
    page.click("#rm-rollback button[type=submit]")
    page.wait_for_selector("#version-1 .rm-active")
    assert "Rolled back to version 1" in page.text_content("#version-2")
    reward_model.refresh_from_db()
    assert reward_model.active_version_id == v1.pk
    assert RewardVersion.objects.get(pk=v1.pk).status == Status.ACTIVE
    assert "v1" in page.text_content("#rm-active")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert _no_horizontal_scroll(page)
    page.screenshot(path=str(SHOTS / "rewards-390.png"), full_page=True)
    page.goto(f"{live_asgi_server.url}/reward-models/")
    assert _no_horizontal_scroll(page)


def test_not_enough_labels_the_gate_and_roll_back_at_1366_and_390(
    live_asgi_server, page, researcher, annotator
):
    from rewards.services import reward_model_readiness, reward_model_save
    from tests.rewards.factories import add_items, label_all, preference_items, preference_queue

    queue = preference_queue(members=[annotator], name="helpfulness pairs")
    label_all(queue, annotator, add_items(queue, preference_items(12)))
    waiting = reward_model_save(reward_model=RewardModel(name="Waiting for labels"),
                                queues=[queue], user=None)  # fmt: skip
    live = reward_model_save(reward_model=RewardModel(name="Helpfulness (MiniLM)"),
                             queues=[queue], user=None)  # fmt: skip
    metrics = {"train_pairs": 28, "heldout_pairs": 9, "heldout_accuracy": 1.0,
               "heldout_correct": 9}  # fmt: skip
    RewardVersion.objects.create(reward_model=live, number=1, speed="fast", trigger="labels",
                                 status=Status.RETIRED, metrics=metrics, label_count=37,
                                 wall_time_s=2.4)  # fmt: skip
    active = RewardVersion.objects.create(
        reward_model=live, number=2, speed="full", trigger="manual", status=Status.ACTIVE,
        label_count=60, wall_time_s=31.0, metrics={**metrics, "heldout_pairs": 12,
        "heldout_accuracy": 11 / 12, "heldout_correct": 11, "baseline_version": 1,
        "baseline_accuracy": 1.0, "baseline_correct": 12, "wins": 0, "losses": 1,
        "p_value": 1.0},
    )  # fmt: skip
    # As if its labels were in: the readiness stored once ready is kept.
    ready = reward_model_readiness(reward_model=waiting).model_dump() | {"labels_needed": 0}
    RewardModel.objects.filter(pk=live.pk).update(active_version=active, readiness=ready)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser_login(page, live_asgi_server.url, researcher.username)
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_asgi_server.url}/reward-models/{waiting.pk}/")
        notice = page.text_content("#rm-readiness")
        assert "Not enough labels yet: 24 more labels needed" in notice
        assert page.is_disabled("#retrain-form button[type=submit]")
        assert _no_horizontal_scroll(page)
        page.screenshot(path=str(SHOTS / f"rewards-not-enough-{width}.png"), full_page=True)

        page.goto(f"{live_asgi_server.url}/reward-models/{live.pk}/")
        assert page.locator("#rm-readiness").count() == 0
        row = page.text_content("#version-2")
        assert "92 %" in row and "11/12 pairs" in row and "1.000" not in row
        assert "v1 on them: 100 % (12/12;" in row
        assert "1.000" not in page.text_content("#rm-active")
        # The whole "Roll back to v1" shows, inside the screen.
        link = page.locator("#version-1 a:visible", has_text="Roll back to v1").first
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        assert link.inner_text() == "Roll back to v1"
        assert _no_horizontal_scroll(page)
        page.screenshot(path=str(SHOTS / f"rewards-detail-{width}.png"), full_page=True)
        link.click()
        page.wait_for_url("**/versions/1/rollback/")
        assert "becomes the active version" in page.text_content("#rm-rollback")
        assert _no_horizontal_scroll(page)
        page.screenshot(path=str(SHOTS / f"rewards-rollback-confirm-{width}.png"), full_page=True)

        page.goto(f"{live_asgi_server.url}/reward-models/")
        assert "not enough labels: 24 more needed" in page.text_content("main")
        assert _no_horizontal_scroll(page)
        page.screenshot(path=str(SHOTS / f"rewards-list-{width}.png"), full_page=True)
        page.goto(f"{live_asgi_server.url}/reward-models/new/")
        assert "at least 36 labels" in page.text_content("#rm-minimums")
        page.screenshot(path=str(SHOTS / f"rewards-form-{width}.png"), full_page=True)
    live.refresh_from_db()
    assert live.active_version_id == active.pk  # looking changed nothing
