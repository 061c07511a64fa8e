import io
import json

import pytest

from amplification.models import Node, Tree
from amplification.selectors import tree_export
from amplification.services import node_edit
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

XSS = "<script>alert('x')</script>"


def _form(config, **overrides):
    data = {
        "question": "Why is the sky blue?", "context": "", "mode": "machine", "max_depth": 2,
        "max_children": 3, "max_nodes": 13, "decompose_config": config.pk,
        "answer_config": config.pk, "compose_config": config.pk,
        "decompose_prompt": "Split: {question}", "answer_prompt": "Answer: {question}",
        "compose_prompt": "{question} {subanswers}",
    }  # fmt: skip
    return data | overrides


def test_a_researcher_creates_a_tree_and_it_is_queued(researcher, config, monkeypatch):
    sent = []
    monkeypatch.setattr("amplification.tasks.tree_expand_task.delay", sent.append)
    client = signed_in(researcher)
    assert client.get("/trees/new/").status_code == 200
    response = client.post("/trees/new/", _form(config))
    tree = Tree.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/trees/{tree.pk}/"
    assert tree.status == "queued" and tree.nodes.get().question == "Why is the sky blue?"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"max_depth": 9}, "less than or equal to 4"),
        ({"max_children": 0}, "greater than or equal to 1"),
        ({"max_nodes": 500}, "less than or equal to 200"),
        ({"question": "   "}, "This field is required"),
        ({"compose_prompt": "{question}"}, "Must contain {subanswers}"),
        ({"question": "a\x00b"}, "Null characters are not allowed"),
    ],
)
def test_bad_tree_settings_get_a_clear_error_and_create_nothing(
    researcher, config, overrides, error
):
    response = signed_in(researcher).post("/trees/new/", _form(config, **overrides))
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Tree.objects.exists()


def test_only_researchers_see_trees(fake, make_tree, annotator, outsider, researcher):
    tree = make_tree(max_depth=0)
    assert signed_in(researcher).get("/trees/").status_code == 200
    assert signed_in(outsider).get("/trees/").status_code == 403
    listed = signed_in(annotator).get("/trees/")
    assert listed.status_code == 200 and f"/trees/{tree.pk}/" not in listed.content.decode()
    assert signed_in(annotator).get(f"/trees/{tree.pk}/").status_code == 404
    assert signed_in(outsider).get(f"/trees/{tree.pk}/").status_code == 404
    tree.assignees.add(annotator)
    assert signed_in(annotator).get(f"/trees/{tree.pk}/").status_code == 200
    listed = signed_in(annotator).get("/trees/").content.decode()
    assert f"/trees/{tree.pk}/" in listed and "New tree" not in listed
    # An assigned annotator still may not edit or export.
    node = tree.nodes.get()
    post = signed_in(annotator).post(f"/trees/{tree.pk}/nodes/{node.pk}/rerun/")
    assert post.status_code == 404
    assert signed_in(annotator).get(f"/trees/{tree.pk}/export.json").status_code == 404


def test_wrong_methods_are_refused(fake, make_tree, researcher):
    tree = make_tree(max_depth=0)
    node = tree.nodes.get()
    client = signed_in(researcher)
    assert client.get(f"/trees/{tree.pk}/nodes/{node.pk}/rerun/").status_code == 405
    assert client.post(f"/trees/{tree.pk}/").status_code == 405
    assert client.post(f"/trees/{tree.pk}/nodes/999999/rerun/").status_code == 404


def test_model_text_is_escaped_in_the_inspector_and_the_diff(fake, make_tree, researcher):
    fake.decompositions = {"Root?": f"1. {XSS} why?"}
    tree = make_tree(max_depth=1)
    leaf = tree.nodes.get(depth=1)
    node_edit(tree_id=tree.pk, node_id=leaf.pk, user=researcher, answer=f"{XSS} edited")
    client = signed_in(researcher)
    body = client.get(f"/trees/{tree.pk}/?node={leaf.pk}").content.decode()
    assert XSS not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
    assert "<ins>" in body  # the diff view rendered, escaped inside


