"""The annotations app's domain errors: each carries the message and the HTTP status the
pages and the API answer with."""

from __future__ import annotations


class AnnotationError(Exception):
    """A domain error with a message fit to show the annotator or return in the API."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAMember(AnnotationError):
    status = 403


class LeaseGone(AnnotationError):
    pass


class ItemFull(AnnotationError):
    pass


class AlreadyLabelled(AnnotationError):
    pass


class NothingToUndo(AnnotationError):
    pass


class DuplicateExternalId(AnnotationError):
    pass


class TokenNotFound(AnnotationError):
    status = 404
