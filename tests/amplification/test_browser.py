"""The Done-when walk-through in Chromium, on a real worker with the bundled model."""

import json
import os
from pathlib import Path

import pytest

from amplification.models import Node, NodeStatus, Tree, TreeStatus
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig
from tests.helpers import browser_login, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]

WAIT_MS = 300_000  # generous: the bundled model on 2 shared cores
SHOTS = Path(os.environ.get("AMP_SHOTS_DIR", "")) if os.environ.get("AMP_SHOTS_DIR") else None


def tree_status(tree_id: int) -> str:
    return Tree.objects.values_list("status", flat=True).get(pk=tree_id)


def versions(tree_id: int) -> dict[int, int]:
    return dict(Node.objects.filter(tree_id=tree_id).values_list("pk", "version"))


def wait_done_on_page(page) -> None:
    page.wait_for_selector("#amp-stats[data-status=done]", timeout=WAIT_MS)


def test_a_researcher_grows_edits_reruns_and_exports_a_tree(
    live_asgi_server, celery_worker_process, browser, researcher, tmp_path
):
    url = live_asgi_server.url
    ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).update(
        temperature=0, max_new_tokens=16, timeout_s=600
    )
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(str(p))))
    browser_login(page, url, "researcher")

    # From the researcher home's card to a new augmented tree on the bundled model.
    page.goto(f"{url}/research/")
    page.click("text=Amplification trees")
    page.click("text=New tree")
    page.fill("[name=question]", "Why do leaves change colour in autumn?")
    page.check("[name=mode][value=augmented]")
    page.fill("[name=max_depth]", "2")
    page.fill("[name=max_children]", "3")
    page.fill("[name=max_nodes]", "13")
    page.click("summary:has-text('Models, prompts and people')")
    for name in ("decompose_config", "answer_config", "compose_config"):
        page.select_option(f"[name={name}]", label=BUNDLED_CONFIG_NAME)
    page.click("text=Create tree")
    page.wait_for_url(f"{url}/trees/*/")
    tree = Tree.objects.get()
    assert tree.mode == "augmented" and tree.max_depth == 2 and tree.max_children == 3
    # The browser sent the prompt textareas with "\r\n" line endings; the model must see the
    # prompts as typed (with "\r\n" the greedy model copied the worked examples instead).
    assert "\r" not in tree.decompose_prompt + tree.answer_prompt + tree.compose_prompt

    # The root waits for a person; hand it to the model and watch its children arrive live.
    page.click("#amp-outline [role=treeitem] >> nth=0")
    with page.expect_navigation():
        page.click("text=Let the model do it")
    page.wait_for_selector("#amp-outline [aria-level='2']")
    assert any("amp-outline" in frame for frame in frames)
    children = list(Node.objects.filter(tree=tree, depth=1).order_by("position"))
    assert 1 <= len(children) <= 3

    # Keyboard: focus the root, move down to the first child, open it with Enter.
    page.focus("#amp-outline [role=treeitem] >> nth=0")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#amp-pane[data-node='{children[0].pk}']")

    # Augmented: take it; the model's draft arrives in the form; edit it and answer.
    with page.expect_navigation():
        page.click("text=Take this node")
    textarea = page.locator("#amp-pane textarea[name=answer]").first
    wait_for(lambda: textarea.input_value().strip() != "", timeout=WAIT_MS / 1000,
             what="the model's draft")  # fmt: skip
    page.wait_for_selector(".amp-drafting", state="detached")
    draft = textarea.input_value()
    textarea.fill(draft + " (checked by a person)")
    with (
        page.expect_navigation(),
        page.expect_request(lambda r: r.method == "POST" and "/person-answer/" in r.url) as sent,
    ):
        page.click("text=Save my answer")
    assert "checked+by+a+person" in (sent.value.post_data or "")
    answered = Node.objects.get(pk=children[0].pk)
    assert answered.resolution == "human" and answered.answered_by == "person"
    assert answered.answer.endswith("(checked by a person)")

    # The rest goes to the model; nodes fill in live until the tree is done.
    with page.expect_navigation():
        page.click("text=Let the model do the rest")
    wait_done_on_page(page)
    assert tree_status(tree.pk) == TreeStatus.DONE
    assert all(n.status == NodeStatus.DONE for n in Node.objects.filter(tree=tree))

    # Edit one leaf's answer: only its ancestors recompose.
    leaf = (
        Node.objects.filter(tree=tree).exclude(resolution__in=["decomposed", "human"])
        .order_by("-depth", "pk").first()
    )  # fmt: skip
    assert leaf is not None
    ancestors = []
    parent_id = leaf.parent_id
    while parent_id:
        ancestors.append(parent_id)
        parent_id = Node.objects.get(pk=parent_id).parent_id
    before = versions(tree.pk)
    page.goto(f"{url}/trees/{tree.pk}/?node={leaf.pk}")
    page.click("#amp-pane summary:has-text('Edit')")
    page.fill("#amp-pane form[action$='/answer/'] textarea", "Chlorophyll <b>breaks down</b>.")
    with (
        page.expect_navigation(),
        page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/answer/")) as sent,
    ):
        page.click("text=Save answer")
    assert "Chlorophyll" in (sent.value.post_data or "")
    wait_done_on_page(page)
    wait_for(lambda: tree_status(tree.pk) == TreeStatus.DONE, timeout=WAIT_MS / 1000,
             what="the recomposition")  # fmt: skip
    after = versions(tree.pk)
    changed = {pk for pk in after if after[pk] != before[pk]}
    assert changed == {leaf.pk, *ancestors}
    # The edited text is shown escaped, with its diff.
    page.goto(f"{url}/trees/{tree.pk}/?node={leaf.pk}")
    assert page.inner_text("#amp-final-answer") == "Chlorophyll <b>breaks down</b>."
    assert page.locator(".amp-diff ins").count() >= 1

    # Re-run one subtree (a child the model decomposed or answered): it alone is regenerated.
    target = (
        Node.objects.filter(tree=tree, depth=1).exclude(pk=children[0].pk).order_by("pk").first()
    )
    assert target is not None
    in_subtree = {target.pk, *Node.objects.filter(parent=target).values_list("pk", flat=True)}
    # A person's answers are kept by a re-run; everything else in the subtree is made again.
    subtree = set(
        Node.objects.filter(pk__in=in_subtree)
        .exclude(resolution="human")
        .values_list("pk", flat=True)
    )
    untouched = set(versions(tree.pk)) - in_subtree - {target.parent_id}
    before = versions(tree.pk)
    page.goto(f"{url}/trees/{tree.pk}/?node={target.pk}")
    with page.expect_navigation():
        page.click("text=Re-run this subtree")
    page.wait_for_selector("#amp-stats:not([data-status=done])", timeout=30_000)
    wait_done_on_page(page)
    after = versions(tree.pk)
    assert all(after[pk] > before[pk] for pk in subtree)
    assert all(after[pk] == before[pk] for pk in untouched)

    # Export the JSON.
    with page.expect_download() as download:
        page.click("text=Export JSON")
    path = tmp_path / "tree.json"
    download.value.save_as(path)
    data = json.loads(path.read_text())
    assert data["format"] == "arbiter-amplification-tree/1"
    assert len(data["nodes"]) == Node.objects.filter(tree=tree).count()

    # The inspector at phone width: nothing scrolls sideways.
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{url}/trees/{tree.pk}/?node={leaf.pk}")
        scroll = page.evaluate("document.scrollingElement.scrollWidth")
        assert scroll <= width, f"horizontal scrolling at {width}px: {scroll}"
        if SHOTS:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"tree-{width}.png"), full_page=True)
            page.goto(f"{url}/trees/")
            page.screenshot(path=str(SHOTS / f"list-{width}.png"), full_page=True)
            page.goto(f"{url}/trees/new/")
            page.screenshot(path=str(SHOTS / f"new-{width}.png"), full_page=True)
    context.close()