def test_editing_through_the_page_and_a_bad_edit_changes_nothing(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    leaf = tree.nodes.get(depth=1)
    client = signed_in(researcher)
    url = f"/trees/{tree.pk}/nodes/{leaf.pk}/answer/"
    response = client.post(url, {"answer": "   "})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    leaf.refresh_from_db()
    assert leaf.answer == "answer to A?"
    response = client.post(url, {"answer": "Forty-two."})
    assert response.status_code == 302
    leaf.refresh_from_db()
    assert leaf.answer == "Forty-two."


def test_export_and_import_through_the_pages(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    client = signed_in(researcher)
    exported = client.get(f"/trees/{tree.pk}/export.json")
    assert exported["Content-Disposition"] == f'attachment; filename="tree-{tree.pk}.json"'
    upload = io.BytesIO(exported.content)
    upload.name = "tree.json"
    response = client.post("/trees/import/", {"file": upload})
    copy = Tree.objects.exclude(pk=tree.pk).get()
    assert response.status_code == 302
    assert tree_export(copy) == tree_export(tree)

    bad = io.BytesIO(json.dumps({"format": "something else"}).encode())
    bad.name = "bad.json"
    response = client.post("/trees/import/", {"file": bad})
    assert response.status_code == 400
    assert "Not a valid tree export" in response.content.decode()
    assert Tree.objects.count() == 2 and Node.objects.count() == 4


def test_distillation_download_and_its_bad_input(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. A?"}
    make_tree(max_depth=1)
    client = signed_in(researcher)
    response = client.get("/trees/distillation.jsonl")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line)["prompt"].rsplit("Question: ", 1)[1] for line in lines] == [
        "Root?", "A?",
    ]  # fmt: skip
    assert client.get("/trees/distillation.jsonl?min_rating=9").status_code == 400


def test_the_researcher_home_links_to_the_trees(researcher):
    body = signed_in(researcher).get("/research/").content.decode()
    assert 'href="/trees/"' in body


def test_the_demo_seed_has_one_small_finished_tree(researcher):
    from amplification.demo import seed

    ModelConfig.objects.get(name=BUNDLED_CONFIG_NAME)
    assert len(seed()) == 1
    assert seed() == []
    tree = Tree.objects.get(is_demo=True)
    assert tree.status == "done" and tree.nodes.count() == 3
    assert "demo data" in signed_in(researcher).get(f"/trees/{tree.pk}/").content.decode()


def test_sending_nodes_to_a_queue_with_no_members_warns_but_sends(
    fake, make_tree, researcher, annotator
):
    from annotations.models import Queue, QueueMember

    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    queue = Queue.objects.create(name="nobody's queue", kind="tree_node_rating")
    client = signed_in(researcher)
    send = {"queue": queue.pk, "aspect": "answer"}
    page = client.post(f"/trees/{tree.pk}/to-queue/", send, follow=True).content.decode()
    assert "Added 2 node(s) to nobody&#x27;s queue." in page
    assert "has no members: nobody will rate these items" in page
    assert queue.items.count() == 2

    QueueMember.objects.create(queue=queue, user=annotator)
    send["aspect"] = "decomposition"
    page = client.post(f"/trees/{tree.pk}/to-queue/", send, follow=True).content.decode()
    assert "Added 1 node(s)" in page and "has no members" not in page


def test_the_inspector_marks_a_node_served_by_a_memo_entry_that_no_longer_qualifies(
    fake, make_tree, researcher
):
    fake.decompositions = {"Root?": "1. A?", "Other?": "1. A?"}
    make_tree(max_depth=1)
    other = make_tree("Other?", max_depth=1)
    hit = other.nodes.get(question="A?")
    assert hit.resolution == "memo"
    client = signed_in(researcher)
    page = client.get(f"/trees/{other.pk}/?node={hit.pk}").content.decode()
    assert "amp-memo-invalid" not in page
    Node.objects.filter(pk=hit.pk).update(
        memo_invalid="it was answered under another tree's context."
    )
    page = client.get(f"/trees/{other.pk}/?node={hit.pk}").content.decode()
    assert (
        "Served from a memo entry that no longer qualifies: it was answered under another "
        "tree&#x27;s context." in page
    )
    assert "answer to A?" in page  # the text is kept
    # Recompute asks the model afresh, and the mark goes with the reused answer.
    client.post(f"/trees/{other.pk}/nodes/{hit.pk}/recompute/")
    hit.refresh_from_db()
    assert (hit.memo_invalid, hit.memo_source, hit.memo_origin) == ("", None, None)


def test_the_annotator_home_says_tree_nodes_wait_for_them(annotator):
    body = signed_in(annotator).get("/annotate/").content.decode()
    assert "Tree nodes" in body and 'href="/trees/"' in body
    assert "new nodes wait for a person" in body


def test_a_new_trees_message_stays_true_after_it_expands(researcher, config, monkeypatch):
    monkeypatch.setattr("amplification.tasks.tree_expand_task.delay", lambda tree_id: None)
    client = signed_in(researcher)
    response = client.post("/trees/new/", _form(config), follow=True)
    tree = Tree.objects.get()
    body = response.content.decode()
    assert f"Created tree {tree.pk}." in body and "is expanding" not in body


def test_a_person_s_answer_has_one_tag(fake, make_tree, researcher):
    from amplification.models import Mode
    from amplification.services import node_answer_by_person, node_take

    tree = make_tree(mode=Mode.AUGMENTED)
    root = tree.nodes.get()
    node_take(tree_id=tree.pk, node_id=root.pk, user=researcher)
    node_answer_by_person(tree_id=tree.pk, node_id=root.pk, user=researcher, answer="Mine.")
    body = signed_in(researcher).get(f"/trees/{tree.pk}/").content.decode()
    item = body[body.index(f'id="amp-node-{root.pk}"') :]
    item = item[: item.index("</li>")]
    assert item.count("tag-person") == 1 and item.count("by a person") == 1
    assert ">person<" not in item


def test_a_finished_tree_offers_no_resume_and_says_why(fake, make_tree, researcher):
    from amplification.models import Mode

    tree = make_tree(mode=Mode.AUGMENTED)
    client = signed_in(researcher)
    waiting = client.get(f"/trees/{tree.pk}/").content.decode()
    assert "data-until-done>" in waiting  # Resume and "Let the model do the rest", shown
    # A person answers the root: the tree is done, and nothing is left to hand the model.
    from amplification.expansion import tree_expand
    from amplification.services import node_answer_by_person, node_take

    root = tree.nodes.get()
    node_take(tree_id=tree.pk, node_id=root.pk, user=researcher)
    node_answer_by_person(tree_id=tree.pk, node_id=root.pk, user=researcher, answer="Mine.")
    tree_expand(tree_id=tree.pk)
    done = client.get(f"/trees/{tree.pk}/").content.decode()
    assert done.count("data-until-done hidden>") == 2
    response = client.post(f"/trees/{tree.pk}/run/", follow=True)
    assert "there is nothing to resume" in response.content.decode()
    tree.refresh_from_db()
    assert tree.status == "done"


def test_an_imported_tree_is_marked_and_a_second_import_is_refused(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    client = signed_in(researcher)
    exported = client.get(f"/trees/{tree.pk}/export.json").content

    def upload(name, **data):
        file = io.BytesIO(exported)
        file.name = name
        return client.post("/trees/import/", {"file": file, **data})

    assert upload("tree-7.json").status_code == 302
    first = Tree.objects.get(imported_from="tree-7.json")
    page = client.get(f"/trees/{first.pk}/").content.decode()
    assert "imported</span> from tree-7.json by researcher" in page
    assert "imported</span>" in client.get("/trees/").content.decode()

    refused = upload("tree-7 (1).json")
    assert refused.status_code == 400
    assert f"already imported: tree {first.pk}, from tree-7.json" in refused.content.decode()
    assert Tree.objects.count() == 2

    again = upload("tree-7 (1).json", again="on")
    assert again.status_code == 302
    copy = Tree.objects.get(imported_from="tree-7 (1).json")
    page = client.get(f"/trees/{copy.pk}/", follow=True).content.decode()
    assert "copy 2 of the same tree" in page and f'href="/trees/{first.pk}/"' in page
    assert f"Imported tree {copy.pk} (copy 2 of this tree)." in page


def test_the_distillation_form_previews_the_count_and_first_rows_escaped(
    fake, make_tree, researcher, annotator
):
    fake.decompositions = {"Root?": f"1. {XSS} why?\n2. B?"}
    tree = make_tree(max_depth=1)
    other = make_tree("Other?", max_depth=1)
    client = signed_in(researcher)
    listing = client.get("/trees/").content.decode()
    assert 'hx-get="/trees/distillation/preview/"' in listing
    fragment = client.get("/trees/distillation/preview/", headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in body
    assert "<strong>4</strong> rows will be downloaded; the first 3:" in body
    assert "&lt;script&gt;" in body and XSS not in body
    # The tree filter narrows both the preview and the download alike.
    only = {"trees": [other.pk]}
    body = client.get("/trees/distillation/preview/", only, headers={"HX-Request": "true"})
    assert "<strong>1</strong> row will be downloaded" in body.content.decode()
    lines = b"".join(client.get("/trees/distillation.jsonl", only).streaming_content).splitlines()
    assert [json.loads(line)["completion"] for line in lines] == ["answer to Other?"]
    person = client.get("/trees/distillation/preview/", {"mode": "person"},
                        headers={"HX-Request": "true"}).content.decode()  # fmt: skip
    assert "<strong>0</strong> rows will be downloaded." in person
    # Without JavaScript, the Preview button's page is the list with the preview in it.
    page = client.get("/trees/distillation/preview/", {"trees": [tree.pk]}).content.decode()
    assert "<html" in page and "<strong>3</strong> rows will be downloaded" in page
    # Bad input: the form's error, nothing counted; the download refuses it too.
    bad = client.get("/trees/distillation/preview/", {"trees": ["x"], "mode": "nobody"},
                     headers={"HX-Request": "true"})  # fmt: skip
    assert bad.status_code == 400 and "rows will be downloaded" not in bad.content.decode()
    assert client.get("/trees/distillation.jsonl", {"mode": "nobody"}).status_code == 400
    # Researchers only; and only GET.
    assert signed_in(annotator).get("/trees/distillation/preview/").status_code in (302, 403)
    assert client.post("/trees/distillation/preview/").status_code == 405
