"""The rating queues' API routers (mounted by config/api.py): import, next, submit, skip,
undo, export.

The same services as the pages run behind it, so the same rules hold: annotators see only
their own leases' payloads, never gold flags, other annotators' labels, agreement or exports.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest
from django.urls import reverse
from ninja import File, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.files import UploadedFile
from pydantic import Field

from annotations.exports import CONTENT_TYPES, ExportInvalid, ExportSpec
from annotations.importers import (
    ImportFailed,
    ImportFormat,
    UploadRefused,
    items_import,
    upload_format,
)
from annotations.kinds import registered_value_models
from annotations.models import Assignment, ExportJob, JobStatus, Label, Queue
from annotations.selectors import (
    export_jobs_visible,
    queue_and_membership,
    queue_for_annotator,
    queues_for_annotator,
)
from annotations.services import (
    assignment_skip,
    export_expired,
    export_file,
    export_start,
    label_submit,
    label_undo,
    queue_item_claim,
)
from config.api_contract import (
    Body,
    Id,
    Refusal,
    TokenAuth,
    annotators,
    api_user,
    errors,
    researchers,
)
from core.roles import Role, user_has_role


def _member_queue(request: HttpRequest, queue_id: Id) -> tuple[User, Queue]:
    user = api_user(request)
    queue = queue_for_annotator(user, queue_id)
    if queue is None:
        raise HttpError(404, "No such queue among yours.")
    return user, queue


# --- schemas ----------------------------------------------------------------------------------
class QueueOut(Schema):
    id: int
    name: str
    kind: str
    labels_per_item: int
    instructions: str


class LeaseOut(Schema):
    """What an annotator gets: the lease and the item's payload, nothing else about it."""

    assignment_id: int
    item_id: int
    expires_at: datetime
    payload: dict[str, Any]
    keys: dict[str, dict[str, Any]]


if TYPE_CHECKING:
    LabelValueIn = Any
else:
    # Any registered kind's label shape; which one a queue takes is checked against its kind.
    LabelValueIn = registered_value_models()


class LabelIn(Body):
    assignment_id: Id
    value: LabelValueIn
    time_spent_ms: int | None = Field(
        default=None,
        ge=0,
        le=24 * 3600 * 1000,
        description="time on the item as your client measured it; leave it out (or null) if"
        " unknown: it is stored as unknown and left out of every time statistic",
    )
    client_request_id: uuid.UUID


class NextQuery(Body):
    revisit_skipped: bool = Field(
        default=False,
        description="once nothing else is left for you, give back the items you skipped, in"
        " the order of your last skip (without it they never come back)",
    )


class LabelOut(Schema):
    label_id: int
    item_id: int
    created_at: datetime


class SkipIn(Body):
    assignment_id: Id


class ImportOut(Schema):
    imported: int


class ExportOut(Schema):
    id: int
    status: str
    rows_total: int | None
    rows_done: int
    percent: int
    error: str
    expired: bool = Field(description="the file was deleted after EXPORT_RETENTION_DAYS")
    download_url: str | None


def _lease_out(lease: Assignment, queue: Queue) -> LeaseOut:
    kind = queue.item_kind
    return LeaseOut(
        assignment_id=lease.pk,
        item_id=lease.item_id,
        expires_at=lease.expires_at,
        payload=lease.item.typed_payload(kind).model_dump(mode="json"),
        keys={key.key: key.value for key in kind.keys},
    )


def _label_out(label: Label) -> LabelOut:
    return LabelOut(label_id=label.pk, item_id=label.item_id, created_at=label.created_at)


def _export_out(request: HttpRequest, job: ExportJob) -> ExportOut:
    url = None
    expired = export_expired(job)
    if job.status == JobStatus.DONE and not expired:
        path = reverse("api:export_download", kwargs={"job_id": job.pk})
        url = request.build_absolute_uri(path)
    return ExportOut(
        id=job.pk,
        status=job.status,
        rows_total=job.rows_total,
        rows_done=job.rows_done,
        percent=job.percent,
        error=job.error,
        expired=expired,
        download_url=url,
    )


# --- queues: annotators -----------------------------------------------------------------------
queues = Router(tags=["queues"])


@queues.get(
    "/",
    response={200: list[QueueOut]} | errors(403),
    auth=TokenAuth(Role.ANNOTATOR, Role.RESEARCHER),
)
def queue_list(request: HttpRequest) -> list[Queue]:
    """Queues you label in (annotators), or every queue (researchers)."""
    user = api_user(request)
    if user_has_role(user, Role.RESEARCHER):
        return list(Queue.objects.all())
    return list(queues_for_annotator(user))


# Links (OpenAPI): what a client does next with a response; the fuzzer's stateful phase
# follows them (a lease, then skip or undo it; an export, then poll and download it).
_LEASE_LINKS = {
    "Skip": {
        "operationId": "annotations_api_queue_skip",
        "parameters": {"queue_id": "$request.path.queue_id"},
        "requestBody": {"assignment_id": "$response.body#/assignment_id"},
    },
    "Undo": {
        "operationId": "annotations_api_queue_undo",
        "parameters": {"queue_id": "$request.path.queue_id"},
    },
}
_EXPORT_LINKS = {
    "Status": {
        "operationId": "annotations_api_export_status",
        "parameters": {"job_id": "$response.body#/id"},
    },
    "Download": {
        "operationId": "annotations_api_export_download",
        "parameters": {"job_id": "$response.body#/id"},
    },
}