@pytest.mark.django_db(transaction=True)
def test_the_inspector_by_keyboard_and_at_phone_width(
    live_asgi_server, browser, fake, make_tree, researcher
):
    """Quick: a tree grown with the scripted model (no worker) — keyboard, search, layout."""
    from tests.amplification.conftest import three_by_three

    fake.decompositions = three_by_three()
    tree = make_tree("Root?")
    url = live_asgi_server.url
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    browser_login(page, url, "researcher")
    page.goto(f"{url}/trees/{tree.pk}/")
    page.wait_for_selector("#amp-stats[data-status=done]")
    page.focus("#amp-outline [role=treeitem] >> nth=0")
    page.keyboard.press("ArrowDown")  # A?
    page.keyboard.press("ArrowLeft")  # collapse A?
    page.keyboard.press("ArrowDown")  # B? (A's children are hidden)
    page.keyboard.press("ArrowRight")  # B's first child
    page.keyboard.press("Enter")
    b1 = tree.nodes.get(question="B1?")
    page.wait_for_selector(f"#amp-pane[data-node='{b1.pk}']")
    assert page.inner_text("#amp-pane .amp-pane-q") == "B1?"
    a1 = tree.nodes.get(question="A1?")
    assert page.locator(f"#amp-node-{a1.pk}").is_hidden()
    page.keyboard.press("ArrowLeft")  # back up to B?
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#amp-pane[data-node='{tree.nodes.get(question='B?').pk}']")
    page.fill("#amp-q", "C2")
    assert page.locator(".amp-match").count() == 1
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for path in (f"/trees/{tree.pk}/?node={b1.pk}", "/trees/", "/trees/new/"):
            page.goto(url + path)
            scroll = page.evaluate("document.scrollingElement.scrollWidth")
            assert scroll <= width, f"{path} scrolls sideways at {width}px: {scroll}"
            if SHOTS:
                SHOTS.mkdir(parents=True, exist_ok=True)
                name = path.strip("/").replace("/", "-").replace("?", "-") or "home"
                page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


