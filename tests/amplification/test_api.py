import json
import uuid

import pytest
from django.test import Client

from amplification.models import Node, Tree
from amplification.selectors import tree_export
from annotations.services import api_token_create

pytestmark = pytest.mark.django_db


def api(user):
    token = api_token_create(user=user, name=f"test {uuid.uuid4()}")
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_read_list_and_import_a_tree(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    tree = make_tree(max_depth=1)
    client = api(researcher)
    listed = client.get("/api/trees/?q=A%3F").json()
    assert [(t["id"], t["node_count"]) for t in listed] == [(tree.pk, 3)]
    data = client.get(f"/api/trees/{tree.pk}").json()
    assert data == json.loads(tree_export(tree).model_dump_json())
    created = client.post("/api/trees/", data, content_type="application/json")
    assert created.status_code == 201
    copy = Tree.objects.get(pk=created.json()["id"])
    assert tree_export(copy) == tree_export(tree)


def test_bad_input_is_a_4xx_with_a_detail_and_changes_nothing(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    client = api(researcher)
    data = client.get(f"/api/trees/{tree.pk}").json()
    before = (Tree.objects.count(), Node.objects.count())
    nul = json.loads(json.dumps(data))
    nul["nodes"][1]["answer"] = "a\u0000b"
    response = client.post("/api/trees/", nul, content_type="application/json")
    assert response.status_code == 422 and "NUL" in response.json()["detail"]
    assert response.json()["errors"][0]["field"] == "nodes.1.answer"
    versions = json.loads(json.dumps(data))
    versions["nodes"][1]["versions"][0]["number"] = 5
    response = client.post("/api/trees/", versions, content_type="application/json")
    assert response.status_code == 409 and "versions" in response.json()["detail"]
    response = client.post("/api/trees/", {"format": "x"}, content_type="application/json")
    assert response.status_code == 422
    assert client.get("/api/trees/0").status_code == 422
    assert client.get(f"/api/trees/{2**63}").status_code == 422
    assert client.get("/api/trees/999999").status_code == 404
    assert (Tree.objects.count(), Node.objects.count()) == before


def test_annotators_are_refused(fake, make_tree, annotator):
    tree = make_tree(max_depth=0)
    client = api(annotator)
    assert client.get("/api/trees/").status_code == 403
    assert client.get(f"/api/trees/{tree.pk}").status_code == 403
    assert Client().get("/api/trees/").status_code == 401


def test_importing_the_same_tree_twice_is_a_409_naming_the_first(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    client = api(researcher)
    data = client.get(f"/api/trees/{tree.pk}").json()
    first = client.post("/api/trees/", data, content_type="application/json")
    assert first.status_code == 201
    assert Tree.objects.get(pk=first.json()["id"]).imported_from == "the API"
    again = client.post("/api/trees/", data, content_type="application/json")
    assert again.status_code == 409
    assert f"already imported: tree {first.json()['id']}" in again.json()["detail"]
    assert Tree.objects.count() == 2
