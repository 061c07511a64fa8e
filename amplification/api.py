"""The amplification API (mounted by config/api.py under /api/trees): list trees, read one
whole tree in the export format, import one. The same selectors and services as the pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from ninja.errors import HttpError
from pydantic import Field

from amplification.models import TreeStatus
from amplification.schemas import TreeExport
from amplification.selectors import tree_export, tree_for_user, trees_filtered
from amplification.services import tree_import
from config.api_contract import Body, Id, api_user, errors, researchers
from core.text import StoredText

trees = Router(tags=["amplification"], auth=researchers)


class TreeOut(Schema):
    id: int
    question: str
    mode: str
    status: str
    max_depth: int
    max_children: int
    max_nodes: int
    node_count: int
    is_demo: bool
    created_at: datetime


class TreeFilters(Body):
    status: TreeStatus | None = None
    q: StoredText = Field(default="", max_length=200)


class TreePath(Body):
    tree_id: Id


class Created(Schema):
    id: int


@trees.get("/", response={200: list[TreeOut]} | errors(403))
def tree_list(request: HttpRequest, filters: Query[TreeFilters]) -> Any:
    """Trees, newest first (at most 200), filtered by status and a search in their text."""
    found = trees_filtered(status=filters.status or "", query=filters.q)[:200]
    return [
        TreeOut(
            id=tree.pk,
            question=tree.question,
            mode=tree.mode,
            status=tree.status,
            max_depth=tree.max_depth,
            max_children=tree.max_children,
            max_nodes=tree.max_nodes,
            node_count=tree.node_count,  # type: ignore[attr-defined]
            is_demo=tree.is_demo,
            created_at=tree.created_at,
        )  # fmt: skip
        for tree in found
    ]


@trees.get("/{tree_id}", response={200: TreeExport} | errors(403, 404))
def tree_read(request: HttpRequest, path: Path[TreePath]) -> Any:
    """One whole tree: its settings and every node, with calls and versions."""
    user = api_user(request)
    tree = tree_for_user(user, path.tree_id)
    if tree is None:
        raise HttpError(404, "No such tree.")
    return tree_export(tree)


@trees.post("/", response={201: Created} | errors(403, 409))
def tree_create_from_export(request: HttpRequest, body: TreeExport) -> Any:
    """Import a tree in the export format; all or nothing. A tree that fits the schema but not
    this database (a model config it names is missing, a node's parent unknown), or one
    imported before (the same content), is a 409 naming the problem (and the earlier tree)."""
    user = api_user(request)
    try:
        tree = tree_import(data=body, created_by=user, source="the API")
    except ValidationError as error:
        raise HttpError(409, " ".join(error.messages)) from error
    return Status(201, Created(id=tree.pk))
