"""Done when, line 3: in Chromium, on a real worker with the bundled model, a researcher goes
from finished trees to a distilled model (2 SFT steps) to iteration 2's trees, and reads the
win rates. At 1366 and 390 px."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from amplification.models import (
    Author,
    IterationLine,
    IterationPair,
    Mode,
    Node,
    NodeStatus,
    Resolution,
    Tree,
    TreeStatus,
)
from annotations.models import Label, Queue
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig, TrainingRun
from tests.helpers import browser_login, screenshots_at_both_widths, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]

WAIT_S = 600  # the bundled model and a 2-step fine-tune on 2 shared cores
SHOTS = Path(os.environ.get("ARBITER_SCREENSHOTS", "/tmp/iteration-shots"))
TRAINING = {
    "Why do cats purr?": [("What makes a cat purr?", "Muscles in the cat's larynx twitch."),
                          ("When do cats purr?", "Cats purr when content or hurt.")],
    "Why do volcanoes erupt?": [("What is magma?", "Magma is molten rock under the ground."),
                                ("Why does magma rise?", "Magma is lighter than solid rock.")],
}  # fmt: skip
HELD_OUT = "How do bees make honey?"


def finished_tree(question: str, children: list[tuple[str, str]], config: ModelConfig) -> Tree:
    """A machine tree as a finished run leaves it: a decomposed root, its answered leaves."""
    tree = Tree.objects.create(
        question=question, decompose_config=config, answer_config=config, compose_config=config,
        max_depth=1, max_children=2, max_nodes=3, mode=Mode.MACHINE, status=TreeStatus.DONE,
    )  # fmt: skip
    root = Node.objects.create(
        tree=tree, question=question, resolution=Resolution.DECOMPOSED, status=NodeStatus.DONE,
        composed_answer=" ".join(answer for _, answer in children), decomposed_by=Author.MODEL,
    )  # fmt: skip
    for position, (sub, answer) in enumerate(children):
        Node.objects.create(
            tree=tree, parent=root, depth=1, position=position, question=sub, answer=answer,
            resolution=Resolution.ANSWERED, status=NodeStatus.DONE, answered_by=Author.MODEL,
        )  # fmt: skip
    return tree


def text(page, selector: str) -> str:
    locator = page.locator(selector)
    return locator.inner_text() if locator.count() else ""


def test_from_finished_trees_to_a_distilled_model_to_iteration_2_and_win_rates(
    live_asgi_server, celery_worker_process, browser, researcher, annotator, annotator2,
    settings,
):  # fmt: skip
    url = live_asgi_server.url
    settings.LLM_TRAINING_MIN_ROWS = 4  # six rows: five trained on, one held out
    ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).update(
        temperature=0, max_new_tokens=8, timeout_s=600
    )
    bundled = ModelConfig.objects.get(name=BUNDLED_CONFIG_NAME)
    trees = [finished_tree(q, children, bundled) for q, children in TRAINING.items()]
    queue = Queue.objects.create(name="iteration pairs", kind="pairwise", labels_per_item=2)
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_S * 1000)
    browser_login(page, url, "researcher")

    # From the tree list to a new line of iterations, iteration 1 being the finished trees.
    page.goto(f"{url}/trees/")
    page.click("text=Iterations →")
    page.fill("[name=name]", "cats and volcanoes")
    page.select_option("[name=base]", label=BUNDLED_CONFIG_NAME)
    page.select_option("[name=trees]", [str(t.pk) for t in trees])
    page.fill("[name=held_out]", HELD_OUT)
    page.fill("[name=max_children]", "2")
    page.fill("[name=max_nodes]", "3")
    screenshots_at_both_widths(page, SHOTS, "iterations-new")
    with page.expect_navigation():
        page.click("text=Start iteration 1")
    line = IterationLine.objects.get()
    assert line.held_out == [HELD_OUT] and line.base == bundled

    # Distil iteration 1: two SFT steps; the run's progress shows on the page as it goes.
    page.fill("#iteration-1 [name=max_steps]", "2")
    page.fill("#iteration-1 [name=batch_size]", "4")
    page.fill("#iteration-1 [name=max_length]", "96")
    with (
        page.expect_navigation(),
        page.expect_request(lambda r: r.method == "POST" and "/distil/" in r.url) as sent,
    ):
        page.click("text=Distil iteration 1")
    form = parse_qs(sent.value.post_data or "")
    assert form["max_steps"] == ["2"] and form["batch_size"] == ["4"]
    wait_for(lambda: " done" in text(page, "#iteration-1-run"), timeout=WAIT_S,
             what="the distillation run on the page")  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.result is not None and run.row_count == 6 and run.parent == bundled
    assert "eval loss" in text(page, "#iteration-1-run")

    # The held-out question, three ways: base directly, base amplified, distilled directly.
    with page.expect_navigation():
        page.click("text=Answer the held-out questions")
    wait_for(lambda: page.locator("text=Send to the pairwise queue").count() == 1,
             timeout=WAIT_S, what="the held-out answers")  # fmt: skip
    row = page.locator("#iteration-1 table.held-out tbody tr").first.inner_text()
    assert HELD_OUT in row
    held = Tree.objects.filter(iteration__number=1).exclude(iteration_role="train")
    assert {t.iteration_role: t.answer_config for t in held} == {
        "direct": bundled,
        "amplified": bundled,
        "distilled": run.result,
    }

    # Blind pairs to the queue; two people vote (the queue's own pages are tested elsewhere).
    page.select_option("#iteration-1 [name=queue]", label=queue.name)
    with page.expect_navigation():
        page.click("text=Send to the pairwise queue")
    pairs = list(IterationPair.objects.all())
    assert len(pairs) == 3
    winner = {"amplified-direct": "amplified", "distilled-direct": "distilled",
              "distilled-amplified": None}  # fmt: skip
    for pair in pairs:
        # Both prefer the amplified answer to the direct one and the distilled one to the
        # direct one, wherever it sits; distilled vs amplified: a tie.
        preferred = winner[pair.comparison]
        vote = "tie" if preferred is None else ("a" if pair.a_role == preferred else "b")
        for person in (annotator, annotator2):
            Label.objects.create(
                queue=queue, item=pair.item, annotator=person, value={"choice": vote},
                client_request_id=uuid.uuid4(),
            )  # fmt: skip

    # Iteration 2: its trees grow with the distilled model as the helper.
    page.goto(f"{url}/trees/iterations/{line.pk}/")
    with page.expect_navigation():
        page.click("text=Start iteration 2")
    wait_for(lambda: text(page, "#iteration-2-trees").startswith("2 of 2"), timeout=WAIT_S,
             what="iteration 2's trees")  # fmt: skip
    second = Tree.objects.filter(iteration__number=2)
    assert {t.question for t in second} == set(TRAINING)
    assert all(t.decompose_config == t.answer_config == run.result for t in second)
    assert all(t.status == TreeStatus.DONE for t in second)

    # The win rates, each with its interval, n and method.
    wins = page.locator("#iteration-1-wins")
    amplified = wins.locator("tr[data-comparison=amplified-direct]").inner_text()
    assert "100 %" in amplified and "21–100 %" in amplified
    tied = wins.locator("tr[data-comparison=distilled-amplified]").inner_text()
    assert "–" in tied and "2 (2)" in tied
    assert "Wilson 95 % interval over questions" in page.inner_text("#iteration-1")
    over = page.inner_text("#iteration-over-iteration")
    assert "Amplified beats direct" in over and "n = 1" in over
    screenshots_at_both_widths(page, SHOTS, "iterations-line")
    context.close()