def _wait_frame(page, frames: list[str]) -> None:
    """Until the socket has brought the live outline (Playwright delivers its events only
    while it is called, so wait through it)."""
    for _ in range(150):
        if any("amp-outline" in frame for frame in frames):
            return
        page.wait_for_timeout(100)
    raise AssertionError("no live outline arrived in 15 s")


def _shot(page, name: str) -> None:
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("width", [1366, 390])
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_tree_search_highlights_after_enter(
    live_asgi_server, browser, fake, make_tree, researcher, width
):
    """`/` from anywhere on the page goes to the search; Enter marks the matches and keeps
    them through the live outline's swaps; a reload of the searched address marks them too.
    At phone width a chosen node's pane is scrolled into view."""
    from tests.amplification.conftest import three_by_three

    fake.decompositions = three_by_three()
    tree = make_tree("Root?")
    c2 = tree.nodes.get(question="C2?")
    url = live_asgi_server.url
    page = browser.new_context(viewport={"width": width, "height": 800}).new_page()
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(str(p))))
    browser_login(page, url, "researcher")
    page.goto(f"{url}/trees/{tree.pk}/")
    page.wait_for_selector("#amp-stats[data-status=done]")
    _wait_frame(page, frames)
    # Focus is on the page, not in the tree: `/` still reaches the search box.
    page.click("h1.question")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "amp-q"
    page.keyboard.type("c2")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#amp-node-{c2.pk}.amp-match")
    assert page.locator(".amp-match").count() == 1
    assert page.inner_text("#amp-search-count") == "1 node matches."
    assert "q=c2" in page.url
    _shot(page, f"search-{width}")
    # The searched address, loaded afresh: marked by the server, and still after the socket
    # has replaced the outline.
    frames.clear()
    page.goto(f"{url}/trees/{tree.pk}/?q=C2")
    _wait_frame(page, frames)
    page.wait_for_timeout(300)
    assert page.locator(".amp-match").count() == 1
    assert page.locator(f"#amp-node-{c2.pk}.amp-match").count() == 1
    # Typing in a field is not a search: `/` stays in the field.
    page.click("#amp-q")
    page.keyboard.press("End")
    page.keyboard.type("/")
    assert page.input_value("#amp-q") == "C2/"
    # Choosing a node (the root, at the top of the outline): its pane comes on screen.
    root = tree.nodes.get(parent=None)
    page.evaluate("window.scrollTo(0, 0)")
    page.click(f"#amp-node-{root.pk} a")
    page.wait_for_selector(f"#amp-pane[data-node='{root.pk}']")
    page.wait_for_function(
        "(() => { const t = document.getElementById('amp-pane').getBoundingClientRect().top;"
        " return t >= 0 && t < window.innerHeight * 0.5; })()"
    )
    _shot(page, f"pane-{width}")
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"horizontal scrolling at {width}px: {scroll}"


