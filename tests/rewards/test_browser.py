"""In Chromium: Retrain now → live progress and loss curve → promoted → roll back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rewards.models import RewardModel, RewardVersion, Status
from tests.helpers import browser_login
from tests.rewards.factories import run_now, trained_model

pytestmark = [pytest.mark.browser, pytest.mark.worker]
SHOTS = Path(os.environ.get("ARBITER_SHOTS_DIR", "/tmp/wt12-shots"))


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


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
    page.wait_for_function(
        "Number(document.getElementById('rm-loss').dataset.livePoints || 0) >= 2",
        timeout=240_000,
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
    assert page.is_visible("#version-1 button:has-text('Roll back to v1')")

    page.click("#version-1 button:has-text('Roll back to v1')")
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