@queues.post(
    "/{queue_id}/next",
    response={200: LeaseOut, 204: None} | errors(403, 404),
    openapi_extra={"responses": {200: {"links": _LEASE_LINKS}}},
    auth=annotators,
)
def queue_next(request: HttpRequest, queue_id: Id, query: Query[NextQuery]) -> Any:
    """Your current item in this queue, or the next one (204 when nothing is left for you).
    Items you skipped come back only with revisit_skipped, after every other item."""
    user = api_user(request)
    found = queue_and_membership(user, queue_id)
    if found is None:
        raise HttpError(404, "No such queue among yours.")
    queue, membership = found
    lease = queue_item_claim(
        queue=queue,
        annotator=user,
        membership=membership,
        revisit_skipped=query.revisit_skipped,
    )
    if lease is None:
        return Status(204, None)
    return Status(200, _lease_out(lease, queue))


@queues.post(
    "/{queue_id}/labels",
    response={200: LabelOut, 201: LabelOut} | errors(403, 404, 409),
    auth=annotators,
)
def queue_label(request: HttpRequest, queue_id: Id, body: LabelIn) -> Any:
    """Label your leased item. Retrying with the same client_request_id returns the stored
    label (200) instead of storing a second one (201)."""
    user = api_user(request)
    # The lease's own query checks it is in this queue and the user still a member.
    try:
        label, created = label_submit(
            assignment_id=body.assignment_id,
            annotator=user,
            value=body.value.model_dump(),
            time_spent_ms=body.time_spent_ms,
            client_request_id=body.client_request_id,
            queue_id=queue_id,
        )
    except ValidationError as error:
        # A well-formed label of another kind than this queue's: the queue refuses it.
        raise HttpError(409, " ".join(error.messages)) from None
    return Status((201 if created else 200), _label_out(label))


@queues.post("/{queue_id}/skip", response={204: None} | errors(403, 404, 409), auth=annotators)
def queue_skip(request: HttpRequest, queue_id: Id, body: SkipIn) -> Any:
    user, queue = _member_queue(request, queue_id)
    if not Assignment.objects.filter(pk=body.assignment_id, queue=queue).exists():
        raise HttpError(409, "That item is no longer yours to skip.")
    assignment_skip(assignment_id=body.assignment_id, annotator=user)
    return Status(204, None)


@queues.post("/{queue_id}/undo", response={200: LeaseOut} | errors(403, 404, 409), auth=annotators)
def queue_undo(request: HttpRequest, queue_id: Id) -> Any:
    """Take back your last label here if under 60 s old; its item is leased to you again."""
    user, queue = _member_queue(request, queue_id)
    lease = label_undo(queue=queue, annotator=user)
    return Status(200, _lease_out(lease, queue))


# --- queues: researchers ----------------------------------------------------------------------
@queues.post("/{queue_id}/items", response={201: ImportOut} | errors(403, 404), auth=researchers)
def queue_import(
    request: HttpRequest,
    queue_id: Id,
    file: UploadedFile = File(...),  # noqa: B008  (ninja's declaration style)
    format: ImportFormat | None = None,
) -> Any:
    """Import a JSONL or CSV file of items: all rows or none; bad rows named by line (400,
    each under `errors` with the field `file` and its `line`)."""
    queue = Queue.objects.filter(pk=queue_id).first()
    if queue is None:
        raise HttpError(404, "No such queue.")
    try:
        fmt = upload_format(size=file.size, name=file.name or "", fmt=format)
    except UploadRefused as refused:
        problem = {"field": refused.field, "message": refused.message}
        raise Refusal(400, refused.message, [problem]) from None
    try:
        count = items_import(queue=queue, data=file.read(), fmt=fmt)
    except ImportFailed as failure:
        raise Refusal(400, "Nothing was imported.", _row_problems(failure)) from None
    return Status(201, ImportOut(imported=count))


def _row_problems(failure: ImportFailed) -> list[dict[str, Any]]:
    """Each bad row: the field `file`, its line (none for the file as a whole), the message."""
    problems: list[dict[str, Any]] = [
        {"field": "file", "message": error.message} | ({"line": error.line} if error.line else {})
        for error in failure.errors
    ]
    if failure.truncated:
        problems.append({"field": "file", "message": failure.messages[-1]})
    return problems


# --- exports ----------------------------------------------------------------------------------
exports = Router(tags=["exports"], auth=researchers)


def _job(request: HttpRequest, job_id: Id) -> ExportJob:
    job = export_jobs_visible(api_user(request)).filter(pk=job_id).first()
    if job is None:
        raise HttpError(404, "No such export among yours.")
    return job


@exports.post(
    "/",
    response={202: ExportOut} | errors(403, 404, 409),
    openapi_extra={"responses": {202: {"links": _EXPORT_LINKS}}},
)
def export_create(request: HttpRequest, spec: ExportSpec) -> Any:
    """Start an export job; poll it, then download the file."""
    try:
        job = export_start(user=api_user(request), spec=spec)
    except ExportInvalid as error:
        raise HttpError(error.status, error.message) from None
    return Status(202, _export_out(request, job))


@exports.get("/{job_id}", response={200: ExportOut} | errors(403, 404))
def export_status(request: HttpRequest, job_id: Id) -> ExportOut:
    return _export_out(request, _job(request, job_id))


_FILE = {"schema": {"type": "string", "format": "binary"}}


@exports.get(
    "/{job_id}/download",
    url_name="export_download",
    response=errors(403, 404, 409, 410),
    openapi_extra={
        "responses": {
            200: {
                "description": "The export's file",
                "content": dict.fromkeys(CONTENT_TYPES.values(), _FILE),
            }
        }
    },
)
def export_download(request: HttpRequest, job_id: Id) -> FileResponse:
    """The finished export's file; 409 while the export has not finished ("export not
    ready"), 410 once its file has expired."""
    found = export_file(_job(request, job_id))
    return FileResponse(
        found.path.open("rb"),
        as_attachment=True,
        filename=found.file_name,
        content_type=found.content_type,
    )