@pytest.mark.parametrize("width", [1366, 390])
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_person_s_answer_cancels_the_draft(
    live_asgi_server, browser, fake, make_tree, researcher, monkeypatch, width
):
    """A person takes a node and answers it while the model is still drafting for them: the
    draft stops part-way (it would have streamed for about 20 s), writes no suggestion, and
    what it cost so far is in the tree's calls and tokens."""
    import threading
    import time

    from django.db import connection

    from amplification.expansion import DRAFT_CHECK_EVERY_S, node_draft, tree_expand
    from amplification.models import Mode

    question = "Why do the leaves of some trees turn red in the autumn, and others yellow?"
    tree = make_tree(question, mode=Mode.AUGMENTED)
    root = tree.nodes.get()
    fake.step_s = 0.2  # about 90 characters of draft: some 18 s
    drafts: list[threading.Thread] = []

    def draft_in_background(node_id: int, attempt: int) -> None:
        # What the generation worker would run, here in this process with the scripted model.
        def run() -> None:
            try:
                node_draft(node_id=node_id, attempt=attempt)
            finally:
                connection.close()

        drafts.append(threading.Thread(target=run))
        drafts[-1].start()

    monkeypatch.setattr("amplification.tasks.node_draft_task.delay", draft_in_background)
    url = live_asgi_server.url
    page = browser.new_context(viewport={"width": width, "height": 800}).new_page()
    browser_login(page, url, "researcher")
    page.goto(f"{url}/trees/{tree.pk}/?node={root.pk}")
    with page.expect_navigation():
        page.click("text=Take this node")
    page.wait_for_selector(".amp-drafting")
    wait_for(lambda: fake.streamed >= 12, timeout=30, what="the draft to stream a while")
    page.fill("#amp-pane textarea[name=answer]", "Anthocyanins, made in autumn, are red.")
    with (
        page.expect_navigation(),
        page.expect_request(lambda r: r.method == "POST" and "/person-answer/" in r.url) as sent,
    ):
        page.click("text=Save my answer")
    answered_at = time.monotonic()
    assert "Anthocyanins" in (sent.value.post_data or "")
    (draft,) = drafts
    draft.join(timeout=30)
    assert not draft.is_alive() and fake.cut_short
    assert time.monotonic() - answered_at < DRAFT_CHECK_EVERY_S + 2.0
    root.refresh_from_db()
    assert root.answer == "Anthocyanins, made in autumn, are red." and root.draft_answer == ""
    assert [c["stopped"] for c in root.calls if c["step"] == "draft-answer"] == [True]
    tree_expand(tree_id=tree.pk)  # the run the answer asked for (no worker in this test)
    page.wait_for_selector("#amp-stats[data-status=done]")
    page.goto(f"{url}/trees/{tree.pk}/?node={root.pk}")
    assert page.inner_text("#amp-final-answer") == "Anthocyanins, made in autumn, are red."
    assert page.locator(".amp-drafting").count() == 0
    assert page.locator("text=stopped early").count() == 1
    calls = page.inner_text("#amp-stats dl div:has(dt:text('Model calls')) dd")
    assert calls == "2"  # the draft's two calls, counted in the tree's
    assert page.locator("form[action$='/run/']").is_hidden()  # done: nothing to resume
    _shot(page, f"draft-cancelled-{width}")
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"horizontal scrolling at {width}px: {scroll}"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_distillation_form_previews_before_download_and_a_copying_node_says_why(
    live_asgi_server, browser, fake, make_tree, researcher, tmp_path
):
    """Quick (scripted model): the form's preview follows its filters over htmx, and a node
    whose decompositions copied their examples shows why it was answered directly; both pages
    at 1366 and 390 px."""
    from amplification.prompts import examples_chosen
    from tests.helpers import screenshots_at_both_widths

    shown = [s for example in examples_chosen("A?") for s in example.subquestions]
    fake.decompositions = {"Root?": "1. A?\n2. <b>B</b>?", "A?": "\n".join(
        f"{n}. {s}" for n, s in enumerate(shown, 1))}  # fmt: skip
    tree = make_tree("Root?")
    other = make_tree("Other?", max_depth=1)
    url = live_asgi_server.url
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    browser_login(page, url, "researcher")
    folder = SHOTS or tmp_path

    a = tree.nodes.get(question="A?")
    page.goto(f"{url}/trees/{tree.pk}/?node={a.pk}")
    assert "too few new sub-questions after one resample" in page.inner_text("#amp-pane")
    screenshots_at_both_widths(page, folder, "tree-copy-guard")

    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/preview/" in r.url else None)
    page.goto(f"{url}/trees/")
    page.wait_for_selector("#distill-preview strong")
    assert page.inner_text("#distill-preview strong") == "4"  # Root, A, B; Other
    assert "<b>B</b>?" in page.inner_text("#distill-preview")  # shown as text, not markup
    page.select_option("form.distill select[name=trees]", [str(other.pk)])
    wait_for(lambda: page.text_content("#distill-preview strong") == "1", timeout=60, what="1 rows")
    assert any(f"trees={other.pk}" in address for address in asked)
    page.select_option("form.distill select[name=mode]", "person")
    wait_for(lambda: page.text_content("#distill-preview strong") == "0", timeout=60, what="0 rows")
    page.select_option("form.distill select[name=mode]", "")
    page.select_option("form.distill select[name=trees]", [])
    wait_for(lambda: page.text_content("#distill-preview strong") == "4", timeout=60, what="4 rows")
    page.locator("#distill-preview").scroll_into_view_if_needed()
    screenshots_at_both_widths(page, folder, "distillation-form")
    # Stopped in the browser: what the page sends is the check here, and a streamed download
    # cut short leaves the ASGI server's request body file unclosed (a warning, an error here).
    page.route("**/distillation.jsonl*", lambda route: route.abort())
    with page.expect_request(lambda request: "distillation.jsonl" in request.url) as sent:
        page.click("text=Download JSONL")
    # The form's filters, as chosen (the body is tested in test_views: under the ASGI server
    # Django buffers a sync streaming response with a warning, an error in this suite).
    assert "mode=&min_rating=" in sent.value.url and "trees=" not in sent.value.url
